"""Which profile files the features stage already saw: file fingerprint → content hash (or rejection), a cache.

A rerun skips a user without loading the profile when the file's (inode, size, mtime_ns) equal the
recorded ones and the recorded ``content_hash`` equals the ``profile_hash`` stored in
``user_profiles`` (or the file was rejected before for what it holds). Profiles are written by atomic
replace, so a changed file always gets a new inode and mtime. The file is only a cache: missing,
unreadable or written for another encoder/top-N, it is ignored and everyone is loaded as before.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from soundmates.atomic import atomic_write_text

FILENAME = "profile_fingerprints.json"
_FORMAT = 1


def fingerprint(path: Path) -> list[int] | None:
    """(inode, size, mtime_ns) of a profile file; None when it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns]


class ProfileFingerprints:
    """``user_id -> {"fp": fingerprint, "hash": content hash} | {"fp", "rejected": reason}``."""

    def __init__(self, path: Path, context: dict):
        self.path = path
        self.context = context  # encoder model, top-N, seed: what a rejection depends on besides the file
        self.entries: dict[str, dict] = {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") == _FORMAT and data.get("context") == context and isinstance(data.get("entries"), dict):
                self.entries = data["entries"]
        except (OSError, ValueError, AttributeError):
            pass  # no cache (or a damaged one): everybody is loaded

    def known(self, user_id: str, fp: list[int] | None, stored_hash: str | None) -> dict | None:
        """The entry when the file is unchanged and the store still holds its hash (or it was rejected)."""
        e = self.entries.get(user_id)
        if fp is None or e is None or e.get("fp") != fp:
            return None
        if "rejected" in e or (stored_hash is not None and e.get("hash") == stored_hash):
            return e
        return None

    def record(self, user_id: str, fp: list[int] | None, *, content_hash: str | None = None, rejected: str | None = None) -> None:
        if fp is None:
            return
        self.entries[user_id] = {"fp": fp, "rejected": rejected} if rejected is not None else {"fp": fp, "hash": content_hash}

    def forget(self, user_id: str) -> None:
        self.entries.pop(user_id, None)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps({"format": _FORMAT, "context": self.context, "entries": self.entries}))
