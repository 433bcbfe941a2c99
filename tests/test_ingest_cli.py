"""`soundmates ingest` as a user runs it: --json shape, --file, exit codes, kill and rerun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from soundmates.config import get_settings, reset_settings
from soundmates.profiles import ProfileRepository
from soundmates.spotify.ingest import Ingestor

SOUNDMATES = [sys.executable, "-m", "soundmates.cli.main"]


def _run(args, data_dir: Path, env_extra=None, **kw):
    env = dict(os.environ, SOUNDMATES_DATA_DIR=str(data_dir), **(env_extra or {}))
    return subprocess.run(SOUNDMATES + args, env=env, capture_output=True, text=True, timeout=300, **kw)


def _users(world: Path) -> list[str]:
    return [u for u in (world / "users.txt").read_text(encoding="utf-8").splitlines() if u]


def test_json_output_is_one_object_with_the_summary_and_exit_0_despite_failures(small_world, spotify_server, tmp_path):
    spotify_server(world=small_world)
    users = _users(small_world)
    ref_file = tmp_path / "refs.txt"
    ref_file.write_text(f"# my friends\n\n{users[0]}\n  https://open.spotify.com/user/{users[1]}  \n", encoding="utf-8")
    proc = _run(
        ["ingest", "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M", "--file", str(ref_file), "--json", "--no-progress"],
        tmp_path / "data",
    )

    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert {"ingested", "skipped", "failed", "api_calls", "calls_by_endpoint", "items_skipped", "elapsed_s"} <= set(out)
    assert out["ingested"] + len(out["failed"]) == 3 and out["skipped"] == 0
    assert out["failed"][0]["ref"] == "spotify:playlist:37i9dQZF1DXcBWIGoYBM5M"
    assert out["failed"][0]["reason"].startswith("invalid reference")
    assert all(set(f) == {"ref", "reason"} for f in out["failed"])
    assert out["api_calls"] == sum(out["calls_by_endpoint"].values()) > 0


def test_no_credentials_is_a_clear_error_and_a_non_zero_exit(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOTIPY_")}
    env["SOUNDMATES_DATA_DIR"] = str(tmp_path)
    proc = subprocess.run(SOUNDMATES + ["ingest", "someone", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "SPOTIPY_CLIENT_ID" in proc.stderr and "SPOTIPY_CLIENT_SECRET" in proc.stderr
    assert proc.stdout == ""


def test_missing_file_and_no_refs_are_usage_errors(tmp_path):
    proc = _run(["ingest", "--file", str(tmp_path / "nope.txt")], tmp_path)
    assert proc.returncode != 0 and "nope.txt" in proc.stderr
    proc = _run(["ingest"], tmp_path)
    assert proc.returncode != 0 and "nothing to ingest" in proc.stderr


@pytest.mark.slow
def test_rerun_after_kill_ends_with_the_same_profiles_and_no_duplicates(small_world, spotify_server, tmp_path):
    from soundmates.world.generator import World, describe_user

    spotify_server(world=small_world)
    # users.txt of the world, less its few huge users (keeps the test quick on a shared machine)
    world = World(small_world)
    users = [u for u in _users(small_world) if describe_user(world, u)["items"] <= 200][:25]
    users_file = tmp_path / "users.txt"
    users_file.write_text("\n".join(users) + "\n", encoding="utf-8")
    killed_dir = tmp_path / "killed"
    profiles = killed_dir / "profiles"
    stored = lambda: len(ProfileRepository(profiles).user_ids())  # noqa: E731

    env = dict(os.environ, SOUNDMATES_DATA_DIR=str(killed_dir))
    proc = subprocess.Popen(
        SOUNDMATES + ["ingest", "--file", str(users_file), "--json", "--no-progress"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and stored() < 5 and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the ingest finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored_at_kill = stored()
    assert 0 < stored_at_kill < len(users) - 5

    rerun = _run(["ingest", "--file", str(users_file), "--json", "--no-progress"], killed_dir)
    assert rerun.returncode == 0, rerun.stderr
    out = json.loads(rerun.stdout)
    assert out["skipped"] >= stored_at_kill

    reset_settings()
    clean = get_settings().model_copy(update={"data_dir": tmp_path / "clean"})
    uninterrupted = Ingestor(clean).ingest_many(users, progress=False)

    resumed_repo, clean_repo = ProfileRepository(profiles), ProfileRepository(clean.profiles_dir)
    assert resumed_repo.user_ids() == clean_repo.user_ids() == sorted(uninterrupted.ingested_user_ids)
    assert {p.user_id: p.content_hash() for p in resumed_repo} == {p.user_id: p.content_hash() for p in clean_repo}
    # one file per user (a write torn by the kill can only leave an ignored .tmp- file, never a profile)
    names = [p.name for p in profiles.iterdir() if not p.name.startswith(".tmp-")]
    assert len(names) == len(set(names)) == len(resumed_repo.user_ids())
    # resuming never refetched what the killed run had stored
    assert out["api_calls"] < uninterrupted.api_calls
    assert {f["ref"] for f in out["failed"]} == {f.ref for f in uninterrupted.failed}
