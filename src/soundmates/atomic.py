"""Durable atomic file writes: a reader sees the old file or the new one, never half of one, even after a crash.

``atomic_write_bytes(path, data)`` writes a temporary file in the same directory (so the rename
never crosses file systems), fsyncs it, ``os.replace``s it over ``path`` and fsyncs the directory
(so the rename itself survives a power loss). What a library writes itself (``to_parquet``,
``np.save``, a memmap) goes to a temporary path and is put in place with ``commit_file``; a
directory written aside (a model or index version) with ``commit_directory``: the same
fsync-rename-fsync, so there is one mechanism. Every stage may use it (floor 1: imports nothing
of the package).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "commit_directory",
    "commit_file",
    "fsync_dir",
    "fsync_file",
]


def fsync_dir(path: Path | str) -> None:
    """Make renames and creations inside directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path | str) -> None:
    """Flush a file that was written by someone else (e.g. a library's ``save``) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path | str, data: bytes, *, mode: int | None = None, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically and durably; ``mode`` (e.g. 0o600) is set before the rename.

    ``durable=False`` skips both fsyncs (still atomic: a reader never sees half a file) for caches
    whose loss after a power cut only costs refetching them. The temporary file is removed if
    anything fails, and ``path`` is then left as it was.
    """
    path = Path(path)
    try:
        fd, tmp = _create_temporary(path)
    except FileNotFoundError:  # the directory is new (checked only then: ingest writes ~10 files a user)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temporary(path)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _create_temporary(path: Path) -> tuple[int, str]:
    """A new file beside ``path`` (mode 0600, as ``mkstemp`` makes), named with 96 random bits.

    ``os.urandom`` and one ``O_EXCL`` open instead of ``tempfile.mkstemp`` and a file object: its
    name generator and path checks cost ~30-80 us of the ~350 us a 3 KB write takes here (ingest
    writes a raw page per API call; the rest is the file system creating the file).
    """
    for _ in range(100):
        tmp = os.path.join(path.parent, f".tmp-{path.name[:40]}-{os.urandom(12).hex()}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def atomic_write_text(
    path: Path | str, text: str, *, encoding: str = "utf-8", mode: int | None = None, durable: bool = True
) -> None:
    """``atomic_write_bytes`` of ``text`` encoded with ``encoding``."""
    atomic_write_bytes(path, text.encode(encoding), mode=mode, durable=durable)


def commit_file(tmp: Path | str, path: Path | str, *, durable: bool = True) -> None:
    """Put ``tmp`` (a finished file in ``path``'s directory, written by a library) in place of ``path``.

    fsync ``tmp``, ``os.replace`` it over ``path``, fsync the directory; ``durable=False`` only renames.
    ``tmp`` is removed if anything fails, and ``path`` is then left as it was.
    """
    path = Path(path)
    try:
        if durable:
            fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def commit_directory(tmp_dir: Path | str, path: Path | str) -> None:
    """Publish the directory ``tmp_dir`` (written aside, next to ``path``) as ``path``, durably.

    Every file under it and the directories themselves are fsynced before the rename and the parent
    after it, so after a crash ``path`` is either absent or whole. ``path`` must not exist yet
    (a version directory is written once). On failure ``tmp_dir`` is left for the caller to remove.
    """
    tmp_dir, path = Path(tmp_dir), Path(path)
    for sub in sorted(tmp_dir.rglob("*"), reverse=True):  # files before the directories holding them
        if sub.is_file():
            fsync_file(sub)
        elif sub.is_dir():
            fsync_dir(sub)
    fsync_dir(tmp_dir)
    os.replace(tmp_dir, path)
    fsync_dir(path.parent)
