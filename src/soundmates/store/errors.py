"""The errors every feature-store backend raises (one base class, :class:`StoreError`)."""

from __future__ import annotations

from collections.abc import Sequence


class StoreError(Exception):
    """Base class of every error the feature store raises."""


class UnknownGroup(StoreError, KeyError):
    """A feature group nobody registered (a typo, or a stage that forgot ``register_group``)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class SchemaMismatch(StoreError, ValueError):
    """A frame does not fit a group's schema; nothing was written.

    ``problems`` lists one line per offending column, for tests and logs.
    """

    def __init__(self, group: str, problems: Sequence[str]):
        self.group = group
        self.problems = list(problems)
        super().__init__(f"schema mismatch for feature group {group!r}: " + "; ".join(self.problems))


class DataVersionNotFound(StoreError, LookupError):
    """``as_of`` names a data version the group does not have (or no longer has, after vacuum)."""


class StoreUnavailable(StoreError, RuntimeError):
    """The backend cannot be reached or is not configured (message says what to set)."""


class StoreDamaged(StoreError, RuntimeError):
    """A table's files are damaged and no version of it can be read (message names the table and what to do)."""
