"""Damaged Delta tables: bring one back to its last good version with the damage moved aside, or say it cannot be.

What can break a table's log on a local disk: a garbled or truncated commit (``_delta_log/N.json``),
a checkpoint that is missing or unreadable, a directory (or other non-file) where a log file should
be, a data file that vanished. Recovery, tried in this order, never deletes a byte: everything it
takes out of the table goes to ``<table>/_damaged/<UTC time>/`` (same relative paths), and the
caller logs one warning naming what moved.

1. Non-files in ``_delta_log`` are moved aside (a directory named like commit N makes every later
   write fail).
2. Checkpoints are moved aside when every commit since version 0 is still there: a checkpoint only
   summarises those commits, so the latest version is read from them instead (nothing lost).
3. Otherwise Delta time travel finds the newest version that opens and reads, and the commits
   after it (and checkpoints past it) are moved aside: the table is back at that version.

When no version reads, :class:`~soundmates.store.base.StoreDamaged` says so in one line.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from soundmates.store.base import StoreDamaged

_COMMIT = re.compile(r"^(\d{20})\.json$")
_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint(\.\d+\.\d+)?\.parquet$")


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _short(exc: BaseException) -> str:
    """The library's error on one line, without its terminal colours, at most 160 characters."""
    text = " ".join(_ANSI.sub("", str(exc)).split())
    return (text[:160] + "…") if len(text) > 160 else text or type(exc).__name__


def readable(path: Path, version: int | None = None) -> bool:
    """Whether the table (at ``version``) opens and every one of its data files reads."""
    from deltalake import DeltaTable

    try:
        dt = DeltaTable(str(path), version=version) if version is not None else DeltaTable(str(path))
        dt.to_pyarrow_table()
    except Exception:  # noqa: BLE001 - any failure means "not this version"
        return False
    return True


class Repair:
    """One recovery attempt of the table at ``path`` (the caller holds the table's write lock)."""

    def __init__(self, path: Path, label: str):
        self.path = path
        self.label = label
        self.log_dir = path / "_delta_log"
        self.aside = path / "_damaged" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self.moved: list[str] = []

    def _move(self, entry: Path) -> None:
        target = self.aside / entry.relative_to(self.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(entry), str(target))
        self.moved.append(str(entry.relative_to(self.path)))

    def _commits(self) -> dict[int, Path]:
        return {int(m[1]): p for p in self.log_dir.iterdir() if (m := _COMMIT.match(p.name)) and p.is_file()}

    def non_files(self) -> bool:
        """Step 1 (also run before every write: cheap); True when something moved."""
        if not self.log_dir.is_dir():
            return False
        before = len(self.moved)
        for entry in sorted(self.log_dir.iterdir()):
            if not entry.is_file() and not entry.name.startswith("_commit_"):  # delta-rs' temp names
                self._move(entry)
        return len(self.moved) > before

    def _checkpoints(self) -> list[Path]:
        cps = [p for p in self.log_dir.iterdir() if _CHECKPOINT.match(p.name)]
        last = self.log_dir / "_last_checkpoint"
        return cps + ([last] if last.exists() else [])

    def run(self, error: BaseException) -> str:
        """Repair the table or raise :class:`StoreDamaged`; returns the one-line warning to log."""
        if not self.log_dir.is_dir():
            raise self._beyond(error, "its _delta_log is not a directory")
        self.non_files()
        if readable(self.path):
            return self._warning("the table reads again at its latest version")
        commits = self._commits()
        if not commits:
            raise self._beyond(error, "no commit file is left in _delta_log")
        latest = max(commits)
        if self._checkpoints() and set(commits) == set(range(latest + 1)):
            for p in self._checkpoints():
                self._move(p)
            if readable(self.path):
                return self._warning("the latest version is read from the commits instead of the checkpoint")
        good = next((v for v in range(latest, -1, -1) if readable(self.path, v)), None)
        if good is None:
            raise self._beyond(error, "no version of the table reads")
        for v in sorted(commits):
            if v > good:
                self._move(commits[v])
        for p in list(self._checkpoints()):
            m = _CHECKPOINT.match(p.name)
            if p.name == "_last_checkpoint" or (m and int(m[1]) > good):
                self._move(p)
        if not readable(self.path):
            raise self._beyond(error, f"version {good} reads by time travel but not as the latest")
        return self._warning(f"the table is back at data version {good} (commits {good + 1}..{latest} moved aside)")

    def _warning(self, what: str) -> str:
        where = f"; moved {', '.join(self.moved)} to {self.aside}" if self.moved else ""
        return f"{self.label} at {self.path} was damaged: {what}{where}"

    def _beyond(self, error: BaseException, why: str) -> StoreDamaged:
        return StoreDamaged(
            f"{self.label} at {self.path} is damaged beyond repair ({why}; {_short(error)}): move the directory "
            "aside and rerun the stage that writes it (`soundmates features build --force` for user_features and "
            "user_profiles; re-add requests for new_users_inbox)"
        )
