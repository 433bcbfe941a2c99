"""Removed users: a persisted set that hides them from every query at once and from the next build."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock

from soundmates.index._files import atomic_write_bytes, stat_key


class Tombstones:
    """``tombstones.json`` = {user_id: removed_at}; re-read only when the file changes (cheap per query)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = FileLock(str(self.path) + ".lock")
        self._mem_lock = threading.Lock()
        self._cache_key: tuple | None = None
        self._cache: dict[str, str] = {}

    def _read_file(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        if not isinstance(data, dict):
            raise ValueError(f"{self.path}: expected a JSON object of user_id -> removed_at")
        return {str(k): str(v) for k, v in data.items()}

    def all(self) -> dict[str, str]:
        key = stat_key(self.path)
        with self._mem_lock:
            if key != self._cache_key:
                self._cache = self._read_file() if key is not None else {}
                self._cache_key = key
            return self._cache

    def ids(self) -> frozenset[str]:
        return frozenset(self.all())

    def __contains__(self, user_id: str) -> bool:
        return user_id in self.all()

    def __len__(self) -> int:
        return len(self.all())

    def _write(self, data: dict[str, str]) -> None:
        atomic_write_bytes(self.path, json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8"))

    def add(self, user_id: str) -> bool:
        """Tombstone ``user_id`` as of now (a repeated removal moves the time on); False if already tombstoned."""
        with self._lock:
            data = self._read_file()
            new = user_id not in data
            data[user_id] = datetime.now(timezone.utc).isoformat()
            self._write(data)
            return new

    def removed_at(self, user_id: str) -> float | None:
        """Epoch seconds of ``user_id``'s removal, or None if not removed."""
        when = self.all().get(user_id)
        return None if when is None else datetime.fromisoformat(when).timestamp()

    def discard(self, user_id: str) -> bool:
        """Lift a tombstone (the user consented again); False if there was none."""
        with self._lock:
            data = self._read_file()
            if data.pop(user_id, None) is None:
                return False
            self._write(data)
            return True
