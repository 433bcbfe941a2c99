"""soundmates.atomic: the one write-then-rename mechanism, and that nothing else hand-rolls one."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from soundmates.atomic import atomic_write_text, commit_directory, commit_file

REPO = Path(__file__).resolve().parents[1]


def test_atomic_write_replaces_and_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "state.json"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new", mode=0o600)
    assert target.read_text() == "new" and (target.stat().st_mode & 0o777) == 0o600

    def refuse(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "never")
    assert target.read_text() == "new" and sorted(p.name for p in target.parent.iterdir()) == ["state.json"]


def test_commit_file_puts_a_library_written_file_in_place_or_removes_it(tmp_path):
    tmp = tmp_path / ".data.tmp"
    tmp.write_bytes(b"parquet bytes")
    commit_file(tmp, tmp_path / "data.parquet")
    assert (tmp_path / "data.parquet").read_bytes() == b"parquet bytes" and not tmp.exists()
    tmp.write_bytes(b"x")
    with pytest.raises(OSError):
        commit_file(tmp, tmp_path / "missing-dir" / "data.parquet")
    assert not tmp.exists()


def test_commit_directory_publishes_a_whole_version_once(tmp_path):
    tmp = tmp_path / ".tmp-v1"
    (tmp / "inner").mkdir(parents=True)
    (tmp / "model.pt").write_bytes(b"weights")
    (tmp / "inner" / "meta.json").write_text("{}")
    commit_directory(tmp, tmp_path / "v1")
    assert (tmp_path / "v1" / "model.pt").read_bytes() == b"weights" and (tmp_path / "v1" / "inner" / "meta.json").exists()
    again = tmp_path / ".tmp-v1b"
    again.mkdir()
    (again / "model.pt").write_bytes(b"other")
    with pytest.raises(OSError):  # a published version is never overwritten
        commit_directory(again, tmp_path / "v1")
    assert (tmp_path / "v1" / "model.pt").read_bytes() == b"weights"


# Renames that are not a write: moving a file aside, claiming a one-time state, a legacy file's new name.
NOT_WRITES = {
    "src/soundmates/profiles.py": 2,  # legacy name -> storage key; unparsable profile -> .quarantine/
    "src/soundmates/spotify/connect_store.py": 1,  # claim a pending OAuth state (single use)
    "src/soundmates/index/fresh.py": 1,  # a damaged fresh buffer moved aside
    "src/soundmates/index/versions.py": 1,  # a damaged CURRENT moved aside
}


def test_no_stage_hand_rolls_a_write_then_rename():
    counts: dict[str, int] = {}
    for folder in ("src", "dags", "plugins", "streamlit_app"):
        for f in (REPO / folder).rglob("*.py"):
            rel = f.relative_to(REPO).as_posix()
            if rel == "src/soundmates/atomic.py":
                continue
            code = "\n".join(line.split("#")[0] for line in f.read_text(encoding="utf-8").splitlines())
            n = len(re.findall(r"\bos\.(?:replace|rename)\(|\bmkstemp\(|\.rename\(\s*[\w.]+\s*\)", code))
            if n:
                counts[rel] = n
    assert counts == NOT_WRITES
