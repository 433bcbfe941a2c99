"""Writing one index version: the rows to index, the backend's file, ids, the pair sample and the manifest, renamed into place.

A version directory is written aside (``versions/.tmp-<version>``), every file fsynced, then renamed
into ``versions/<version>`` and the versions directory fsynced: a reader never sees half a version.
Publishing it (``CURRENT``) is :class:`~soundmates.index.versions.VersionStore`'s job.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from soundmates.atomic import commit_directory
from soundmates.index._files import sha256_file
from soundmates.index.backends import COMMON_FILES
from soundmates.index.tombstones import TombState
from soundmates.index.versions import MANIFEST_FILE

IDS_FILE, PAIRS_FILE = COMMON_FILES
PAIR_SAMPLE = 20_000


def finite_time(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def as_matrix(user_ids: Sequence[str], vectors) -> tuple[list[str], np.ndarray]:
    """(ids as strings, vectors as a float32 users x dim matrix); ValueError if the shapes do not fit."""
    ids = [str(u) for u in user_ids]
    mat = np.asarray(vectors, dtype=np.float32)
    if mat.ndim != 2:
        raise ValueError(f"vectors must be a 2-D array (users x dim), got shape {mat.shape}")
    if mat.shape[0] != len(ids):
        raise ValueError(f"{len(ids)} user ids but {mat.shape[0]} vectors")
    if mat.shape[1] == 0:
        raise ValueError("vectors have dimension 0")
    return ids, mat


def select_rows(ids: list[str], mat: np.ndarray, tombs: TombState, read_at: float):
    """Rows to index: usable vectors, the last row of a duplicated id, no user removed before ``read_at``.

    Returns (ids kept, their normalised float32 vectors, ids skipped as unusable, duplicate rows dropped, removed ids).
    """
    norms = np.linalg.norm(mat, axis=1)
    good = np.all(np.isfinite(mat), axis=1) & np.isfinite(norms) & (norms > 0) & np.array([bool(u) for u in ids], dtype=bool)
    skipped = [u for u, g in zip(ids, good) if not g]
    last_row: dict[str, int] = {}
    removed_rows = 0
    removed: set[str] = set()
    for i, (u, g) in enumerate(zip(ids, good)):
        if not g:
            continue
        t = tombs.users.get(u)
        if t is not None and t.blocks(read_at):
            removed.add(u)
            removed_rows += 1
            continue
        last_row[u] = i
    duplicates = int(good.sum()) - len(last_row) - removed_rows
    rows = np.fromiter(last_row.values(), dtype=np.int64, count=len(last_row))
    data = mat[rows] / norms[rows, None] if len(rows) else np.zeros((0, mat.shape[1]), np.float32)
    return list(last_row), data.astype(np.float32), skipped, duplicates, removed


def manifest_base(
    backend_name: str,
    meta: dict,
    read_at: float,
    tombs: TombState,
    data: np.ndarray,
    skipped: list,
    duplicates: int,
    n_removed: int,
) -> dict[str, Any]:
    """The manifest fields of a build (``meta`` minus the fields it names; the rest is kept under ``meta``)."""
    return {
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "backend": backend_name,
        "model_version": meta.pop("model_version", None),
        "feature_data_version": meta.pop("feature_data_version", None),
        "features_read_at": read_at,
        "tombstones_count": len(tombs.users),
        "count": int(data.shape[0]),
        "dim": int(data.shape[1]),
        "skipped": skipped[:100],
        "n_skipped": len(skipped),
        "n_removed": n_removed,
        "n_duplicates": duplicates,
        "meta": meta,
    }


def sample_pair_similarities(data: np.ndarray, seed: int) -> np.ndarray:
    """Cosine of random distinct pairs: the reference distribution for "closer than X% of pairs"."""
    n = data.shape[0]
    if n < 2:
        return np.zeros(0, dtype=np.float32)
    rng = np.random.default_rng(seed + 1)
    m = min(PAIR_SAMPLE, n * (n - 1) // 2 * 2)
    i = rng.integers(0, n, m)
    j = (i + rng.integers(1, n, m)) % n  # never i itself
    sims = np.einsum("ij,ij->i", data[i], data[j]).astype(np.float32)
    return np.sort(np.clip(sims, -1.0, 1.0))


def write_version(versions_dir: Path, backend, version: str, data: np.ndarray, ids: list[str], base: dict, **opts) -> dict:
    """Write the version directory aside, fsync it, rename it into place; returns its manifest."""
    versions_dir.mkdir(parents=True, exist_ok=True)
    tmp_dir = versions_dir / f".tmp-{version}"
    tmp_dir.mkdir()
    try:
        params = backend.build(tmp_dir, data, **opts)
        (tmp_dir / IDS_FILE).write_text(json.dumps(ids, ensure_ascii=False), encoding="utf-8")
        with open(tmp_dir / PAIRS_FILE, "wb") as f:
            np.save(f, sample_pair_similarities(data, int(opts.get("seed", 0))))
        files = {
            name: {"sha256": sha256_file(tmp_dir / name), "bytes": (tmp_dir / name).stat().st_size}
            for name in backend.files + COMMON_FILES
        }
        manifest = {"version": version, **base, **params, "files": files, "checksum": files[backend.files[0]]["sha256"]}
        (tmp_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
        commit_directory(tmp_dir, versions_dir / version)  # fsyncs every file, then renames
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return manifest
