"""The feature-store contract every backend keeps (:class:`FeatureStore`), and the names backends import.

A *feature group* is a named, versioned table with a primary key (Hopsworks'
term; the embedded backend keeps one Delta table per ``(name, version)``).
Its *data version* is the commit number of the table: ``upsert`` returns it,
``read(as_of=...)`` travels back to it, so a training run can name the exact
data it used.

The errors live in ``store/errors.py``, the group registry in ``store/groups.py`` and batch
validation in ``store/validation.py``; they are re-exported here, so a backend imports from one
place. This module imports only pandas and pyarrow: the CLI, the DAGs and the dashboard may import
it freely.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator

import pandas as pd
import pyarrow as pa

from soundmates.store.errors import (
    DataVersionNotFound,
    SchemaMismatch,
    StoreDamaged,
    StoreError,
    StoreUnavailable,
    UnknownGroup,
)
from soundmates.store.groups import (
    INBOX_GROUP,
    INBOX_SCHEMA,
    GroupInfo,
    GroupSpec,
    group_spec,
    known_groups,
    register_group,
)
from soundmates.store.validation import check_compatible, empty_frame, to_arrow

__all__ = [
    "INBOX_GROUP",
    "INBOX_SCHEMA",
    "DataVersionNotFound",
    "FeatureStore",
    "GroupInfo",
    "GroupSpec",
    "SchemaMismatch",
    "StoreDamaged",
    "StoreError",
    "StoreUnavailable",
    "UnknownGroup",
    "check_compatible",
    "empty_frame",
    "group_spec",
    "known_groups",
    "register_group",
    "to_arrow",
]


class FeatureStore(abc.ABC):
    """One interface, two backends (embedded Delta Lake, Hopsworks).

    Every method names the group and its schema version; ``version`` is the
    *schema* version of the group (Hopsworks' feature-group version), not the
    data version, which ``upsert`` returns and ``read(as_of=...)`` accepts.
    """

    backend: str = "abstract"

    @abc.abstractmethod
    def upsert(self, group: str, df: pd.DataFrame, *, version: int = 1) -> int:
        """Insert or update rows by primary key; return the new data version."""

    def upsert_arrow(self, group: str, table: pa.Table, *, version: int = 1) -> int:
        """:meth:`upsert` of an Arrow table (a backend that takes Arrow as is skips pandas)."""
        return self.upsert(group, table.to_pandas(), version=version)

    @abc.abstractmethod
    def read(
        self,
        group: str,
        *,
        version: int = 1,
        as_of: int | None = None,
        keys: list[str] | None = None,
    ) -> pd.DataFrame:
        """Rows of the group (all, or those whose ``user_id`` is in ``keys``), now or at data version ``as_of``."""

    @abc.abstractmethod
    def delete(self, group: str, user_ids: list[str], *, version: int = 1) -> int:
        """Remove every row of these users (every view); return how many rows were removed."""

    @abc.abstractmethod
    def data_version(self, group: str, *, version: int = 1) -> int | None:
        """The latest data version, or None when nothing was ever written."""

    @abc.abstractmethod
    def groups(self) -> list[GroupInfo]:
        """Every group that has a table, with its row count and data version."""

    @contextlib.contextmanager
    def exclusive(self, group: str, *, version: int = 1) -> Iterator[None]:
        """Hold off other writers of the group for a read-modify-write (the inbox uses it).

        Backends that cannot lock across processes make this a no-op; their
        upserts are still atomic per call.
        """
        yield

    def close(self) -> None:  # noqa: B027 - optional hook: most backends hold nothing to release
        """Release connections (no-op for the embedded backend)."""

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
