"""The index stage's errors: nothing built, nothing valid to serve, removals that cannot be read."""

from __future__ import annotations


class IndexNotBuilt(RuntimeError):
    """No index version has been published (and the fresh buffer is empty)."""


class IndexCorrupt(RuntimeError):
    """No valid version can be served: files missing, truncated, of the wrong shape, or failing their checksums."""


class RemovalsUnreadable(IndexCorrupt):
    """The removed-users list and its backup are unreadable: serving could bring a removed user back."""
