"""Feature values pinned: a fixed tiny world (tests/helpers/features_golden.py) reproduces tests/data/features_golden.json.

The golden file was written by the features code before it was vectorised; any rewrite of
``taste_bags`` / ``features_from_bags`` / ``featurize_profiles`` / ``build_features`` must give
the same rows: exact for ints, strings and lists of names, ``np.allclose(rtol=1e-6)`` for floats.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers.features_golden import GOLDEN_PATH, assert_matches, golden_profiles, snapshot


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN_PATH.read_text(encoding="utf-8"))


def test_the_golden_world_covers_the_edge_cases(golden):
    build = golden["build"]
    assert build["updated"] >= 15 and len(build["rejected"]) == 4 and build["without_views"] == 3
    missing = {m for r in build["user_features"] for m in r["missing"]}
    assert missing == {"genres", "artists", "release_year", "popularity", "explicit"}
    assert len(golden_profiles()) == len({r["user_id"] for r in build["user_features"]}) + len(build["rejected"])


def test_features_reproduce_the_golden_file(settings, golden):
    actual = json.loads(json.dumps(snapshot(settings), ensure_ascii=False, sort_keys=True))
    assert_matches(actual["featurize"], golden["featurize"], "featurize")
    assert_matches(actual["build"], golden["build"], "build")


def test_the_comparison_is_not_blind(golden):
    rows = golden["build"]["user_features"]
    changed = json.loads(json.dumps(golden["build"]))
    changed["user_features"][0]["combined"][3] += 1e-4
    with pytest.raises(AssertionError, match="combined"):
        assert_matches(changed, golden["build"], "build")
    i = next(i for i, r in enumerate(rows) if len(set(r["genre_names"])) >= 2)
    changed = json.loads(json.dumps(golden["build"]))
    changed["user_features"][i]["genre_names"] = list(reversed(rows[i]["genre_names"]))
    with pytest.raises(AssertionError, match="genre_names"):
        assert_matches(changed, golden["build"], "build")
