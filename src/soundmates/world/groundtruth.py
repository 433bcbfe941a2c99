"""The hidden taste of a world's users, for evaluation only (the server never serves it).

``load_taste`` returns the taste vectors in ``users.txt`` order; ``true_neighbours`` ranks users
by cosine similarity of those vectors, restricted to the users an evaluation actually has.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from soundmates.world.directory import TRUTH_DIR, WorldError

_CHUNK = 4096


def _user_ids(world_dir: Path) -> list[str]:
    path = world_dir / "users.txt"
    if not path.is_file():
        raise WorldError(f"{world_dir} is not a world: users.txt is missing")
    return path.read_text(encoding="utf-8").splitlines()


def load_taste(world_dir: str | Path, *, mmap: bool = False) -> tuple[list[str], np.ndarray]:
    """(user ids, float32 array (n_users, dim)) of the hidden taste; ``mmap`` for 1M-user worlds."""
    world_dir = Path(world_dir)
    path = world_dir / TRUTH_DIR / "taste.npy"
    if not path.is_file():
        raise WorldError(f"{world_dir} has no ground truth ({TRUTH_DIR}/taste.npy is missing)")
    taste = np.load(path, mmap_mode="r" if mmap else None)
    ids = _user_ids(world_dir)
    if len(ids) != taste.shape[0]:
        raise WorldError(f"{world_dir}: users.txt has {len(ids)} ids but the ground truth {taste.shape[0]} rows")
    return ids, taste


def taste_columns(world_dir: str | Path) -> list[str]:
    meta = json.loads((Path(world_dir) / "world.json").read_text(encoding="utf-8"))
    return list(meta["truth"]["taste_columns"])


def true_neighbours(world_dir: str | Path, user_ids: list[str], k: int) -> dict[str, list[str]]:
    """For each of ``user_ids``, the ``k`` most similar others among ``user_ids`` (cosine of hidden taste).

    Unknown ids raise ``KeyError`` naming them; ties break by users.txt order (deterministic).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    all_ids, taste = load_taste(world_dir, mmap=True)
    index = {u: i for i, u in enumerate(all_ids)}
    missing = [u for u in user_ids if u not in index]
    if missing:
        raise KeyError(f"{len(missing)} user id(s) not in this world, e.g. {missing[:3]!r}")
    unique = list(dict.fromkeys(user_ids))
    rows = np.array([index[u] for u in unique], dtype=np.int64)
    order = np.argsort(rows, kind="stable")  # users.txt order for tie-breaking
    rows_sorted = rows[order]
    vecs = np.asarray(taste[rows_sorted], dtype=np.float32)
    vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    k_eff = min(k, len(unique) - 1)
    out: dict[str, list[str]] = {}
    for start in range(0, len(vecs), _CHUNK):
        sims = vecs[start : start + _CHUNK] @ vecs.T
        for r in range(sims.shape[0]):
            sims[r, start + r] = -np.inf  # never one's own neighbour
        if k_eff <= 0:
            top = np.zeros((sims.shape[0], 0), dtype=np.int64)
        else:
            # Stable sort on -sim keeps users.txt order among equal similarities.
            top = np.argsort(-sims, axis=1, kind="stable")[:, :k_eff]
        for r in range(sims.shape[0]):
            out[unique[order[start + r]]] = [unique[order[j]] for j in top[r]]
    return out
