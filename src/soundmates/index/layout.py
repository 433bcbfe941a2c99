"""The taste map's 2-D layout of an index version: UMAP of the served vectors, stored beside the index.

Computed by the pipeline after each index build (``soundmates map build``, the index DAG's ``map``
task), never on page load. Past ``FIT_MAX`` users UMAP is fitted on an evenly spaced sample and the
rest are placed with ``transform``, so 100,000 users stay minutes, not hours. Each version's layout
is one Parquet file under ``index/layouts/`` (this module owns the folder; written aside, then
renamed) with a JSON sidecar saying how it was made and how well it keeps neighbours.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from soundmates.atomic import atomic_write_text, commit_file

FIT_MAX = 20_000  # users UMAP is fitted on; the rest are transformed
KEEP = 3  # layout versions kept
K = 10  # neighbour preservation is measured on the 10 nearest
N_NEIGHBORS = 15
COLUMNS = ("user_id", "x", "y", "family", "display_name", "popularity", "entropy")


class LayoutNotBuilt(LookupError):
    """No layout stored yet."""


def _dir(settings: Any) -> Path:
    return Path(settings.index_dir) / "layouts"


def pca_layout(vectors: np.ndarray) -> np.ndarray:
    """The old map: the first two principal components (zeros for fewer than 3 users)."""
    if len(vectors) < 3:
        return np.zeros((len(vectors), 2), dtype=np.float32)
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=0).fit_transform(vectors).astype(np.float32)


def umap_layout(vectors: np.ndarray, *, fit_max: int = FIT_MAX, seed: int = 0) -> np.ndarray:
    """UMAP (cosine) of ``vectors``; fitted on at most ``fit_max`` of them, the rest transformed."""
    n = len(vectors)
    if n < N_NEIGHBORS + 2:  # too few for a neighbour graph: the linear map is as good as any
        return pca_layout(vectors)
    import umap  # numba: imported only when a layout is computed

    _cache_kernels()

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")  # a fixed seed runs single-threaded
        model = umap.UMAP(n_neighbors=N_NEIGHBORS, min_dist=0.1, metric="cosine", random_state=seed)
        if n <= fit_max:
            return np.asarray(model.fit_transform(vectors), dtype=np.float32)
        fit_rows = np.linspace(0, n - 1, fit_max).astype(np.int64)
        out = np.zeros((n, 2), dtype=np.float32)
        out[fit_rows] = model.fit_transform(vectors[fit_rows])
        rest = np.setdiff1d(np.arange(n), fit_rows)
        for s in range(0, len(rest), 20_000):
            part = rest[s : s + 20_000]
            out[part] = model.transform(vectors[part])
        return out


_kernels_cached = False


def _cache_kernels() -> None:
    """Keep UMAP's and pynndescent's compiled numba kernels on disk, so a fresh process loads them instead of compiling.

    umap-learn declares its kernels without ``cache=True``, so every new process (each Airflow task) spent ~20 s
    compiling them; with the on-disk cache, laying out 917 users in a fresh process took 3.3 s instead of 22.7 s.
    ``Dispatcher.enable_caching()`` is numba's public method behind that flag, called on each kernel before its
    first compile; a kernel numba cannot cache is compiled as before.
    """
    global _kernels_cached
    if _kernels_cached:
        return
    import sys

    from numba.core.dispatcher import Dispatcher

    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in ("umap", "pynndescent") and module is not None:
            for obj in list(vars(module).values()):
                if isinstance(obj, Dispatcher):
                    obj.enable_caching()
    _kernels_cached = True


def warm_jit(n: int = 300, seed: int = 0) -> float:
    """Compile the numba kernels a layout uses into their on-disk cache (``make setup``, once per virtualenv);
    returns the seconds it took. Otherwise the first map after setup spends ~40 s compiling (see
    :func:`_cache_kernels`: without it every process compiled UMAP's kernels again)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    umap_layout(rng.normal(size=(n, 16)).astype(np.float32), seed=seed)
    return time.perf_counter() - t0


def _knn(points: np.ndarray, queries: np.ndarray, k: int, *, cosine: bool) -> np.ndarray:
    """Row indices of the ``k`` nearest points of each query (query rows = ``queries`` indices, itself left out)."""
    out = np.zeros((len(queries), k), dtype=np.int64)
    for s in range(0, len(queries), 512):
        q = queries[s : s + 512]
        if cosine:
            dist = -(points[q] @ points.T)
        else:
            dist = ((points[q][:, None, :] - points[None, :, :]) ** 2).sum(-1)
        dist[np.arange(len(q)), q] = np.inf
        out[s : s + len(q)] = np.argpartition(dist, k, axis=1)[:, :k]
    return out


def neighbour_preservation(vectors: np.ndarray, xy: np.ndarray, *, k: int = K, sample: int = 2000, seed: int = 0) -> float:
    """Share of each user's ``k`` nearest in embedding space (cosine) that stay among its ``k`` nearest
    on the map (Euclidean), over everyone; mean over up to ``sample`` users drawn at random."""
    n = len(vectors)
    if n <= k + 1:
        return float("nan")
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    rng = np.random.default_rng(seed)
    queries = np.sort(rng.choice(n, size=min(sample, n), replace=False))
    emb = _knn(unit.astype(np.float32), queries, k, cosine=True)
    flat = _knn(np.asarray(xy, dtype=np.float64), queries, k, cosine=False)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(emb, flat)]))


def write_layout(settings: Any, frame: pd.DataFrame, meta: dict[str, Any]) -> Path:
    """Store one version's layout (columns ``COLUMNS``) and its sidecar; keeps the ``KEEP`` newest."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"a layout needs the columns {missing}")
    folder = _dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    name = str(meta["index_version"])
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    frame[list(COLUMNS)].to_parquet(tmp, index=False)
    commit_file(tmp, folder / f"{name}.parquet")
    atomic_write_text(folder / f"{name}.json", json.dumps({**meta, "built_at": time.time()}, indent=1))
    for old in sorted(folder.glob("*.parquet"), key=lambda p: p.stat().st_mtime)[:-KEEP]:
        old.unlink(missing_ok=True)
        old.with_suffix(".json").unlink(missing_ok=True)
    return folder / f"{name}.parquet"


def layout_meta(settings: Any, index_version: str | None = None) -> dict[str, Any]:
    """The sidecar of ``index_version``'s layout, else of the newest one; LayoutNotBuilt when none."""
    folder = _dir(settings)
    path = folder / f"{index_version}.json" if index_version else None
    if path is None or not path.is_file():
        found = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
        if not found:
            raise LayoutNotBuilt("no taste map layout built yet: run 'soundmates map build' after 'soundmates index build'")
        path = found[-1]
    return json.loads(path.read_text(encoding="utf-8"))


def read_layout(settings: Any, index_version: str | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(layout frame, sidecar) of ``index_version`` (else the newest layout); LayoutNotBuilt when none."""
    meta = layout_meta(settings, index_version)
    path = _dir(settings) / f"{meta['index_version']}.parquet"
    if not path.is_file():
        raise LayoutNotBuilt(f"the taste map layout {path.name} is missing: run 'soundmates map build'")
    return pd.read_parquet(path), meta
