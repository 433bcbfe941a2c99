"""The registry of feature groups: what each is called, its primary key and declared schema.

The features stage owns the built-in schemas (registered lazily on first use, so importing
the store does not import the features package); the store validates against them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pyarrow as pa

from soundmates.store.errors import UnknownGroup

# Legacy: the new-users inbox was this feature group; it is a SQLite queue now (store/inbox.py),
# which imports an old data dir's table once. Nothing writes the group any more, so a new data
# dir never has it; it stays registered so an old table can still be read, listed and deleted from.
INBOX_GROUP = "new_users_inbox"

INBOX_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("ref", pa.string()),
        pa.field("status", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("source", pa.string()),
        pa.field("requested_at", pa.timestamp("us", tz="UTC")),
        pa.field("updated_at", pa.timestamp("us", tz="UTC")),
    ]
)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class GroupSpec:
    """What the store knows about a group before any row is written."""

    name: str
    primary_key: tuple[str, ...]
    schema: pa.Schema | None = None  # None = the first write decides, later writes must match it
    description: str = ""
    # Embedding columns (list<float32>) Hopsworks should index for similarity search.
    embedding_columns: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not _IDENTIFIER.match(self.name):
            raise ValueError(f"feature group name {self.name!r} must be a plain identifier (letters, digits, _)")
        if not self.primary_key:
            raise ValueError(f"feature group {self.name!r} needs a primary key")
        for col in self.primary_key:
            if not _IDENTIFIER.match(col):
                raise ValueError(f"primary key column {col!r} of {self.name!r} must be a plain identifier")
        if self.schema is not None:
            missing = [c for c in self.primary_key if c not in self.schema.names]
            if missing:
                raise ValueError(f"schema of {self.name!r} lacks its primary key column(s) {missing}")


@dataclass(frozen=True)
class GroupInfo:
    """One row of ``FeatureStore.groups()`` (and of ``soundmates store show``)."""

    name: str
    version: int
    rows: int
    data_version: int | None
    primary_key: list[str]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "rows": self.rows,
            "data_version": self.data_version,
            "primary_key": list(self.primary_key),
        }


_REGISTRY: dict[str, GroupSpec] = {}
_BUILTINS_LOADED = False


def register_group(spec: GroupSpec) -> GroupSpec:
    """Make a group known to every backend (re-registering the same name replaces it)."""
    _ensure_builtin_groups()
    _REGISTRY[spec.name] = spec
    return spec


def _ensure_builtin_groups() -> None:
    # Lazy, so importing the store does not import the features package until a group is used.
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        _register_builtin_groups()


def _register_builtin_groups() -> None:
    # The features stage owns these schemas; the store validates against them.
    from soundmates.features import schema as feature_schema

    embeddings = tuple(getattr(feature_schema, "EMBEDDING_COLUMNS", ())) + ("combined",)
    builtins = [
        GroupSpec(
            name=feature_schema.USER_PROFILES,
            primary_key=tuple(feature_schema.PRIMARY_KEYS[feature_schema.USER_PROFILES]),
            schema=feature_schema.SCHEMAS[feature_schema.USER_PROFILES],
            description="Profile metadata for explanations (top genres, artists, tracks, years).",
        ),
        GroupSpec(
            name=feature_schema.USER_FEATURES,
            primary_key=tuple(feature_schema.PRIMARY_KEYS[feature_schema.USER_FEATURES]),
            schema=feature_schema.SCHEMAS[feature_schema.USER_FEATURES],
            description="Taste features per user and view (full, a, b).",
            embedding_columns=embeddings,
        ),
        GroupSpec(
            name=INBOX_GROUP,
            primary_key=("user_id",),
            schema=INBOX_SCHEMA,
            description="Legacy new-users inbox (read once by the SQLite inbox's import; never written).",
        ),
    ]
    for spec in builtins:
        # setdefault: a group a test or stage registered first keeps its definition.
        _REGISTRY.setdefault(spec.name, spec)


def group_spec(name: str) -> GroupSpec:
    _ensure_builtin_groups()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise UnknownGroup(f"unknown feature group {name!r} (known: {known})") from None


def known_groups() -> list[GroupSpec]:
    _ensure_builtin_groups()
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]
