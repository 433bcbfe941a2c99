"""A corpus of malformed and hostile profile references, through `soundmates ingest --file` and
`soundmates recommend` as a user runs them: each is refused with one line, no traceback, and
nothing stored changes; hostile-but-valid ids (long non-ASCII) work end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from soundmates.cli.main import app
from soundmates.profiles import ProfileRepository
from tests.fixtures.spotify import world_user_ids
from tests.helpers.profiles import tiny_profile

SOUNDMATES = [sys.executable, "-m", "soundmates.cli.main"]
LONG_E = "é" * 50  # valid-looking; its percent-encoded name (300 bytes) passes the 255-byte limit


def malformed_refs() -> list[tuple[str, str]]:
    """(reference, a fragment of the reason) — at least 100 references no parser may accept."""
    uid = "edcyur1w12uvn6i2iyt3lv1ao"
    cases: list[tuple[str, str]] = []
    # control characters, raw and percent-encoded, in every form
    for ch in ["\x00", "\x01", "\x07", "\x08", "\x1b", "\x7f", "\x85", "\u200b", "\u202e", "\u2028", "\ufeff", "\x9b"]:
        cases.append((f"ab{ch}cd", "control character" if ch not in "\u2028" else "whitespace"))
        cases.append((f"spotify:user:ab{ch}cd", ""))
    for enc in ["%00", "%01", "%1B", "%1b%5B31m", "%7F", "%0A", "%0D", "%09", "%C2%85", "%E2%80%AE"]:
        cases.append((f"https://open.spotify.com/user/ab{enc}cd", ""))
        cases.append((f"spotify:user:x{enc}", ""))
    # ANSI escape sequences and newlines (also in the middle of a valid-looking link)
    cases += [
        ("\x1b[31mred\x1b[0m", "control character"),
        ("\x1b]0;pwned\x07", "control character"),
        (f"https://open.spotify.com/user/{uid}\x1b[2J", "control character"),
        ("\x1b[1A\x1b[2Kfake line", "control character"),
    ]
    # wrong kinds, hosts, schemes and shapes
    cases += [
        ("spotify:playlist:37i9dQZF1DXcBWIGoYBM5M", "playlist"),
        ("spotify:track:4uLU6hMCjMI75M1A2tKUQC", "track"),
        ("spotify:album:1DFixLWuPkv3KT3TnV35m3", "album"),
        ("spotify:artist:0OdUWJ0sBjDrqHygGUXeCF", "artist"),
        ("spotify:episode:512ojhOuo1ktJprKbVcKyQ", "episode"),
        ("spotify:show:5CfCWKI5pZ28U0uOzXkDHe", "show"),
        ("spotify:user", "spotify:user:ID"),
        ("spotify:user:", "empty"),
        ("spotify:user:a:playlist:b", "playlist"),
        ("spotify:usr:abc", "spotify:user:ID"),
        ("https://open.spotify.com/playlist/37i9dQZF1DXcBWIGoYBM5M", "playlist"),
        ("https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC", "track"),
        ("https://open.spotify.com/album/1DFixLWuPkv3KT3TnV35m3", "album"),
        ("https://open.spotify.com/artist/0OdUWJ0sBjDrqHygGUXeCF", "artist"),
        (f"https://open.spotify.com/user/{uid}/playlist/37i9dQZF1DXcBWIGoYBM5M", "playlist"),
        ("https://open.spotify.com/user/", "not /user/ID"),
        ("https://open.spotify.com/", "no /user/ID"),
        ("https://open.spotify.com", "no /user/ID"),
        (f"https://evil.example/user/{uid}", "host"),
        (f"https://open.spotify.com.evil.example/user/{uid}", "host"),
        (f"https://user@open.spotify.com/user/{uid}", "host"),
        (f"https://open.spotify.com:8443/user/{uid}", "host"),
        (f"ftp://open.spotify.com/user/{uid}", "scheme"),
        (f"javascript://open.spotify.com/user/{uid}", "scheme"),
        ("file:///etc/passwd", "scheme"),
        (f"https://open.spotify.com/users/{uid}", "not /user/ID"),
        (f"https://open.spotify.com/intl-de/intl-fr/user/{uid}", "not /user/ID"),
        (f"https://open.spotify.com/user/{uid}/extra", "not /user/ID"),
        ("https://open.spotify.com/user/..", "only dots"),
        ("https://open.spotify.com/user/%2E%2E", "only dots"),
        ("https://open.spotify.com/user/%2e", "only dots"),
        ("spotify:user:..", "only dots"),
        ("..", "only dots"),
        (".", "only dots"),
        ("...", "only dots"),
        ("../../../outside/pwn", "'/'"),
        ("..\\..\\windows", "'\\\\'"),
        ("a/b", "'/'"),
        ("C:\\Users\\x", "':'"),
        ("user:name", "':'"),
        ("https://open.spotify.com/user/%2F%2Fetc", "'/'"),
        ("https://open.spotify.com/user/a%2Fb", "'/'"),
        ("https://open.spotify.com/user/%FF%FE", "UTF-8"),
        ("https://open.spotify.com/user/%C3", "UTF-8"),
        ("spotify:user:%80abc", "UTF-8"),
        ("%E9", "UTF-8"),
        ("two words", "whitespace"),
        ("tab\there", "control character"),
        ("line\nbreak", "control character"),
        ("nb\u00a0sp", "whitespace"),
        ("ideographic\u3000space", "whitespace"),
        ("x" * 65, "65 characters"),
        ("é" * 65, "65 characters"),
        ("日" * 100, "100 characters"),
        ("https://open.spotify.com/user/" + "a" * 200, "200 characters"),
        ("a" * 600, "600 characters"),
        ("<script>alert(1)</script>", ""),
        ("'; DROP TABLE users; --", ""),
        ("name@example.org", "'@'"),
        ("a*b", "'*'"),
        ("a?b", "'?'"),
        ("a|b", "'|'"),
        ('a"b', "'\"'"),
        ("$(rm -rf /)", ""),
        ("`id`", "'`'"),
        ("a%b", "'%'"),
        ("emoji\U0001f3b5", ""),
        ("a~b", "'~'"),
        ("{}", "'{'"),
    ]
    return cases


CORPUS = malformed_refs()


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (the data directory, byte for byte)."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _invoke(args: list[str], **kw):
    return CliRunner().invoke(app, args, catch_exceptions=True, **kw)


def test_the_corpus_is_large_and_every_reference_is_refused_by_the_parser():
    from soundmates.spotify.refs import InvalidProfileRef, parse_profile_ref

    assert len(CORPUS) >= 100
    assert len({r for r, _ in CORPUS}) == len(CORPUS)
    for ref, fragment in CORPUS:
        with pytest.raises(InvalidProfileRef) as info:
            parse_profile_ref(ref)
        assert fragment in str(info.value), (ref, str(info.value))
        # the message never carries the raw control character back to the terminal
        assert all(ch == " " or ch.isprintable() for ch in str(info.value)), ref


def test_recommend_add_remove_refuse_each_malformed_reference_in_one_line_and_change_nothing(settings):
    data = settings.data_dir
    ProfileRepository(settings.profiles_dir).save(tiny_profile("keeper", display_name="keeper"))
    before = _snapshot(data)
    commands = ["recommend", "add", "remove"]
    for i, (ref, fragment) in enumerate(CORPUS):
        res = _invoke([commands[i % 3], ref])  # the three share the resolver: each sees a third of the corpus
        assert res.exit_code == 1, (ref, res.output, res.exception)
        lines = res.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: not a Spotify profile reference"), (ref, res.stderr)
        assert fragment in lines[0]
        assert "Traceback" not in res.stderr and res.stdout == ""
        assert "\x1b" not in res.stderr and "\x00" not in res.stderr
    assert _snapshot(data) == before


def _write_ref_file(path: Path, lines: list[str]) -> Path:
    # each reference on its own line: a reference holding a line break is written as the two lines it is
    path.write_bytes(b"".join(line.encode("utf-8", "surrogatepass") + b"\n" for line in lines))
    return path


def test_ingest_file_with_the_corpus_reports_every_line_and_stores_nothing(spotify_server, tmp_path, settings):
    spotify_server()
    ProfileRepository(settings.profiles_dir).save(tiny_profile("keeper", display_name="keeper"))
    before = _snapshot(settings.data_dir)
    refs = [r for r, _ in CORPUS if "\n" not in r and "\r" not in r and "\x85" not in r and "\u2028" not in r]
    ref_file = _write_ref_file(tmp_path / "refs.txt", ["# hostile input", *refs])
    with ref_file.open("ab") as fh:  # and lines no text editor would write
        fh.write(b"\xff\xfe not utf-8\n" + b"x" * 10_000 + b"\n" + b"\x00" * 5000 + b"\n")
    res = _invoke(["ingest", "--file", str(ref_file), "--json", "--no-progress"])
    assert res.exit_code == 0, (res.output, res.exception)
    assert "Traceback" not in res.stderr
    out = json.loads(res.stdout)
    assert out["ingested"] == 0 and out["skipped"] == 0
    assert len(out["failed"]) == len(refs) + 3
    assert all(f["reason"].startswith("invalid reference") for f in out["failed"])
    assert sum("not UTF-8" in f["reason"] for f in out["failed"]) == 1
    assert sum("longer than 4096 bytes" in f["reason"] for f in out["failed"]) == 2
    after = _snapshot(settings.data_dir)
    assert {k: v for k, v in after.items() if k in before} == before
    assert not [k for k in after if k.startswith("profiles/") and k not in before]


def test_ingest_file_with_valid_users_and_a_long_non_ascii_id_finishes_the_batch(spotify_server, small_world, tmp_path, settings):
    """On main the 50 x é id aborted the whole batch with OSError once profiles/ existed."""
    spotify_server()
    users = world_user_ids(small_world)[:2]
    ref_file = _write_ref_file(tmp_path / "refs.txt", [users[0], LONG_E, "ü" * 64, users[1], "\x1b[31mx"])
    res = _invoke(["ingest", "--file", str(ref_file), "--json", "--no-progress"])
    assert res.exit_code == 0, (res.output, res.exception)
    out = json.loads(res.stdout)
    assert "Traceback" not in res.stderr
    failed = {f["ref"]: f["reason"] for f in out["failed"]}
    assert out["ingested"] == 2 and set(out["ingested_user_ids"]) == set(users)
    assert "unknown user" in failed[LONG_E] and "unknown user" in failed["ü" * 64]
    assert failed["\x1b[31mx"].startswith("invalid reference") and "U+001B" in failed["\x1b[31mx"]


def test_ingest_file_of_unbounded_size_is_one_line_and_bounded(tmp_path):
    """`--file /dev/zero` died with MemoryError on main; now one line, exit non-zero, memory bounded."""
    env = dict(os.environ, SOUNDMATES_DATA_DIR=str(tmp_path / "data"))
    # VmHWM (this process image's peak RSS), not ru_maxrss: Linux carries the forking parent's peak across exec
    script = (
        "import sys; sys.argv=['soundmates','ingest','--file','/dev/zero'];"
        "import soundmates.cli.main as m\ntry:\n    m.main()\nfinally:\n"
        "    hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM:')][0].split()[1]\n"
        "    sys.stderr.write('maxrss_kb=%s\\n' % hwm)"
    )
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("error: --file /dev/zero is larger than 128 MiB"), proc.stderr
    assert "Traceback" not in proc.stderr
    rss_mb = int(lines[-1].split("=")[1]) / 1024
    assert rss_mb < 400, f"peak RSS {rss_mb:.0f} MB while reading /dev/zero"
    assert not (tmp_path / "data").exists()


def test_storage_keys_are_bounded_distinct_and_keep_old_names():
    from soundmates.keys import (
        MAX_KEY_BYTES,
        legacy_filename,
        storage_key,
        storage_names,
        user_id_from_key,
    )

    ids = [
        "alice",
        "john.smith",
        "music#1",
        "müller",
        LONG_E,
        LONG_E + "x",
        "é" * 40,
        "日本" * 32,
        "a" * 64,
        "..",
        "a" * 300,
        "%41",
        "A",
    ]
    keys = [storage_key(u) for u in ids]
    assert len(set(keys)) == len(ids)
    for uid, key in zip(ids, keys, strict=True):
        assert len(key.encode()) <= MAX_KEY_BYTES and "/" not in key and key not in (".", "..")
        assert len(f"{key}.json.lock".encode()) < 255
        legacy = legacy_filename(uid)
        if len(legacy) <= MAX_KEY_BYTES:
            assert key == legacy and user_id_from_key(key) == uid  # files stored before keep their names
        else:
            assert key.startswith(legacy[:20]) and user_id_from_key(key) is None
    assert storage_names("é" * 41) == [storage_key("é" * 41), legacy_filename("é" * 41)]  # 246 bytes: old name read too


def test_profiles_with_long_ids_are_stored_listed_loaded_and_deleted(tmp_path):
    repo = ProfileRepository(tmp_path / "profiles")
    for uid in (LONG_E, "日本" * 32, "alice"):
        repo.save(tiny_profile(uid, display_name=uid))
    assert repo.user_ids() == sorted([LONG_E, "日本" * 32, "alice"])
    assert repo.load(LONG_E).user_id == LONG_E and repo.exists(LONG_E)
    assert repo.delete(LONG_E) and not repo.exists(LONG_E) and repo.load(LONG_E) is None
    assert repo.user_ids() == sorted(["日本" * 32, "alice"])


def test_a_profile_stored_under_its_old_long_name_is_still_found(tmp_path):
    from soundmates.keys import legacy_filename, storage_key

    uid = "é" * 41  # legacy name 246 bytes: a valid file name before, a hashed key now
    root = tmp_path / "profiles"
    root.mkdir()
    (root / f"{legacy_filename(uid)}.json").write_text(tiny_profile(uid, display_name=uid).model_dump_json(), encoding="utf-8")
    repo = ProfileRepository(root)
    assert repo.user_ids() == [uid]
    assert repo.load(uid).user_id == uid
    assert (root / f"{storage_key(uid)}.json").exists()  # migrated on read
    assert repo.user_ids() == [uid]


def test_long_non_ascii_id_through_recommend_add_remove_in_real_processes(dashboard_world):
    """`recommend`/`add`/`remove` crashed with OSError: File name too long on main."""
    env = dict(os.environ, **dashboard_world.env)
    repo = ProfileRepository(dashboard_world.data_dir / "profiles")
    donor = repo.load(dashboard_world.stored_ids[0])
    repo.save(donor.model_copy(update={"user_id": LONG_E}))

    def run(*args):
        return subprocess.run(SOUNDMATES + list(args), env=env, capture_output=True, text=True, timeout=300)

    rec = run("recommend", LONG_E, "--json", "--k", "3")
    assert rec.returncode == 0, rec.stderr
    assert "Traceback" not in rec.stderr
    assert json.loads(rec.stdout)["user_id"] == LONG_E
    add = run("add", LONG_E, "--json")
    assert add.returncode == 0 and "Traceback" not in add.stderr, add.stderr
    rm = run("remove", LONG_E, "--json")
    assert rm.returncode == 0 and "Traceback" not in rm.stderr, rm.stderr
    assert json.loads(rm.stdout)["profile_deleted"] is True
    assert not repo.exists(LONG_E)


def test_oauth_tokens_of_a_long_non_ascii_id_are_stored_found_and_listed(tmp_path):
    from soundmates.spotify.connect import TokenStore

    store = TokenStore(tmp_path / "tokens")
    for uid in (LONG_E, "alice"):
        store.save(uid, {"access_token": "a", "refresh_token": "r-" + uid, "expires_at": 1})
    assert store.load(LONG_E)["refresh_token"] == "r-" + LONG_E
    assert store.accounts() == sorted([LONG_E, "alice"])
    with store.lock(LONG_E):
        pass
    assert store.delete(LONG_E) and store.accounts() == ["alice"]


def test_ingest_text_output_never_echoes_control_characters(spotify_server):
    spotify_server()
    res = CliRunner().invoke(app, ["ingest", "\x1b[31mred", "ok\x07bell", "--no-progress"])
    assert res.exit_code == 0
    assert "\x1b" not in res.output and "\x07" not in res.output
    assert "failed \\x1b[31mred: invalid reference" in res.stdout
