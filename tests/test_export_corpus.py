"""A corpus of crafted Spotify exports (ZIPs, damaged ZIPs, folders) through `soundmates import-export`:
each refused with one line naming the reason, no traceback, the data directory byte-identical;
absurd numbers refused and counted; an export never replaces someone else's profile."""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from soundmates.cli.main import app
from soundmates.export import archive
from soundmates.profiles import (
    Artist,
    Playlist,
    PlaylistItem,
    Profile,
    ProfileRepository,
    Track,
)

SOUNDMATES = [sys.executable, "-m", "soundmates.cli.main"]
ACCOUNT = "Spotify Account Data"


def _row(i: int = 0, ms: object = 200_000, artist: str = "The Weeknd") -> dict:
    return {"endTime": "2024-01-01 10:00", "artistName": artist, "trackName": f"Song {i}", "msPlayed": ms}


def _ext_row(i: int = 0, ms: object = 200_000) -> dict:
    return {
        "ts": "2024-01-01T10:00:00Z",
        "ms_played": ms,
        "master_metadata_track_name": f"Song {i}",
        "master_metadata_album_artist_name": "The Weeknd",
        "master_metadata_album_album_name": "A",
        "spotify_track_uri": f"spotify:track:{'t' * 21}{i}",
    }


GOOD_HISTORY = [_row(i) for i in range(3)]


def _zip(path: Path, files: dict[str, object], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, content in files.items():
            zf.writestr(name, content if isinstance(content, (str, bytes)) else json.dumps(content))
    return path


def _folder(path: Path, files: dict[str, object]) -> Path:
    for name, content in files.items():
        f = path / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(
            content
            if isinstance(content, bytes)
            else (content if isinstance(content, str) else json.dumps(content)).encode("utf-8")
        )
    return path


def _patch(path: Path, edit: Callable[[bytearray], None]) -> Path:
    data = bytearray(path.read_bytes())
    edit(data)
    path.write_bytes(bytes(data))
    return path


def _member_data_offset(path: Path) -> tuple[int, int]:
    """(offset, length) of the first member's compressed bytes."""
    with zipfile.ZipFile(path) as zf:
        info = zf.infolist()[0]
    raw = path.read_bytes()
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    return info.header_offset + 30 + name_len + extra_len, info.compress_size


def _damage_data(path: Path) -> Path:
    start, size = _member_data_offset(path)

    def edit(d: bytearray) -> None:
        for i in range(start + size // 3, start + size // 3 + 8):
            d[i] ^= 0x5A

    return _patch(path, edit)


def _set_central(path: Path, offset: int, fmt: str, value: int, *, local_offset: int | None = None) -> Path:
    def edit(d: bytearray) -> None:
        cd = d.rfind(b"PK\x01\x02")
        if fmt == "flag":
            struct.pack_into("<H", d, cd + offset, struct.unpack_from("<H", d, cd + offset)[0] | value)
        else:
            struct.pack_into("<H", d, cd + offset, value)
        if local_offset is not None:
            struct.pack_into("<H", d, local_offset, value)

    return _patch(path, edit)


def _history(tmp: Path, name: str, rows: object, extra: dict | None = None, method: int = zipfile.ZIP_DEFLATED) -> Path:
    return _zip(tmp / f"{name}.zip", {f"{ACCOUNT}/StreamingHistory_music_0.json": rows, **(extra or {})}, method)


def _deep(n: int = 100_000) -> str:
    return "[" * n + "]" * n


Case = tuple[Path, list[str], str]  # export path, extra CLI args, fragment of the one-line error


def refused_cases(tmp: Path) -> dict[str, Case]:
    """label -> case: at least 50 exports no import may accept."""
    c: dict[str, Case] = {}

    def add(label: str, path: Path, fragment: str, *args: str) -> None:
        c[label] = (path, list(args), fragment)

    for builder in (_archive_cases, _json_cases, _id_cases, _folder_cases):
        builder(tmp, add)
    return c


def _archive_cases(t: Path, add: Callable[..., None]) -> None:
    """The archive itself: not a ZIP, damaged, encrypted, odd compression, escaping paths, bombs."""
    (t / "text.zip").write_text("hello, I am not a zip")
    add("not a zip", t / "text.zip", "not a ZIP archive")
    (t / "empty.zip").write_bytes(b"")
    add("empty file", t / "empty.zip", "not a ZIP archive")
    whole = _zip(t / "whole.zip", {f"{ACCOUNT}/StreamingHistory_music_0.json": GOOD_HISTORY * 50})
    (t / "half.zip").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    add("truncated archive", t / "half.zip", "not a ZIP archive")
    stored = _zip(t / "crc.zip", {f"{ACCOUNT}/StreamingHistory_music_0.json": GOOD_HISTORY}, zipfile.ZIP_STORED)
    add("bad CRC", _damage_data(stored), "damaged in the archive (BadZipFile")
    add(
        "damaged deflate stream",
        _damage_data(_zip(t / "deflate.zip", {f"{ACCOUNT}/StreamingHistory_music_0.json": [_row(i) for i in range(400)]})),
        "damaged in the archive",
    )
    add(
        "damaged bzip2 stream",
        _damage_data(
            _zip(t / "bz2.zip", {f"{ACCOUNT}/StreamingHistory_music_0.json": [_row(i) for i in range(400)]}, zipfile.ZIP_BZIP2)
        ),
        "damaged in the archive",
    )
    add(
        "damaged lzma stream",
        _damage_data(
            _zip(t / "lzma.zip", {f"{ACCOUNT}/StreamingHistory_music_0.json": [_row(i) for i in range(400)]}, zipfile.ZIP_LZMA)
        ),
        "damaged in the archive",
    )
    add(
        "encrypted flag",
        _set_central(_zip(t / "enc.zip", {"StreamingHistory_music_0.json": GOOD_HISTORY}), 8, "flag", 0x1),
        "is encrypted",
    )
    unsupported = _zip(t / "method.zip", {"StreamingHistory_music_0.json": GOOD_HISTORY}, zipfile.ZIP_STORED)
    add("unsupported compression method", _set_central(unsupported, 10, "method", 99, local_offset=8), "compression method")
    add(
        "unknown compression method 1 (shrink)",
        _set_central(
            _zip(t / "shrink.zip", {"StreamingHistory_music_0.json": GOOD_HISTORY}, zipfile.ZIP_STORED),
            10,
            "method",
            1,
            local_offset=8,
        ),
        "compression method",
    )
    bad_name = _zip(t / "badname.zip", {"StreamingHistory_music_0.json": GOOD_HISTORY}, zipfile.ZIP_STORED)
    add(
        "undecodable member name",
        _set_central(
            _patch(
                bad_name, lambda d: d.__setitem__(slice(d.rfind(b"PK\x01\x02") + 46, d.rfind(b"PK\x01\x02") + 48), b"\xff\xfe")
            ),
            8,
            "flag",
            0x800,
        ),
        "damaged ZIP archive",
    )
    add(
        "path escaping", _zip(t / "escape.zip", {"../../etc/StreamingHistory_music_0.json": GOOD_HISTORY}), "escaping the archive"
    )
    add("absolute member", _zip(t / "abs.zip", {"/etc/StreamingHistory_music_0.json": GOOD_HISTORY}), "escaping the archive")
    add("drive member", _zip(t / "drive.zip", {"C:/StreamingHistory_music_0.json": GOOD_HISTORY}), "escaping the archive")
    add("backslash escape", _zip(t / "bs.zip", {"..\\..\\StreamingHistory_music_0.json": GOOD_HISTORY}), "escaping the archive")
    with zipfile.ZipFile(t / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("StreamingHistory_music_0.json", "[" + " " * (8 << 20) + "]")
    add("zip bomb", t / "bomb.zip", "ZIP bomb")
    add("no json", _zip(t / "nojson.zip", {"readme.txt": "x", "photo.jpg": b"\xff\xd8"}), "no Spotify export files")
    add("other json", _zip(t / "other.zip", {"photos/index.json": {"a": 1}}), "no Spotify export files")
    add("only Userdata", _zip(t / "userdata.zip", {"Userdata.json": {"username": "x"}}), "no Spotify export files")


def _json_cases(t: Path, add: Callable[..., None]) -> None:
    """The JSON inside: undecodable, nested, non-finite, wrong shapes, absurd numbers."""
    add("not utf-8", _history(t, "latin1", '[{"trackName": "caf\xe9"}]'.encode("latin-1")), "not UTF-8")
    add("truncated json", _history(t, "truncjson", '[{"trackName": "x", '), "not valid JSON")
    add("deep nesting", _history(t, "deep", _deep(), method=zipfile.ZIP_STORED), "nested far deeper")
    add(
        "deep nesting in Userdata",
        _zip(t / "deepuser.zip", {"Userdata.json": _deep(), "StreamingHistory_music_0.json": GOOD_HISTORY}, zipfile.ZIP_STORED),
        "nested far deeper",
    )
    add("NaN", _history(t, "nan", '[{"trackName": "x", "artistName": "y", "msPlayed": NaN}]'), "NaN")
    add("Infinity", _history(t, "inf", '[{"trackName": "x", "artistName": "y", "msPlayed": Infinity}]'), "Infinity")
    add("1e400", _history(t, "e400", '[{"trackName": "x", "artistName": "y", "msPlayed": 1e400}]'), "too large to be real")
    add(
        "5000-digit integer",
        _history(t, "digits", '[{"trackName": "x", "artistName": "y", "msPlayed": ' + "9" * 5000 + "}]"),
        "cannot be read",
    )
    add("history is an object", _history(t, "histobj", {"plays": GOOD_HISTORY}), "expected a list of plays")
    add("history is a number", _history(t, "histnum", 5), "expected a list of plays")
    add(
        "extended history is text",
        _zip(t / "exttext.zip", {"Streaming_History_Audio_2024.json": '"plays"'}),
        "expected a list of plays",
    )
    add("playlists file is a list", _zip(t / "pllist.zip", {"Playlist1.json": []}), "expected an object")
    add("playlists is a number", _zip(t / "plnum.zip", {"Playlist1.json": {"playlists": 5}}), "a 'playlists' list")
    add("playlists is true", _zip(t / "pltrue.zip", {"Playlist1.json": {"playlists": True}}), "a 'playlists' list")
    add(
        "items is a number",
        _zip(t / "itemsnum.zip", {"Playlist1.json": {"playlists": [{"name": "a", "items": 5}]}}),
        "no music tracks",
    )
    add(
        "items is true",
        _zip(t / "itemstrue.zip", {"Playlist1.json": {"playlists": [{"name": "a", "items": True}]}}),
        "no music tracks",
    )
    add(
        "items is an object",
        _zip(t / "itemsobj.zip", {"Playlist1.json": {"playlists": [{"name": "a", "items": {"x": 1}}]}}),
        "no music tracks",
    )
    add("library is a list", _zip(t / "liblist.zip", {"YourLibrary.json": [1, 2]}), "expected an object")
    add("library tracks is a number", _zip(t / "libnum.zip", {"YourLibrary.json": {"tracks": 7}}), "no music tracks")
    add("library tracks is true", _zip(t / "libtrue.zip", {"YourLibrary.json": {"tracks": True}}), "no music tracks")
    add(
        "library artists is a number",
        _zip(t / "libart.zip", {"YourLibrary.json": {"tracks": [], "artists": 3}}),
        "no music tracks",
    )
    add(
        "only episodes",
        _zip(
            t / "episodes.zip", {"Streaming_History_Audio_2024.json": [dict(_ext_row(), spotify_episode_uri="spotify:episode:x")]}
        ),
        "no music tracks",
    )
    add("400-digit msPlayed only", _history(t, "ms400", [_row(0, ms=int("9" * 400))]), "no music tracks")
    add("10^300 ms only", _history(t, "ms300", [_row(0, ms=10**300)]), "no music tracks")
    add(
        "400-digit ms_played only",
        _zip(t / "ext400.zip", {"Streaming_History_Audio_2024.json": [_ext_row(0, ms=int("9" * 400))]}),
        "no music tracks",
    )
    add("msPlayed as booleans", _history(t, "msbool", [_row(i, ms=True) for i in range(3)]), "no music tracks")
    add("msPlayed negative", _history(t, "msneg", [_row(0, ms=-(10**12))]), "no music tracks")


def _id_cases(t: Path, add: Callable[..., None]) -> None:
    """Usernames and --user-id values that cannot be a user id."""

    def user(label: str, name: object, fragment: str) -> None:
        add(
            label,
            _history(
                t, "u-" + label.replace(" ", "-").replace("'", ""), GOOD_HISTORY, {f"{ACCOUNT}/Userdata.json": {"username": name}}
            ),
            fragment,
        )

    user("username with path parts", "../../../outside/pwn", "cannot be a user id")
    user("username with ANSI escape", "\x1b[31mevil\x1b[0m", "control character")
    user("username with newline", "evil\nforged: log line", "whitespace")
    user("username of 300 characters", "a" * 300, "300 characters long")
    user("username of 300 non-ASCII", "é" * 300, "300 characters long")
    user("username '..'", "..", "only dots")
    user("username with slash", "a/b", "'/'")
    user("username with NUL", "a\x00b", "control character")
    add("--user-id with path parts", _history(t, "uid1", GOOD_HISTORY), "cannot be a user id", "--user-id", "../x")
    add("--user-id with escape", _history(t, "uid2", GOOD_HISTORY), "control character", "--user-id", "x\x1b[2J")
    add("--user-id empty", _history(t, "uid3", GOOD_HISTORY), "empty", "--user-id", "")


def _folder_cases(t: Path, add: Callable[..., None]) -> None:
    """Unpacked folders."""
    (t / "emptydir").mkdir()
    add("empty folder", t / "emptydir", "no Spotify export files")
    add(
        "folder with a directory named like an export file",
        _folder(t / "dirjson", {"StreamingHistory_music_0.json/x.txt": "x"}),
        "no Spotify export files",
    )
    add("folder with deep nesting", _folder(t / "deepdir", {"StreamingHistory_music_0.json": _deep()}), "nested far deeper")
    add("folder with NaN", _folder(t / "nandir", {"StreamingHistory_music_0.json": '[{"msPlayed": NaN}]'}), "NaN")
    add(
        "folder with items as numbers",
        _folder(t / "itemsdir", {"Playlist1.json": {"playlists": [{"name": "a", "items": 1}]}}),
        "no music tracks",
    )
    outside = _folder(t / "outside", {"StreamingHistory_music_0.json": GOOD_HISTORY})
    (t / "linkdir").mkdir()
    (t / "linkdir" / "StreamingHistory_music_0.json").symlink_to(outside / "StreamingHistory_music_0.json")
    add("folder whose only file is a symlink out", t / "linkdir", "no Spotify export files")
    add("missing path", t / "does-not-exist.zip", "no such file or folder")


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _ingested_profile(uid: str, n_tracks: int = 33) -> Profile:
    tracks = {f"t{i}": Track(id=f"t{i}", name=f"track {i}", artist_ids=["a"]) for i in range(n_tracks)}
    return Profile(
        user_id=uid,
        display_name=uid,
        source="spotify",
        tracks=tracks,
        artists={"a": Artist(id="a", name="A", genres=["pop"])},
        playlists=[Playlist(id="p", name="mix", items=[PlaylistItem(track_id=t) for t in tracks])],
    )


@pytest.fixture
def corpus(tmp_path_factory):
    return refused_cases(tmp_path_factory.mktemp("exports"))


def test_every_crafted_export_is_refused_in_one_line_and_nothing_changes(corpus, settings):
    assert len(corpus) >= 50
    ProfileRepository(settings.profiles_dir).save(_ingested_profile("someone"))
    before = _snapshot(settings.data_dir)
    runner = CliRunner()
    for label, (path, extra, fragment) in corpus.items():
        res = runner.invoke(app, ["import-export", str(path), *extra, "--json"])
        assert res.exit_code == 1, (label, res.output, res.exception)
        lines = res.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (label, res.stderr)
        assert fragment in lines[0], (label, lines[0])
        assert "unexpected error" not in lines[0] and "Traceback" not in res.output, (label, res.output)
        assert "\x1b" not in res.output and "\x00" not in res.output, label
        assert json.loads(res.stdout) == {"error": lines[0].removeprefix("error: "), "stored": False}, label
        assert _snapshot(settings.data_dir) == before, label


def test_every_parser_exception_is_an_export_error(corpus, tmp_path):
    """The library API, not only the CLI: nothing but ExportError comes out of import_export."""
    from soundmates.export.archive import ExportError
    from soundmates.export.genres import GenreResolver
    from soundmates.export.importer import import_export

    resolver = GenreResolver(tmp_path / "g.sqlite", catalog={})
    try:
        for _label, (path, extra, _fragment) in corpus.items():
            uid = extra[1] if extra else None
            with pytest.raises(ExportError):
                import_export(path, user_id=uid, resolver=resolver)
    finally:
        resolver.close()


def test_too_many_members_and_oversized_members_are_refused(tmp_path, monkeypatch, settings):
    monkeypatch.setattr(archive, "MAX_MEMBERS", 20)
    many = _zip(tmp_path / "many.zip", {f"f{i}.txt": "x" for i in range(21)})
    res = CliRunner().invoke(app, ["import-export", str(many)])
    assert res.exit_code == 1 and "21 entries" in res.stderr and "Traceback" not in res.output
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", 500)
    big = _history(tmp_path, "big", [_row(i) for i in range(50)])
    res = CliRunner().invoke(app, ["import-export", str(big)])
    assert res.exit_code == 1 and "far larger than any real export" in res.stderr
    assert not settings.profiles_dir.exists()


def test_absurd_plays_are_refused_and_counted_in_the_summary(tmp_path, settings):
    rows = GOOD_HISTORY + [_row(7, ms=int("9" * 400)), _row(8, ms=10**300), _row(9, ms=True), _row(10, ms=25 * 3600 * 1000)]
    path = _history(tmp_path, "absurd", rows, {f"{ACCOUNT}/Userdata.json": {"username": "listener_1"}})
    res = CliRunner().invoke(app, ["import-export", str(path), "--json"])
    assert res.exit_code == 0, (res.output, res.exception)
    out = json.loads(res.stdout)
    assert out["stored"] is True and out["user_id"] == "listener_1"
    assert out["plays_counted"] == 3
    assert out["skipped"]["play longer than a day (impossible duration)"] == 3
    assert out["skipped"]["play without track, artist or duration"] == 1  # a boolean is not a duration
    profile = ProfileRepository(settings.profiles_dir).load("listener_1")
    weights = [it.weight for pl in profile.playlists for it in pl.items]
    assert weights and all(math.isfinite(w) and 0 < w < 500 for w in weights)


def test_export_username_equal_to_an_ingested_user_is_refused_and_the_profile_untouched(tmp_path, settings):
    """On main the export overwrote the ingested user's profile (33 tracks -> 1)."""
    repo = ProfileRepository(settings.profiles_dir)
    repo.save(_ingested_profile("victim"))
    before = _snapshot(settings.data_dir)
    path = _history(tmp_path, "collide", [_row(0)], {f"{ACCOUNT}/Userdata.json": {"username": "victim"}})
    for extra in ([], ["--user-id", "victim"], ["--dry-run"]):
        res = CliRunner().invoke(app, ["import-export", str(path), *extra])
        assert res.exit_code == 1, (extra, res.output)
        assert res.stderr.startswith("error: a profile for 'victim' (source: spotify) is already stored"), res.stderr
        assert "--user-id" in res.stderr and len(res.stderr.splitlines()) == 1
        assert _snapshot(settings.data_dir) == before
    assert len(repo.load("victim").tracks) == 33
    # under another id it is stored, in its own place
    res = CliRunner().invoke(app, ["import-export", str(path), "--user-id", "victim-export", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["user_id"] == "victim-export"
    assert len(repo.load("victim").tracks) == 33 and repo.load("victim-export").source == "export"


def test_an_export_never_replaces_another_export_but_the_connected_owner_may(tmp_path, settings):
    repo = ProfileRepository(settings.profiles_dir)
    first = _history(tmp_path, "first", GOOD_HISTORY, {f"{ACCOUNT}/Userdata.json": {"username": "alice_01"}})
    forged = _history(
        tmp_path, "forged", [_row(0, artist="Someone Else")], {f"{ACCOUNT}/Userdata.json": {"username": "alice_01"}}
    )
    assert CliRunner().invoke(app, ["import-export", str(first)]).exit_code == 0
    stored = _snapshot(settings.data_dir)
    res = CliRunner().invoke(app, ["import-export", str(forged)])
    assert res.exit_code == 1 and "source: export" in res.stderr and "soundmates connect" in res.stderr
    assert _snapshot(settings.data_dir) == stored
    # proven owner: the account was connected here with Connect with Spotify (its token is stored)
    from soundmates.spotify.connect import TokenStore

    tokens = TokenStore(settings.data_dir / "oauth" / "tokens")
    tokens.path("alice_01").parent.mkdir(parents=True, exist_ok=True)
    tokens.path("alice_01").write_text(json.dumps({"user_id": "mallory"}), encoding="utf-8")
    assert CliRunner().invoke(app, ["import-export", str(forged)]).exit_code == 1  # a file is no proof
    tokens.save("alice_01", {"access_token": "a", "refresh_token": "r", "expires_at": 1})
    res = CliRunner().invoke(app, ["import-export", str(forged)])
    assert res.exit_code == 0, res.output
    assert {t.name for t in repo.load("alice_01").tracks.values()} == {"Song 0"}


def test_crafted_exports_in_real_processes_print_no_traceback(corpus, tmp_path):
    data = tmp_path / "data"
    env = dict(os.environ, SOUNDMATES_DATA_DIR=str(data))
    for label in ("bad CRC", "encrypted flag", "unsupported compression method", "deep nesting", "username of 300 characters"):
        path, extra, fragment = corpus[label]
        proc = subprocess.run(
            SOUNDMATES + ["import-export", str(path), *extra], env=env, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 1, (label, proc.stderr)
        assert proc.stderr.count("\n") == 1 and fragment in proc.stderr, (label, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert not (data / "profiles").exists()
