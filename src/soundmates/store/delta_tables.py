"""Delta table plumbing of the embedded store: table paths, writer locks, opening with repair, commit retries.

:class:`~soundmates.store.delta.DeltaFeatureStore` builds the feature-store contract on
these; nothing here knows about feature groups beyond their ``<name>_<version>`` directory.

With an object store (``remote``), each table lives at ``<remote>/<name>_<version>`` and
``root`` only holds this host's writer locks: writers on other hosts are kept apart by Delta's
own commit protocol, which on S3 creates each commit with a conditional PUT (``If-None-Match``),
so of two writers of one version exactly one wins and the other retries on a fresh snapshot.
Damage repair is a local-disk mechanism: a remote table that fails to open is reported.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from soundmates.objstore import ObjectStore
from soundmates.store.base import StoreUnavailable

log = logging.getLogger(__name__)

TABLE_DIR = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)_(?P<version>\d+)$")


class DeltaTables:
    """The tables under ``root``: where each lives, its writer lock, and how it is opened and repaired."""

    root: Path
    remote: ObjectStore | None
    lock_timeout_s: float
    commit_attempts: int

    # --- paths and locks -----------------------------------------------------------
    def table_path(self, group: str, version: int = 1) -> Path:
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError(f"feature group version must be an integer >= 1, got {version!r}")
        return self.root / f"{group}_{version}"

    def _lock(self, group: str, version: int):
        from filelock import FileLock

        lock_dir = self.root / ".locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        # is_singleton: every store object in this process shares one lock per table, so a
        # read-modify-write under ``exclusive`` can call ``upsert`` without deadlocking itself.
        return FileLock(lock_dir / f"{group}_{version}.lock", is_singleton=True)

    @contextlib.contextmanager
    def _locked(self, group: str, version: int) -> Iterator[None]:
        from filelock import Timeout

        lock = self._lock(group, version)
        try:
            lock.acquire(timeout=self.lock_timeout_s)
        except Timeout as exc:
            raise StoreUnavailable(
                f"feature group {group!r} v{version} is locked by another writer for more than "
                f"{self.lock_timeout_s:.0f}s (lock file {lock.lock_file})"
            ) from exc
        try:
            yield
        finally:
            lock.release()

    # --- tables -----------------------------------------------------------------------
    def uri(self, path: Path) -> str:
        """Where deltalake finds the table of ``path``: the local directory, or its object-store URL."""
        return str(path) if self.remote is None else self.remote.url(path.name)

    @property
    def storage_options(self) -> dict[str, str] | None:
        return None if self.remote is None else self.remote.storage_options()

    def _open_raw(self, path: Path, as_of: int | None = None):
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            return DeltaTable(self.uri(path), version=as_of, storage_options=self.storage_options)
        except TableNotFoundError:
            return None

    def _open(self, path: Path, as_of: int | None = None):
        """The table at its latest (or ``as_of``) version, or None when it was never created.

        A table that fails to open is repaired first (see :meth:`_recover`); an ``as_of`` the log
        does not hold raises deltalake's own error (``read`` turns it into DataVersionNotFound)."""
        try:
            return self._open_raw(path, as_of)
        except Exception as exc:
            if as_of is not None and (self.remote is not None or not (path / "_delta_log" / f"{as_of:020d}.json").is_file()):
                raise
            self._recover(path, exc)
            return self._open_raw(path, as_of)

    @staticmethod
    def _label(path: Path) -> tuple[str, int, str]:
        m = TABLE_DIR.match(path.name)
        name, version = (m["name"], int(m["version"])) if m else (path.name, 1)
        return name, version, f"feature group {name!r} v{version}"

    def _recover(self, path: Path, error: BaseException) -> None:
        """Repair a table that failed to open or read (under its writer lock), or raise StoreDamaged."""
        from soundmates.store.repair import Repair, readable

        name, version, label = self._label(path)
        if self.remote is not None:
            from soundmates.store.repair import _short

            raise StoreUnavailable(f"{label} at {self.uri(path)} cannot be read: {_short(error)}")
        with self._locked(name, version):
            if readable(path) and not any(not e.is_file() for e in (path / "_delta_log").iterdir()):
                return  # another process repaired it while we waited for the lock
            log.warning("%s", Repair(path, label).run(error))

    def _clear_log_obstacles(self, path: Path) -> None:
        """Before a write (lock held): a non-file where a commit goes would fail every commit."""
        from soundmates.store.repair import Repair

        if self.remote is not None:
            return  # object stores have no directories to be in the way
        repair = Repair(path, self._label(path)[2])
        if repair.non_files():
            log.warning("%s", repair._warning("the next commit could not have been written"))

    def _read_table(self, path: Path, as_of: int | None, columns: list[str] | None = None) -> pa.Table | None:
        """The whole table as Arrow (None: never written); a data file that fails to read triggers a repair."""
        dt = self._open(path, as_of)
        if dt is None:
            return None
        try:
            return dt.to_pyarrow_table(columns=columns)
        except Exception as exc:
            if as_of is not None:
                raise
            self._recover(path, exc)
            dt = self._open(path)
            return None if dt is None else dt.to_pyarrow_table(columns=columns)

    @staticmethod
    def _stored_schema(dt) -> pa.Schema:
        return pa.schema(dt.schema())

    def _retrying(self):
        from deltalake.exceptions import CommitFailedError
        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

        return Retrying(
            retry=retry_if_exception_type(CommitFailedError),
            stop=stop_after_attempt(self.commit_attempts),
            wait=wait_random_exponential(multiplier=0.05, max=2.0),
            reraise=True,
        )
