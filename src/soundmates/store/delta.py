"""Embedded feature store: one Delta Lake table per feature group and version.

Delta Lake is the table format Hopsworks' own offline store uses, so the
embedded store behaves like the server one (upsert by primary key, time
travel by commit) without a server.

Concurrency, which is what Airflow tasks and the dashboard need:

* Writers of one table are serialised by an inter-process file lock
  (``<root>/.locks/<table>.lock``, ``filelock``); a commit that still loses a
  race (a writer that does not take our lock) is retried on a fresh snapshot.
* Readers take no lock. A Delta commit is one atomically created log file and
  data files are never rewritten in place, so a reader sees a whole version,
  never a partial write.
* Schema checks happen before anything is written: a rejected batch leaves
  the table exactly as it was.
* A damaged table (garbled commit, lost checkpoint, a directory where a log
  file should be, a vanished data file) is repaired under the writer lock
  (``store/repair.py``: the damage moved aside, back to the last good version)
  with one warning, or refused with :class:`StoreDamaged` naming the table.

On an object store (``SOUNDMATES_DATA_URL``, ``remote``) the tables live under its ``store/``
prefix: the file lock still serialises this host's writers, and Delta's conditional-put commits
keep writers on different hosts from losing each other's commits (the retry above).

Paths, locks, opening and repair live in ``store/delta_tables.py``; this module is the contract
(upsert, read, delete, maintenance) on top of them.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa

from soundmates.objstore import ObjectStore
from soundmates.store.base import (
    DataVersionNotFound,
    FeatureStore,
    GroupInfo,
    GroupSpec,
    StoreDamaged,
    check_compatible,
    empty_frame,
    group_spec,
    known_groups,
    to_arrow,
)
from soundmates.store.delta_tables import TABLE_DIR, DeltaTables

# Deletes are sent as SQL predicates; chunk long id lists so a predicate stays small.
_DELETE_CHUNK = 500


def _sql_literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


class DeltaFeatureStore(DeltaTables, FeatureStore):
    """Feature groups as Delta tables under ``root`` (``settings.store_dir``), or under ``remote`` (then ``root`` holds locks)."""

    backend = "embedded"

    def __init__(
        self,
        root: Path | str,
        *,
        lock_timeout_s: float = 300.0,
        commit_attempts: int = 8,
        compact_after_files: int | None = 32,
        remote: ObjectStore | None = None,
    ):
        """``compact_after_files``: after a write leaves more data files than this, compact them
        (small frequent upserts such as the inbox otherwise make every read open hundreds of
        files). Compaction is a commit of its own with identical rows; old versions stay readable."""
        self.root = Path(root)
        self.remote = remote
        self.lock_timeout_s = lock_timeout_s
        self.commit_attempts = commit_attempts
        self.compact_after_files = compact_after_files

    @contextlib.contextmanager
    def exclusive(self, group: str, *, version: int = 1) -> Iterator[None]:
        group_spec(group)
        with self._locked(group, version):
            yield

    # --- the contract ---------------------------------------------------------------
    def upsert(self, group: str, df: pd.DataFrame, *, version: int = 1) -> int:
        spec = group_spec(group)
        path = self.table_path(group, version)
        # A declared schema is checked before waiting for the lock (a bad frame fails fast);
        # without one, the stored table's schema decides, which can only be read under the lock.
        table = to_arrow(group, df, spec.schema, spec.primary_key) if spec.schema is not None else None
        with self.exclusive(group, version=version):
            self._clear_log_obstacles(path)
            dt = self._open(path)
            stored = self._stored_schema(dt) if dt is not None else None
            if table is None:
                table = to_arrow(group, df, stored, spec.primary_key)
            if dt is None or stored is None:  # stored is None exactly when there is no table yet
                return self._create(spec, path, table)
            # The features stage may add columns to its declared schema (additively): the table
            # gains them (null in old rows). Anything else that differs from the table is refused.
            added = [f for f in table.schema if f.name not in stored.names] if spec.schema is not None else []
            if added and any(not f.nullable for f in added):
                added = []  # a new non-null column cannot be added to existing rows: let the check name it
            check_compatible(group, table.schema, pa.schema([*stored, *added]))
            table = table.select([*stored.names, *(f.name for f in added)])
            table = table.cast(pa.schema([*stored, *added]))
            if table.num_rows == 0 and not added:
                return dt.version()
            return self._merge(spec, path, table, evolve=bool(added))

    def upsert_arrow(self, group: str, table: pa.Table, *, version: int = 1) -> int:
        """Arrow end to end: the batch is checked and cast against the declared schema, one commit."""
        return self.upsert(group, table, version=version)  # to_arrow takes a pa.Table as is

    def _create(self, spec: GroupSpec, path: Path, table: pa.Table) -> int:
        from deltalake import DeltaTable, write_deltalake

        if self.remote is None:
            path.parent.mkdir(parents=True, exist_ok=True)
        # The primary key travels with the table (Delta rejects unknown table properties,
        # so it lives in the description) so ``groups()`` can report it for any table.
        write_deltalake(
            self.uri(path),
            table,
            mode="error",
            name=spec.name,
            description=json.dumps({"primary_key": list(spec.primary_key)}),
            storage_options=self.storage_options,
        )
        return DeltaTable(self.uri(path), storage_options=self.storage_options).version()

    def _merge(self, spec: GroupSpec, path: Path, table: pa.Table, *, evolve: bool = False) -> int:
        predicate = " AND ".join(f"t.{c} = s.{c}" for c in spec.primary_key)
        try:
            self._merge_once(path, table, predicate, evolve)
        except Exception as exc:
            from deltalake.exceptions import CommitFailedError

            if isinstance(exc, CommitFailedError):
                raise
            self._recover(path, exc)  # e.g. a data file of the target vanished; no-op when the table reads
            self._merge_once(path, table, predicate, evolve)
        return self._maybe_compact(path)

    def _merge_once(self, path: Path, table: pa.Table, predicate: str, evolve: bool) -> None:
        for attempt in self._retrying():
            with attempt:
                dt = self._open(path)  # a fresh snapshot on every attempt
                (
                    dt.merge(table, predicate, source_alias="s", target_alias="t", merge_schema=evolve)
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .execute()
                )
                break

    def _maybe_compact(self, path: Path) -> int:
        """Compact when the table has too many files (caller holds the lock); return the latest version."""
        dt = self._open(path)
        if self.compact_after_files is not None and len(dt.file_uris()) > self.compact_after_files:
            for attempt in self._retrying():
                with attempt:
                    self._open(path).optimize.compact()
            dt = self._open(path)
        return dt.version()

    def read(
        self,
        group: str,
        *,
        version: int = 1,
        as_of: int | None = None,
        keys: list[str] | None = None,
    ) -> pd.DataFrame:
        spec = group_spec(group)
        path = self.table_path(group, version)
        if as_of is not None and (not isinstance(as_of, int) or isinstance(as_of, bool) or as_of < 0):
            raise ValueError(f"as_of must be a data version (integer >= 0), got {as_of!r}")
        try:
            table = self._read_table(path, as_of)
        except StoreDamaged:
            raise
        except Exception as exc:  # deltalake raises a generic DeltaError for a version it does not have
            latest = self.data_version(group, version=version)
            raise DataVersionNotFound(
                f"feature group {group!r} v{version} has no data version {as_of} "
                f"(latest is {latest}; versions older than the vacuum retention are gone)"
            ) from exc
        if table is None:
            if as_of is not None:
                raise DataVersionNotFound(f"feature group {group!r} v{version} was never written (asked for as_of={as_of})")
            frame = empty_frame(spec)
        else:
            if keys is not None:
                table = self._filter_keys(spec, table, keys)
            frame = table.to_pandas()
        return self._sorted(spec, frame)

    def read_arrow(self, group: str, *, version: int = 1, as_of: int | None = None, columns: list[str] | None = None) -> pa.Table:
        """The group as an Arrow table (no pandas conversion: cheaper for training on many rows)."""
        spec = group_spec(group)
        try:
            table = self._read_table(self.table_path(group, version), as_of, columns)
        except StoreDamaged:
            raise
        except Exception as exc:
            raise DataVersionNotFound(f"feature group {group!r} v{version} has no data version {as_of}") from exc
        if table is None:
            if as_of is not None:
                raise DataVersionNotFound(f"feature group {group!r} v{version} was never written (asked for as_of={as_of})")
            empty = (
                spec.schema.empty_table()
                if spec.schema is not None
                else pa.table({c: pa.array([], pa.string()) for c in spec.primary_key})
            )
            return empty.select(columns) if columns else empty
        return table

    def sql(self, query: str, *, as_of: dict[str, int] | None = None, version: int = 1):
        """Run a DuckDB query over the groups it names (``FROM user_features``...); returns a DataFrame.

        ``as_of`` pins chosen groups to a data version, e.g. ``{"user_features": 12}``.
        Read-only: each group is a snapshot handed to DuckDB as Arrow.
        """
        import duckdb

        as_of = as_of or {}
        con = duckdb.connect()
        try:
            words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", query))
            for spec in known_groups():
                if spec.name in words:
                    con.register(spec.name, self.read_arrow(spec.name, version=version, as_of=as_of.get(spec.name)))
            return con.execute(query).df()
        finally:
            con.close()

    @staticmethod
    def _filter_keys(spec: GroupSpec, table: pa.Table, keys: list[str]) -> pa.Table:
        import pyarrow.compute as pc

        # ``keys`` are user ids; a group keyed by something else filters on its first key column.
        column = "user_id" if "user_id" in table.column_names else spec.primary_key[0]
        values = pa.array([str(k) for k in keys], type=pa.string())
        col = table[column]
        if col.type != pa.string():  # delta-rs may hand back string_view
            col = col.cast(pa.string())
        return table.filter(pc.is_in(col, value_set=values))

    @staticmethod
    def _sorted(spec: GroupSpec, frame: pd.DataFrame) -> pd.DataFrame:
        # Delta does not keep row order; a stable order makes reads comparable between versions.
        keys = [c for c in spec.primary_key if c in frame.columns]
        if keys and len(frame) > 1:
            frame = frame.sort_values(keys, kind="stable")
        return frame.reset_index(drop=True)

    def delete(self, group: str, user_ids: list[str], *, version: int = 1) -> int:
        spec = group_spec(group)
        if isinstance(user_ids, str):
            raise TypeError("delete() takes a list of user ids, not one string")
        ids = sorted({str(u) for u in user_ids})
        path = self.table_path(group, version)
        column = (
            "user_id"
            if "user_id" in (spec.schema.names if spec.schema is not None else spec.primary_key)
            else spec.primary_key[0]
        )
        if not ids:
            return 0
        removed = 0
        with self.exclusive(group, version=version):
            self._clear_log_obstacles(path)
            table = self._read_table(path, None, [column])
            if table is None:
                return 0
            # Only commit when something matches, so a no-op delete does not bump the data version.
            present = self._filter_keys(spec, table, ids)
            if present.num_rows == 0:
                return 0
            targets = sorted({str(v) for v in present[column].to_pylist()})
            for start in range(0, len(targets), _DELETE_CHUNK):
                chunk = targets[start : start + _DELETE_CHUNK]
                predicate = f"{column} IN ({', '.join(_sql_literal(u) for u in chunk)})"
                for attempt in self._retrying():
                    with attempt:
                        metrics = self._open(path).delete(predicate)
                removed += int(metrics.get("num_deleted_rows", 0))
        return removed

    def data_version(self, group: str, *, version: int = 1) -> int | None:
        group_spec(group)
        dt = self._open(self.table_path(group, version))
        return None if dt is None else dt.version()

    def _table_dirs(self) -> list[Path]:
        """Every directory (or object-store prefix) that holds a table, by ``root``-relative path."""
        from deltalake import DeltaTable

        if self.remote is not None:
            return [self.root / name for name in self.remote.dirs() if TABLE_DIR.match(name)]
        if not self.root.exists():
            return []
        # A table whose log is damaged is no "deltatable" to deltalake: open it to repair or name it.
        return [
            child
            for child in sorted(self.root.iterdir())
            if TABLE_DIR.match(child.name) and (DeltaTable.is_deltatable(str(child)) or (child / "_delta_log").exists())
        ]

    def groups(self) -> list[GroupInfo]:
        infos: list[GroupInfo] = []
        for child in self._table_dirs():
            m = TABLE_DIR.match(child.name)
            assert m is not None  # _table_dirs matched it
            dt, rows = self._counted(child)
            if dt is None:
                continue
            infos.append(
                GroupInfo(
                    name=m["name"],
                    version=int(m["version"]),
                    rows=rows,
                    data_version=dt.version(),
                    primary_key=self._primary_key_of(m["name"], dt),
                )
            )
        return infos

    def _counted(self, path: Path):
        """(table, row count); a table whose files fail to count is repaired first."""
        dt = self._open(path)
        if dt is None:
            return None, 0
        try:
            return dt, dt.to_pyarrow_dataset().count_rows()
        except Exception as exc:  # noqa: BLE001 - a lost or garbled data file
            self._recover(path, exc)
            dt = self._open(path)
            return (None, 0) if dt is None else (dt, dt.to_pyarrow_dataset().count_rows())

    @staticmethod
    def _primary_key_of(name: str, dt) -> list[str]:
        try:
            return list(group_spec(name).primary_key)
        except KeyError:
            try:
                return list(json.loads(dt.metadata().description or "{}").get("primary_key", []))
            except ValueError:
                return []

    # --- maintenance -------------------------------------------------------------------
    def history(self, group: str, *, version: int = 1, limit: int | None = None) -> list[dict]:
        """Commits of a group, newest first (``version``, ``timestamp``, ``operation``, metrics)."""
        group_spec(group)
        dt = self._open(self.table_path(group, version))
        return [] if dt is None else dt.history(limit)

    def optimize(self, group: str, *, version: int = 1, retention_hours: float = 168.0) -> dict:
        """Compact small files, then remove files no version younger than ``retention_hours`` needs.

        Time travel to any data version committed within the retention window keeps working;
        older versions become unreadable (``read(as_of=...)`` says so).
        """
        if retention_hours < 1:
            raise ValueError("retention_hours must be >= 1: a shorter window could delete files a running reader uses")
        group_spec(group)
        path = self.table_path(group, version)
        with self.exclusive(group, version=version):
            dt = self._open(path)
            if dt is None:
                return {"compacted": {}, "vacuumed": []}
            compacted = dt.optimize.compact()
            vacuumed = self._open(path).vacuum(
                retention_hours=int(retention_hours), dry_run=False, enforce_retention_duration=False
            )
        return {"compacted": compacted, "vacuumed": vacuumed, "data_version": self.data_version(group, version=version)}
