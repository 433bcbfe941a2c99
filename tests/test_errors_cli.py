"""The CLI's one error policy: every command ends with one line and a non-zero exit, tracebacks only
under --debug / SOUNDMATES_DEBUG=1; one logging policy; corrupt profile files quarantined and refetched."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from soundmates.cli.main import app
from soundmates.profiles import (
    Profile,
    ProfileRepository,
)
from tests.fixtures.spotify import world_user_ids
from tests.helpers.profiles import tiny_profile

SOUNDMATES = [sys.executable, "-m", "soundmates.cli.main"]


def _validation_error() -> Exception:
    try:
        Profile.model_validate({"user_id": 5})
    except Exception as exc:  # noqa: BLE001 - whatever pydantic raises is the specimen
        return exc
    raise AssertionError("expected a ValidationError")


UNEXPECTED = {
    "OSError long name": (
        OSError(36, "File name too long", "/data/profiles/" + "%C3%A9" * 50 + ".json"),
        "unexpected error: File name too long: /data/profiles/%C3%A9",
    ),
    "MemoryError": (MemoryError(), "out of memory"),
    "RecursionError": (
        RecursionError("maximum recursion depth exceeded"),
        "unexpected error: RecursionError: maximum recursion depth",
    ),
    "ValidationError": (
        _validation_error(),
        "unexpected error: ValidationError: 1 validation error for Profile: user_id: Input should be a valid string",
    ),
    "multi-line ValueError": (
        ValueError("first\x1b[2J line\n  0: backtrace\n  1: frames"),
        "unexpected error: ValueError: first\\x1b[2J line;",
    ),
    "KeyError": (KeyError("missing"), "unexpected error: KeyError: 'missing'"),
}


class _Exploding:
    """Stands in for the Recommender: every call raises the configured exception."""

    error: BaseException = RuntimeError("unset")

    def __init__(self, *a, **kw):
        pass

    def recommend(self, *a, **kw):
        raise type(self).error

    add = remove = recommend


@pytest.fixture
def exploding(monkeypatch):
    import soundmates.recommend as rec

    monkeypatch.setattr(rec, "Recommender", _Exploding)
    monkeypatch.delenv("SOUNDMATES_DEBUG", raising=False)
    yield _Exploding
    from soundmates.logs import set_debug

    set_debug(None)


@pytest.mark.parametrize("label", list(UNEXPECTED))
@pytest.mark.parametrize("command", ["recommend", "add", "remove"])
def test_an_unexpected_error_is_one_line_and_exit_1(exploding, label, command):
    exploding.error, expected = UNEXPECTED[label]
    res = CliRunner().invoke(app, [command, "someone"])
    assert res.exit_code == 1, res.output
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: " + expected), lines[0]
    assert lines[0].endswith("; rerun with --debug for details")
    assert "Traceback" not in res.output and "\x1b" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_a_project_error_shows_its_own_message(exploding):
    from soundmates.store import StoreError

    exploding.error = StoreError("the feature store is locked by another build; try again when it finished")
    res = CliRunner().invoke(app, ["recommend", "someone"])
    assert res.exit_code == 1
    assert res.stderr == "error: the feature store is locked by another build; try again when it finished\n"


def test_with_json_the_error_is_also_one_json_object_on_stdout(exploding):
    exploding.error = OSError(28, "No space left on device", "/data/index/v3")
    res = CliRunner().invoke(app, ["recommend", "someone", "--json"])
    assert res.exit_code == 1
    assert json.loads(res.stdout) == {"error": res.stderr.strip().removeprefix("error: ")}
    assert "No space left on device" in res.stderr


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(exploding, how):
    exploding.error = RecursionError("maximum recursion depth exceeded")
    args, env = (["--debug", "recommend", "x"], {}) if how == "flag" else (["recommend", "x"], {"SOUNDMATES_DEBUG": "1"})
    res = CliRunner().invoke(app, args, env=env)
    assert res.exit_code == 1
    assert isinstance(res.exception, RecursionError)  # propagated: Python prints its traceback
    assert "unexpected error" not in res.output


def test_real_process_debug_prints_a_traceback_and_plain_prints_one_line(tmp_path):
    data_file = tmp_path / "not-a-dir"
    data_file.write_text("x")
    env = dict(os.environ, SOUNDMATES_DATA_DIR=str(data_file))
    env.pop("SOUNDMATES_DEBUG", None)
    unexpected = []  # commands that met the damage as an unexpected error (the others name it themselves)
    world_out = ["world", "generate", "--users", "3", "--seed", "1", "--out", str(data_file / "w")]
    for cmd in (["recommend", "alice"], ["index", "status"], ["add", "alice"], ["remove", "alice"], world_out):
        plain = subprocess.run(SOUNDMATES + cmd, env=env, capture_output=True, text=True, timeout=120)
        assert plain.returncode == 1, (cmd, plain.stderr)
        assert plain.stderr.count("\n") == 1 and "Traceback" not in plain.stderr, plain.stderr
        # one line naming what is wrong: the stage's own words, or the unexpected-error line
        assert plain.stderr.startswith("error: ") and "not a directory" in plain.stderr.lower(), plain.stderr
        assert any(hint in plain.stderr for hint in ("move it aside", "rerun with --debug", "SOUNDMATES_DATA_DIR")), plain.stderr
        if "unexpected error" in plain.stderr:
            unexpected.append(cmd)
    assert unexpected, "no command met the damage as an unexpected error: nothing left to check --debug on"
    debug = subprocess.run(SOUNDMATES + ["--debug", *unexpected[0]], env=env, capture_output=True, text=True, timeout=120)
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr and "NotADirectoryError" in debug.stderr
    envd = dict(env, SOUNDMATES_DEBUG="1")
    debug = subprocess.run(SOUNDMATES + unexpected[0], env=envd, capture_output=True, text=True, timeout=120)
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr


def test_a_handled_per_user_failure_logs_one_line_not_a_traceback(spotify_server, small_world, tmp_path):
    """On main `log.exception` (no logging configured) printed the full traceback for each failed user."""
    server = spotify_server()
    users = world_user_ids(small_world)[:2]
    data = tmp_path / "data"
    data.mkdir()
    (data / "profiles").write_text("a file where the profiles folder should be")  # every save fails: OSError
    env = dict(
        os.environ,
        SOUNDMATES_DATA_DIR=str(data),
        SOUNDMATES_SPOTIFY_API_URL=server.api_url,
        SOUNDMATES_SPOTIFY_TOKEN_URL=server.token_url,
        SPOTIPY_CLIENT_ID="i",
        SPOTIPY_CLIENT_SECRET="s",
    )
    env.pop("SOUNDMATES_DEBUG", None)
    proc = subprocess.run(
        SOUNDMATES + ["ingest", *users, "--json", "--no-progress"], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["ingested"] == 0 and [f["ref"] for f in out["failed"]] == users
    assert "Traceback" not in proc.stderr
    logged = [ln for ln in proc.stderr.splitlines() if "ingest of" in ln]
    assert len(logged) == 2 and all(ln.startswith("ERROR soundmates.spotify.ingest: ingest of") for ln in logged), proc.stderr
    assert all("NotADirectoryError" in ln or "FileExistsError" in ln for ln in logged), logged
    debug = subprocess.run(
        SOUNDMATES + ["--debug", "ingest", users[0], "--no-progress"], env=env, capture_output=True, text=True, timeout=300
    )
    assert "Traceback (most recent call last)" in debug.stderr


def test_logging_policy_collapses_tracebacks_of_this_package_only_without_debug(caplog):
    from soundmates.logs import configure_logging, set_debug

    configure_logging(handler=False)
    log = logging.getLogger("soundmates.test")
    with caplog.at_level(logging.ERROR):
        try:
            raise ValueError("bad\nthing")
        except ValueError:
            log.exception("user %s failed", "u1")
    rec = caplog.records[-1]
    assert rec.exc_info is None and rec.getMessage() == "user u1 failed (ValueError: bad)"
    set_debug(True)
    try:
        with caplog.at_level(logging.ERROR):
            try:
                raise ValueError("bad")
            except ValueError:
                log.exception("user %s failed", "u2")
        assert caplog.records[-1].exc_info is not None
    finally:
        set_debug(None)


# --- corrupt profile files -------------------------------------------------------------------------


CORRUPT = {
    "truncated": lambda good: good[: len(good) // 2],
    "not json": lambda good: b"\x00\x01garbage",
    "wrong shape": lambda good: b'{"user_id": 5, "playlists": "none"}',
    "not utf-8": lambda good: b"\xff\xfe" + good,
    "empty": lambda good: b"",
}


@pytest.mark.parametrize("kind", list(CORRUPT))
def test_a_corrupt_profile_is_quarantined_with_a_warning(tmp_path, caplog, kind):
    repo = ProfileRepository(tmp_path / "profiles")
    path = repo.save(tiny_profile("alice"))
    bad = CORRUPT[kind](path.read_bytes())
    path.write_bytes(bad)
    with caplog.at_level(logging.WARNING, logger="soundmates.profiles"):
        assert repo.exists("alice") is False
    assert not path.exists()
    moved = list((tmp_path / "profiles" / ".quarantine").rglob("*.json"))
    assert len(moved) == 1 and moved[0].read_bytes() == bad
    assert any("moved to" in r.getMessage() and "fetched again" in r.getMessage() for r in caplog.records)
    assert repo.load("alice") is None and repo.user_ids() == []
    repo.save(tiny_profile("alice"))
    assert repo.load("alice") is not None
    assert repo.delete("alice") and not list((tmp_path / "profiles" / ".quarantine").rglob("*.json"))  # removal is complete


def test_ingest_refetches_a_user_whose_profile_file_is_corrupt(spotify_server, small_world, settings):
    """On main every later ingest skipped that user forever."""
    spotify_server()
    uid = world_user_ids(small_world)[0]
    first = CliRunner().invoke(app, ["ingest", uid, "--json", "--no-progress"])
    assert json.loads(first.stdout)["ingested"] == 1
    repo = ProfileRepository(settings.profiles_dir)
    good = repo.load(uid)
    repo.path(uid).write_text('{"user_id": "' + uid + '", "playlists": [', encoding="utf-8")
    again = CliRunner().invoke(app, ["ingest", uid, "--json", "--no-progress"])
    assert again.exit_code == 0 and "Traceback" not in again.output
    out = json.loads(again.stdout)
    assert out["ingested"] == 1 and out["skipped"] == 0
    assert repo.load(uid).content_hash() == good.content_hash()
    assert len(list((settings.profiles_dir / ".quarantine").rglob("*.json"))) == 1


def test_recommend_for_a_user_with_a_corrupt_profile_file_does_not_crash(dashboard_world):
    """On main a corrupt profile file crashed `recommend` with a pydantic ValidationError traceback."""
    env = dict(os.environ, **dashboard_world.env)
    env.pop("SOUNDMATES_DEBUG", None)
    me, other = dashboard_world.stored_ids[:2]
    repo = ProfileRepository(Path(dashboard_world.data_dir) / "profiles")
    for uid in (me, other):
        repo.path(uid).write_text('{"user_id": 1, "tracks": "x"}', encoding="utf-8")
    proc = subprocess.run(
        SOUNDMATES + ["recommend", me, "--json", "--k", "5"], env=env, capture_output=True, text=True, timeout=300
    )
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["user_id"] == me
    assert "moved to" in proc.stderr  # the quarantine warning, one line


def test_usage_errors_stay_typer_usage_errors(exploding):
    res = CliRunner().invoke(app, ["recommend", "x", "--k", "0"])
    assert res.exit_code == 2
    assert "Invalid value" in res.output and "unexpected error" not in res.output and "Traceback" not in res.output


def test_a_file_holding_another_user_is_ignored_not_moved(tmp_path, caplog):
    repo = ProfileRepository(tmp_path / "profiles")
    path = repo.save(tiny_profile("alice"))
    path.write_text(tiny_profile("mallory").model_dump_json(), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="soundmates.profiles"):
        assert repo.load("alice") is None and not repo.exists("alice")
    assert path.exists() and "holds user 'mallory'" in caplog.text
