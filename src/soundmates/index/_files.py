"""File helpers of the index directory: checksums, change detection, and the package's atomic writes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from soundmates.atomic import atomic_write_bytes, fsync_dir, fsync_file

__all__ = ["atomic_write_bytes", "fsync_dir", "fsync_file", "sha256_file", "stat_key"]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def stat_key(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime_ns): changes on every os.replace and on any in-place write; None if absent."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        # Unreadable metadata: a key that never matches a cache, so the caller re-reads and reports it.
        return (-1, -1, -1)
    return (st.st_ino, st.st_size, st.st_mtime_ns)
