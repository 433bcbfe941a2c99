"""Stage function: the taste map of the served index (UMAP layout, genre families, taste statistics)."""

from __future__ import annotations

import logging
import sys
import time

import numpy as np
import pandas as pd

log = logging.getLogger("soundmates.pipelines.taste_map")


def _per_user_taste(settings, user_ids: list[str]) -> pd.DataFrame:
    """Dominant genre family, genre entropy, mean popularity and name of each user, from the feature store."""
    from soundmates.features import schema as S
    from soundmates.features.families import OTHER, dominant_family, genre_entropy
    from soundmates.store import get_store

    store = get_store(settings)
    feats = store.read(S.USER_FEATURES)
    feats = feats[feats["view"] == S.VIEW_FULL].drop_duplicates("user_id", keep="last").set_index("user_id")
    try:
        names = store.read("user_profiles").set_index("user_id")["display_name"]
    except Exception:  # noqa: BLE001 - names are for hover text only
        names = pd.Series(dtype=object)
    rows = []
    for u in user_ids:
        f = feats.loc[u] if u in feats.index else None
        genres = list(f["genre_names"]) if f is not None else []
        weights = list(f["genre_weights"]) if f is not None else []
        pop = float(f["mean_popularity"]) if f is not None else float("nan")
        name = names.get(u) if u in names.index else None
        rows.append(
            {
                "user_id": u,
                "family": dominant_family(genres, weights) if genres else OTHER,
                "display_name": None if name is None or (isinstance(name, float) and np.isnan(name)) else str(name),
                "popularity": pop,
                "entropy": genre_entropy(weights) if genres else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def build_map(settings=None, *, progress: bool = True) -> dict:
    """Lay out every served user of the current index in 2-D and store it with the index stage.

    Returns ``index_version``, ``users``, ``fitted_on``, ``method``, ``neighbour_preservation@10`` (and
    the PCA figure for comparison), ``seconds``.
    """
    from soundmates.config import get_settings
    from soundmates.index import UserIndex
    from soundmates.index import layout as L

    def say(msg: str) -> None:
        log.info("%s", msg)
        if progress:
            print(f"map: {msg}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    settings = settings or get_settings()
    index = UserIndex(settings)
    manifest = index.manifest()
    if not manifest:
        raise L.LayoutNotBuilt("no index built yet: run 'soundmates index build' first, then 'soundmates map build'")
    ids, vectors = index.all_vectors()
    if not ids:
        raise L.LayoutNotBuilt("the index serves nobody: nothing to lay out")
    say(f"laying out {len(ids):,} users (UMAP, fitted on up to {L.FIT_MAX:,})")
    xy = L.umap_layout(vectors)
    frame = _per_user_taste(settings, ids)
    frame["x"], frame["y"] = xy[:, 0].astype(float), xy[:, 1].astype(float)
    kept = L.neighbour_preservation(vectors, xy)
    pca = L.neighbour_preservation(vectors, L.pca_layout(vectors))
    meta = {
        "index_version": manifest.get("version") or index.current_version_name(),
        "model_version": manifest.get("model_version"),
        "method": "umap" if len(ids) >= L.N_NEIGHBORS + 2 else "pca",
        "users": len(ids),
        "fitted_on": min(len(ids), L.FIT_MAX),
        "neighbour_preservation@10": None if np.isnan(kept) else round(kept, 4),
        "pca_neighbour_preservation@10": None if np.isnan(pca) else round(pca, 4),
    }
    L.write_layout(settings, frame, meta)
    say(f"stored the layout of {meta['index_version']}: neighbours kept {kept:.1%} (PCA {pca:.1%})")
    return {**meta, "seconds": round(time.perf_counter() - t0, 2)}
