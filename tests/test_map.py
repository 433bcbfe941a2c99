"""The taste map: genre families, neighbour preservation, the stored layout after an index build, the DAG task."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from soundmates.features.families import FAMILIES, dominant_family, family_shares, genre_entropy, genre_family
from soundmates.index import layout as L


@pytest.mark.parametrize(
    "genre, family",
    [
        ("alternative metal", "metal"),
        ("pop rap", "hip hop"),
        ("southern hip hop", "hip hop"),
        ("dance pop", "pop"),
        ("classic rock", "rock"),
        ("electro house", "electronic"),
        ("cool jazz", "jazz"),
        ("classical performance", "classical"),
        ("quiet storm", "r&b / soul"),
        ("grupera", "latin"),
        ("country rock", "country / folk"),
        ("vaporwave polka", "other"),
    ],
)
def test_genre_family(genre, family):
    assert genre_family(genre) == family
    assert family in FAMILIES


def test_dominant_family_and_entropy():
    assert dominant_family(["dance pop", "pop rap", "trap"], [0.5, 0.3, 0.3]) == "hip hop"
    assert family_shares([], []) == {} and dominant_family([], []) == "other"
    assert genre_entropy([1.0]) == 0.0
    assert genre_entropy([1, 1, 1, 1]) == pytest.approx(2.0)


def test_neighbour_preservation_tells_a_faithful_map_from_a_shuffled_one():
    rng = np.random.default_rng(0)
    # Points on a 2-D plane embedded in 8 dimensions: a map that keeps the plane keeps every neighbour.
    plane = rng.normal(size=(400, 2))
    vectors = np.hstack([plane, np.ones((400, 1)) * 5, np.zeros((400, 5))]).astype(np.float32)
    faithful = L.neighbour_preservation(vectors, plane + [0, 0])
    shuffled = L.neighbour_preservation(vectors, plane[rng.permutation(400)])
    assert faithful > 0.8
    assert shuffled < 0.1


def test_umap_beats_pca_on_clustered_vectors():
    """Eight taste clusters in 32-d: the neighbour-preserving layout keeps more true neighbours than PCA."""
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(8, 32))
    vectors = (centres[rng.integers(0, 8, 600)] + 0.35 * rng.normal(size=(600, 32))).astype(np.float32)
    umap_kept = L.neighbour_preservation(vectors, L.umap_layout(vectors))
    pca_kept = L.neighbour_preservation(vectors, L.pca_layout(vectors))
    assert umap_kept > pca_kept


def test_setup_compiles_the_layout_kernels_into_the_virtualenv_cache():
    """``make setup`` calls warm_jit: afterwards UMAP's cached numba kernels are on disk beside their sources."""
    from pathlib import Path

    import pynndescent
    import umap

    seconds = L.warm_jit(n=60)
    assert seconds > 0
    for pkg in (umap, pynndescent):
        assert list((Path(pkg.__file__).parent / "__pycache__").glob("*.nbi")), pkg.__name__
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert "warm_jit()" in makefile.split("$(STAMP):", 1)[1].split("touch $(STAMP)", 1)[0]


def test_no_layout_says_how_to_build_one(settings):
    with pytest.raises(L.LayoutNotBuilt, match="soundmates map build"):
        L.read_layout(settings)


@pytest.mark.slow
def test_map_build_stores_a_layout_the_map_reads(dashboard_world):
    """Real pipeline: index built → `soundmates map build` → Recommender.user_map serves it, removals stay out."""
    from soundmates.cli.main import app
    from soundmates.config import get_settings
    from soundmates.recommend import Recommender

    out = CliRunner().invoke(app, ["map", "build", "--json"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout)
    assert summary["method"] == "umap" and summary["users"] == len(dashboard_world.stored_ids)
    assert 0.0 <= summary["neighbour_preservation@10"] <= 1.0
    assert 0.0 <= summary["pca_neighbour_preservation@10"] <= 1.0
    rec = Recommender(get_settings())
    data = rec.user_map()
    assert data.method == "umap" and data.index_version == summary["index_version"]
    assert set(data.user_ids) == set(dashboard_world.stored_ids)
    assert len(data.families) == len(data.user_ids) and set(data.families) <= set(FAMILIES)
    assert len(set(data.families)) >= 2  # the small world mixes tastes
    gone = dashboard_world.stored_ids[0]
    rec.remove(gone)
    assert gone not in rec.user_map().user_ids  # removed after the layout was made: still off the map


@pytest.mark.slow
def test_map_page_samples_past_the_point_limit(dashboard_world, monkeypatch):
    from soundmates.config import get_settings
    from soundmates.pipelines.taste_map import build_map
    from soundmates.recommend import Recommender, status

    build_map(get_settings(), progress=False)
    monkeypatch.setattr(status, "MAP_POINTS", 5)
    me = dashboard_world.stored_ids[-1]
    data = Recommender(get_settings()).user_map(highlight=[me])
    assert data.total_users == len(dashboard_world.stored_ids)
    assert len(data.user_ids) <= 6 and me in data.user_ids  # a sample, plus whoever is highlighted


def test_map_build_without_an_index_is_one_line(settings):
    from soundmates.cli.main import app

    out = CliRunner().invoke(app, ["map", "build"])
    assert out.exit_code == 1
    assert out.stderr.startswith("error: ") and "soundmates index build" in out.stderr and out.stderr.count("\n") == 1


def test_index_rebuild_dag_lays_out_the_map_after_publishing(dagbag):
    dag = dagbag.dags["soundmates_index_rebuild"]
    assert dag.get_task("publish").downstream_task_ids == {"map"}
    assert dag.get_task("map").retries >= 1


_LAYOUT_CHILD = """
import numpy as np
import umap.distances, umap.layouts
from soundmates.index.layout import umap_layout
umap_layout(np.random.default_rng(0).normal(size=(200, 16)).astype(np.float32), seed=0)
# the epoch loop (most of the ~20 s compile) and the cosine distance
for k in (umap.layouts._nb_optimize_layout_euclidean_single_epoch, umap.distances.cosine):
    print(len(k.signatures), sum(k.stats.cache_hits.values()), sum(k.stats.cache_misses.values()))
"""


def test_a_fresh_process_loads_umaps_compiled_kernels_from_disk():
    """UMAP's kernels are compiled once (setup's warm_jit) and loaded by every later process, not compiled again."""
    import subprocess
    import sys

    for _ in range(2):  # the first run compiles whatever setup left uncompiled; the second must only load
        out = subprocess.run([sys.executable, "-c", _LAYOUT_CHILD], capture_output=True, text=True, timeout=300, check=True)
    for line in out.stdout.strip().splitlines():
        compiled, hits, misses = (int(x) for x in line.split())
        assert compiled >= 1 and hits == compiled and misses == 0, out.stdout
