"""The fresh buffer: users added since the last build, searched exactly beside Annoy.

Annoy cannot add items to a built index (its maintainers advise rebuilding, and searching a
small index of recent items beside the big one). The buffer is one ``.npz`` file replaced
atomically on every change, so a reader sees the old or the new buffer, never half of one.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock

from soundmates.index._files import atomic_write_bytes, stat_key


@dataclass(frozen=True)
class FreshEntries:
    ids: np.ndarray  # str, (n,)
    vectors: np.ndarray  # float32, (n, dim), L2-normalised
    added_at: np.ndarray  # float64 epoch seconds, (n,)
    model_versions: np.ndarray  # str, (n,)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @classmethod
    def empty(cls, dim: int = 0) -> FreshEntries:
        return cls(
            np.array([], dtype=str),
            np.zeros((0, dim), dtype=np.float32),
            np.zeros(0, dtype=np.float64),
            np.array([], dtype=str),
        )

    def position(self, user_id: str) -> int | None:
        hits = np.flatnonzero(self.ids == user_id)
        return int(hits[-1]) if hits.size else None


def normalise(vector) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(v)):
        raise ValueError("vector holds NaN or infinite values")
    norm = float(np.linalg.norm(v))
    if norm == 0.0:
        raise ValueError("vector is all zeros: it has no direction to compare")
    return v / norm


class FreshBuffer:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = FileLock(str(self.path) + ".lock")
        self._mem_lock = threading.Lock()
        self._cache_key: tuple | None = None
        self._cache = FreshEntries.empty()

    # --- reading -------------------------------------------------------------
    def _read_file(self) -> FreshEntries:
        if not self.path.exists():
            return FreshEntries.empty()
        with np.load(self.path, allow_pickle=False) as z:
            return FreshEntries(
                ids=z["ids"].astype(str),
                vectors=z["vectors"].astype(np.float32),
                added_at=z["added_at"].astype(np.float64),
                model_versions=z["model_versions"].astype(str),
            )

    def entries(self) -> FreshEntries:
        key = stat_key(self.path)
        with self._mem_lock:
            if key != self._cache_key:
                self._cache = self._read_file() if key is not None else FreshEntries.empty()
                self._cache_key = key
            return self._cache

    def __len__(self) -> int:
        return len(self.entries())

    def __contains__(self, user_id: str) -> bool:
        return self.entries().position(user_id) is not None

    def vector(self, user_id: str) -> np.ndarray | None:
        e = self.entries()
        pos = e.position(user_id)
        return None if pos is None else e.vectors[pos]

    # --- writing -------------------------------------------------------------
    def _write(self, e: FreshEntries) -> None:
        buf = io.BytesIO()
        np.savez(
            buf,
            ids=e.ids.astype(str),
            vectors=e.vectors.astype(np.float32),
            added_at=e.added_at.astype(np.float64),
            model_versions=e.model_versions.astype(str),
        )
        atomic_write_bytes(self.path, buf.getvalue())

    def add(self, user_id: str, vector, model_version: str = "") -> None:
        """Add or replace ``user_id``'s vector (a re-added user keeps one entry, the newest)."""
        if not isinstance(user_id, str) or not user_id:
            raise ValueError(f"user_id must be a non-empty string, got {user_id!r}")
        v = normalise(vector)
        with self._lock:
            e = self._read_file()
            if len(e) and e.vectors.shape[1] != v.shape[0]:
                raise ValueError(
                    f"vector for {user_id!r} has dimension {v.shape[0]}, the fresh buffer holds dimension "
                    f"{e.vectors.shape[1]} (embedded by another model?): rebuild the index first"
                )
            keep = e.ids != user_id
            self._write(
                FreshEntries(
                    ids=np.append(e.ids[keep], user_id),
                    vectors=np.vstack([e.vectors[keep].reshape(-1, v.shape[0]), v[None, :]]),
                    added_at=np.append(e.added_at[keep], time.time()),
                    model_versions=np.append(e.model_versions[keep], model_version),
                )
            )

    def discard(self, user_ids, *, added_before: float | None = None) -> int:
        """Drop these users (only entries added before ``added_before``, if given); returns how many."""
        wanted = set(user_ids)
        if not wanted:
            return 0
        with self._lock:
            e = self._read_file()
            drop = np.array([u in wanted for u in e.ids], dtype=bool)
            if added_before is not None:
                drop &= e.added_at < added_before
            n = int(drop.sum())
            if n:
                keep = ~drop
                self._write(FreshEntries(e.ids[keep], e.vectors[keep], e.added_at[keep], e.model_versions[keep]))
            return n
