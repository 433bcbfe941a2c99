"""The fresh buffer: users added since the last build, searched exactly beside Annoy.

Annoy cannot add items to a built index (its maintainers advise rebuilding, and searching a
small index of recent items beside the big one). The buffer is one ``.npz`` file replaced
atomically on every change, so a reader sees the old or the new buffer, never half of one.
A damaged buffer is served as empty with a warning (its users are in the store and come back with
the next build); the next write moves it aside (``fresh.npz.damaged-<time>``), never over it.
"""

from __future__ import annotations

import io
import logging
import math
import os
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock

from soundmates.index._files import atomic_write_bytes, stat_key

log = logging.getLogger("soundmates.index")


class FreshUnreadable(ValueError):
    """The fresh buffer file exists but is not a valid buffer."""


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
    # One float64 dot product checks both: NaN or inf anywhere makes it non-finite, and float32
    # values cannot overflow it (this runs on every query: numpy's isfinite + norm cost 4x as much).
    square = float(np.dot(v, v.astype(np.float64)))
    if not math.isfinite(square):
        raise ValueError("vector holds NaN or infinite values")
    norm = math.sqrt(square)
    if norm == 0.0:
        raise ValueError("vector is all zeros: it has no direction to compare")
    return v / norm


def _check(e: FreshEntries, name: str) -> FreshEntries:
    n = e.ids.shape[0]
    if (
        e.ids.ndim != 1
        or e.vectors.ndim != 2
        or e.vectors.shape[0] != n
        or e.added_at.shape != (n,)
        or e.model_versions.shape != (n,)
    ):
        raise FreshUnreadable(f"{name} is damaged (its arrays have inconsistent shapes)")
    if n and (not np.all(np.isfinite(e.vectors)) or np.any(np.abs(np.linalg.norm(e.vectors, axis=1) - 1.0) > 1e-3)):
        raise FreshUnreadable(f"{name} is damaged (vectors are not finite unit vectors)")
    return e


class FreshBuffer:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = FileLock(str(self.path) + ".lock")
        self._mem_lock = threading.Lock()
        self._cache_key: tuple | None = None
        self._cache = FreshEntries.empty()
        self._problem: str | None = None

    # --- reading -------------------------------------------------------------
    def _read_file(self) -> FreshEntries:
        """The entries on disk (empty if absent); FreshUnreadable if the file is not a valid buffer."""
        try:
            with np.load(self.path, allow_pickle=False) as z:
                e = FreshEntries(
                    ids=np.asarray(z["ids"]).astype(str),
                    vectors=np.asarray(z["vectors"]).astype(np.float32),
                    added_at=np.asarray(z["added_at"]).astype(np.float64),
                    model_versions=np.asarray(z["model_versions"]).astype(str),
                )
        except (FileNotFoundError, NotADirectoryError):
            return FreshEntries.empty()
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, RuntimeError, AttributeError) as exc:
            raise FreshUnreadable(f"{self.path.name} is damaged ({type(exc).__name__}: {str(exc)[:100]})") from None
        return _check(e, self.path.name)

    def _load(self) -> tuple[FreshEntries, str | None]:
        key = stat_key(self.path)
        with self._mem_lock:
            if key != self._cache_key:
                try:
                    self._cache, self._problem = self._read_file(), None
                except FreshUnreadable as e:
                    self._cache, self._problem = FreshEntries.empty(), str(e)
                self._cache_key = key
            return self._cache, self._problem

    def snapshot(self) -> tuple[FreshEntries, str | None]:
        """(entries, problem) read together: one stat of the file."""
        return self._load()

    def entries(self) -> FreshEntries:
        """The buffer's entries; empty if the file is damaged (``problem`` says why)."""
        return self._load()[0]

    @property
    def problem(self) -> str | None:
        """Why the buffer on disk cannot be read; None if it can (or is absent)."""
        return self._load()[1]

    def __len__(self) -> int:
        return len(self.entries())

    def __contains__(self, user_id: str) -> bool:
        return self.entries().position(user_id) is not None

    def vector(self, user_id: str) -> np.ndarray | None:
        e = self.entries()
        pos = e.position(user_id)
        return None if pos is None else e.vectors[pos]

    # --- writing -------------------------------------------------------------
    def _read_for_write(self) -> FreshEntries:
        """The entries to change (under the lock); a damaged file is moved aside first, never overwritten."""
        try:
            return self._read_file()
        except FreshUnreadable as e:
            aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
            os.replace(self.path, aside)
            log.warning("%s: moved aside to %s; the buffer starts empty", e, aside.name)
            return FreshEntries.empty()

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

    def add(self, user_id: str, vector, model_version: str = "", *, at: float | None = None) -> float:
        """Add or replace ``user_id``'s vector (a re-added user keeps one entry, the newest); returns its added_at."""
        if not isinstance(user_id, str) or not user_id:
            raise ValueError(f"user_id must be a non-empty string, got {user_id!r}")
        v = normalise(vector)
        with self._lock:
            e = self._read_for_write()
            if len(e) and e.vectors.shape[1] != v.shape[0]:
                raise ValueError(
                    f"vector for {user_id!r} has dimension {v.shape[0]}, the fresh buffer holds dimension "
                    f"{e.vectors.shape[1]} (embedded by another model?): rebuild the index first"
                )
            added_at = time.time() if at is None else float(at)
            keep = e.ids != user_id
            self._write(
                FreshEntries(
                    ids=np.append(e.ids[keep], user_id),
                    vectors=np.vstack([e.vectors[keep].reshape(-1, v.shape[0]), v[None, :]]),
                    added_at=np.append(e.added_at[keep], added_at),
                    model_versions=np.append(e.model_versions[keep], model_version),
                )
            )
            return added_at

    def discard(self, user_ids, *, added_before: float | None = None) -> int:
        """Drop these users (only entries added before ``added_before``, if given); returns how many."""
        wanted = set(user_ids)
        if not wanted:
            return 0
        with self._lock:
            e = self._read_for_write()
            drop = np.array([u in wanted for u in e.ids], dtype=bool)
            if added_before is not None:
                drop &= e.added_at < added_before
            n = int(drop.sum())
            if n:
                keep = ~drop
                self._write(FreshEntries(e.ids[keep], e.vectors[keep], e.added_at[keep], e.model_versions[keep]))
            return n
