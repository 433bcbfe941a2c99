"""Import of Spotify data exports: real sample files, generated packages, and bad input."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from soundmates.export import archive
from soundmates.export.archive import ExportError, ExportSource
from soundmates.export.genres import GenreResolver, normalize_artist_name
from soundmates.export.importer import import_export
from soundmates.profiles import ProfileRepository

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "spotify-export-samples"
CATALOG = {
    normalize_artist_name("Chase Atlantic"): ["alternative r&b", "pop"],
    normalize_artist_name("The Weeknd"): ["canadian contemporary r&b", "pop"],
    normalize_artist_name("Rachel Platten"): ["dance pop", "pop"],
    normalize_artist_name("Beyoncé"): ["dance pop", "r&b"],
    normalize_artist_name("No Genre Band"): [],
}


@pytest.fixture
def resolver(tmp_path):
    r = GenreResolver(tmp_path / "genres.sqlite", catalog=CATALOG)
    yield r
    r.close()


@pytest.fixture
def samples() -> Path:
    if not SAMPLES.exists():
        pytest.skip("../shared/data/spotify-export-samples is not beside this checkout")
    return SAMPLES


def _plays(n: int, artist: str = "The Weeknd", ms: int = 200_000, **extra) -> list[dict]:
    rows = []
    for i in range(n):
        row = {
            "ts": f"2024-01-0{1 + i % 9}T10:00:00Z",
            "platform": "android",
            "ms_played": ms,
            "conn_country": "DE",
            "ip_addr": "198.51.100.7",
            "master_metadata_track_name": f"Song {i % 3}",
            "master_metadata_album_artist_name": artist,
            "master_metadata_album_album_name": "Album",
            "spotify_track_uri": f"spotify:track:{'t' * 21}{i % 3}",
            "episode_name": None,
            "episode_show_name": None,
            "spotify_episode_uri": None,
            "audiobook_title": None,
            "audiobook_uri": None,
            "audiobook_chapter_uri": None,
            "audiobook_chapter_title": None,
            "reason_start": "clickrow",
            "reason_end": "trackdone",
            "shuffle": False,
            "skipped": False,
            "offline": False,
            "offline_timestamp": 0,
            "incognito_mode": False,
        }
        row.update(extra)
        rows.append(row)
    return rows


def _zip(path: Path, files: dict[str, object]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content if isinstance(content, (str, bytes)) else json.dumps(content))
    return path


# --- real sample files -------------------------------------------------------------------------


def test_real_account_data_sample(samples, resolver):
    profile, summary = import_export(samples / "Spotify Account Data", user_id="sample-a", resolver=resolver)
    raw = json.loads((samples / "Spotify Account Data" / "Playlist1.json").read_text())
    lib = json.loads((samples / "Spotify Account Data" / "YourLibrary.json").read_text())
    n_rows = sum(len(p["items"]) for p in raw["playlists"])
    # every playlist plus "Liked Songs"
    assert summary.playlists == len(raw["playlists"]) + 1
    assert sum(len(p.items) for p in profile.playlists) == n_rows + len(lib["tracks"])
    assert summary.files == {"library": ["YourLibrary.json"], "playlists": ["Playlist1.json"]}
    first = raw["playlists"][0]["items"][0]["track"]
    tid = first["trackUri"].split(":")[2]
    assert profile.tracks[tid].name == first["trackName"]
    artist = profile.artists[profile.tracks[tid].artist_ids[0]]
    assert artist.name == first["artistName"] and artist.genres == ["alternative r&b", "pop"]
    # followed artists' real Spotify ids are used for the artists they name
    followed = {a["name"]: a["uri"].split(":")[2] for a in lib["artists"]}
    named = {a.name: a.id for a in profile.artists.values()}
    shared_names = set(followed) & set(named)
    assert shared_names and all(named[n] == followed[n] for n in shared_names)


def test_real_account_data_keeps_every_spotify_id_its_uris_carry(samples, resolver):
    """Every ``trackUri`` of Playlist1.json and every track ``uri`` of YourLibrary.json is its track's id, row by row;
    every followed artist (``uri`` in YourLibrary.json) a track names keeps its Spotify id."""
    profile, _ = import_export(samples / "Spotify Account Data", user_id="sample-a", resolver=resolver)
    raw = json.loads((samples / "Spotify Account Data" / "Playlist1.json").read_text())
    lib = json.loads((samples / "Spotify Account Data" / "YourLibrary.json").read_text())
    by_name = {pl.name: pl for pl in profile.playlists}
    rows_seen = 0
    for pl in raw["playlists"]:
        rows = [it["track"] for it in pl["items"] if isinstance(it.get("track"), dict)]
        assert all(r["trackUri"].startswith("spotify:track:") for r in rows)
        ids = [r["trackUri"].removeprefix("spotify:track:") for r in rows]
        assert [it.track_id for it in by_name[pl["name"]].items] == ids
        rows_seen += len(rows)
    assert rows_seen > 100
    liked = [t["uri"].removeprefix("spotify:track:") for t in lib["tracks"]]
    assert [it.track_id for it in by_name["Liked Songs"].items] == liked
    assert all(profile.tracks[t["uri"].removeprefix("spotify:track:")].name == t["track"] for t in lib["tracks"])
    followed = {normalize_artist_name(a["name"]): a["uri"].removeprefix("spotify:artist:") for a in lib["artists"]}
    kept = {normalize_artist_name(a.name): a.id for a in profile.artists.values() if normalize_artist_name(a.name) in followed}
    assert len(kept) >= 5 and all(kept[k] == followed[k] for k in kept)


def test_real_extended_history_sample(samples, resolver):
    f = samples / "Spotify Extended Streaming History" / "Streaming_History_Audio_2022.json"
    rows = json.loads(f.read_text())
    profile, summary = import_export(f.parent, user_id="sample-b", resolver=resolver)
    long_plays = [r for r in rows if r["ms_played"] >= 30_000 and r["master_metadata_track_name"]]
    assert summary.plays_counted == len(long_plays)
    assert summary.skipped.get("play under 30 s", 0) == sum(r["ms_played"] < 30_000 for r in rows)
    (history,) = profile.playlists
    weights = {it.track_id: it.weight for it in history.items}
    expect: dict[str, float] = {}
    for r in long_plays:
        tid = r["spotify_track_uri"].split(":")[2]
        expect[tid] = expect.get(tid, 0) + r["ms_played"] / 210_000
    assert weights.keys() == expect.keys()
    assert all(abs(weights[k] - expect[k]) < 1e-3 for k in expect)
    # Rachel Platten is in the catalog: those plays are covered.
    assert summary.genre_coverage > 0
    dumped = profile.model_dump_json()
    assert "203.0.113.1" not in dumped and "ip_addr" not in dumped and "conn_country" not in dumped


# --- generated packages, both kinds, old and new names ------------------------------------------


def test_generated_account_package_old_and_new_history_names(tmp_path, resolver):
    account_new = [{"endTime": "2024-01-01 10:00", "artistName": "Beyoncé", "trackName": "Halo", "msPlayed": 240_000}]
    account_old = [
        {"endTime": "2019-01-01 10:00", "artistName": "beyonce", "trackName": "Halo", "msPlayed": 120_000},
        {"endTime": "2019-01-01 10:05", "artistName": "Beyonce", "trackName": "Halo", "msPlayed": 5_000},
    ]
    z = _zip(
        tmp_path / "my_spotify_data.zip",
        {
            "MyData/StreamingHistory_music_0.json": account_new,
            "MyData/StreamingHistory0.json": account_old,
            "MyData/StreamingHistory_podcast_0.json": [{"podcastName": "x"}],
            "MyData/Userdata.json": {"username": "alice_01", "email": "alice@example.org", "birthdate": "1990-01-01"},
            "MyData/Read_Me_First.pdf": b"%PDF",
        },
    )
    profile, summary = import_export(z, resolver=resolver)
    assert profile.user_id == "alice_01"
    assert "alice@example.org" not in profile.model_dump_json() and "1990" not in profile.model_dump_json()
    assert summary.plays_counted == 2 and summary.skipped == {"play under 30 s": 1}
    # case, accents and punctuation do not split one artist into several
    assert len(profile.artists) == 1 and next(iter(profile.artists.values())).genres == ["dance pop", "r&b"]
    (history,) = profile.playlists
    assert len(history.items) == 1 and history.items[0].weight == pytest.approx(360_000 / 210_000, rel=1e-3)


def test_generated_extended_package_with_endsong_and_skips(tmp_path, resolver):
    rows = _plays(4) + _plays(2, ms=10_000) + _plays(1, spotify_episode_uri="spotify:episode:x", episode_name="Ep")
    rows += _plays(1, audiobook_uri="spotify:audiobook:y", audiobook_title="Book") + [None]
    rows += _plays(1, master_metadata_track_name=None, master_metadata_album_artist_name=None)
    z = _zip(
        tmp_path / "ext.zip",
        {
            "Spotify Extended Streaming History/Streaming_History_Audio_2023-2024_0.json": rows,
            "Spotify Extended Streaming History/endsong_1.json": _plays(2, artist="the weeknd"),
            "Spotify Extended Streaming History/Streaming_History_Video_2024.json": [{"x": 1}],
        },
    )
    profile, summary = import_export(z, user_id="bob", resolver=resolver)
    assert summary.plays_counted == 6
    assert summary.skipped == {"play under 30 s": 2, "episode": 1, "audiobook": 1, "null row": 2}
    assert summary.genre_coverage == 1.0
    assert sorted(summary.files["extended_history"]) == ["Streaming_History_Audio_2023-2024_0.json", "endsong_1.json"]


def test_user_id_is_stable_without_userdata(tmp_path, resolver):
    files = {
        "Playlist1.json": {
            "playlists": [
                {
                    "name": "p",
                    "items": [
                        {
                            "track": {
                                "trackName": "A",
                                "artistName": "No Genre Band",
                                "albumName": "x",
                                "trackUri": "spotify:track:abc",
                            }
                        }
                    ],
                }
            ]
        }
    }
    p1, _ = import_export(_zip(tmp_path / "a.zip", files), resolver=resolver)
    p2, s2 = import_export(_zip(tmp_path / "b.zip", files), resolver=resolver)
    assert p1.user_id == p2.user_id and p1.user_id.startswith("export-")
    assert p2.artists[p2.tracks["abc"].artist_ids[0]].genres == []  # known to the catalog, no genres
    assert s2.genre_coverage == 0.0


# --- genre resolution ---------------------------------------------------------------------------


def test_genre_resolution_order_and_cache(tmp_path):
    calls: list[tuple[str, str]] = []

    def spotify(name):
        calls.append(("spotify", name))
        return ["k-pop"] if name == "Stray Kids" else None

    def mb(name):
        calls.append(("musicbrainz", name))
        return ["shoegaze"] if name == "Slowdive" else None

    r = GenreResolver(tmp_path / "g.sqlite", catalog=CATALOG, spotify=spotify, online=[("musicbrainz", mb)])
    assert r.resolve("THE WEEKND").source == "catalog"
    assert r.resolve("Stray Kids").genres == ["k-pop"]
    assert r.resolve("Slowdive").source == "musicbrainz"
    assert r.resolve("Nobody Knows Me").genres is None
    assert calls == [
        ("spotify", "Stray Kids"),
        ("spotify", "Slowdive"),
        ("musicbrainz", "Slowdive"),
        ("spotify", "Nobody Knows Me"),
        ("musicbrainz", "Nobody Knows Me"),
    ]
    r.close()
    # a second resolver (another process) answers from the persisted cache: no source is asked again
    calls.clear()
    r2 = GenreResolver(tmp_path / "g.sqlite", catalog={}, spotify=spotify, online=[("musicbrainz", mb)])
    assert r2.resolve("Slowdive").genres == ["shoegaze"] and r2.resolve("Weeknd").genres == ["canadian contemporary r&b", "pop"]
    assert calls == [] and r2.lookups["cache"] == 2
    r2.close()


def test_a_failing_online_source_does_not_fail_resolution(tmp_path):
    def broken(name):
        raise ConnectionError("offline")

    r = GenreResolver(tmp_path / "g.sqlite", catalog={}, online=[("lastfm", broken)])
    assert r.resolve("Anyone").genres is None
    r.close()


@pytest.mark.parametrize(
    "name,expected",
    [
        ("The Beatles", "beatles"),
        ("Simon & Garfunkel", "simon and garfunkel"),
        ("Beyoncé", "beyonce"),
        ("AC/DC", "ac dc"),
        ("  Sigur  Rós ", "sigur ros"),
    ],
)
def test_name_normalisation(name, expected):
    assert normalize_artist_name(name) == expected


# --- bad input: clear error, nothing stored -------------------------------------------------------


def _cli(args, env_data_dir):
    import os
    import subprocess
    import sys

    env = dict(os.environ, SOUNDMATES_DATA_DIR=str(env_data_dir))
    return subprocess.run(
        [sys.executable, "-m", "soundmates.cli.main", "import-export", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    not_zip = tmp_path / "notes.zip"
    not_zip.write_text("hello, I am not a zip")
    no_spotify = _zip(tmp_path / "other.zip", {"photos/index.json": {"a": 1}, "readme.txt": "x"})
    truncated = _zip(tmp_path / "trunc.zip", {"Spotify Account Data/Playlist1.json": '{"playlists": [{"name": "x", "items": ['})
    escaping = _zip(tmp_path / "escape.zip", {"../../etc/Playlist1.json": {"playlists": []}})
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("StreamingHistory_music_0.json", "[" + " " * (30 << 20) + "]")
    return {
        "not a zip": (not_zip, "not a ZIP"),
        "no spotify files": (no_spotify, "no Spotify export files"),
        "truncated json": (truncated, "not valid JSON"),
        "path escaping": (escaping, "escaping the archive"),
        "zip bomb": (bomb, "ZIP bomb"),
    }


def test_bad_inputs_are_refused_with_a_reason(tmp_path):
    for _label, (path, message) in _bad_inputs(tmp_path).items():
        with pytest.raises(ExportError, match=message):
            import_export(path, user_id="x", resolver=GenreResolver(tmp_path / "g.sqlite", catalog={}))


def test_oversized_files_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", 1000)
    big = _zip(
        tmp_path / "big.zip",
        {"StreamingHistory_music_0.json": [{"endTime": "x", "artistName": "a" * 50, "trackName": "b", "msPlayed": 40_000}] * 30},
    )
    with pytest.raises(ExportError, match="far larger than any real export"):
        ExportSource(big)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "StreamingHistory_music_0.json").write_text("[" + " " * 2000 + "]")
    with pytest.raises(ExportError, match="far larger"):
        ExportSource(folder)


def test_cli_bad_input_leaves_the_store_unchanged(tmp_path, samples):
    data_dir = tmp_path / "state"
    ok = _cli([str(samples / "Spotify Account Data"), "--user-id", "keeper", "--json"], data_dir)
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["stored"] is True and out["user_id"] == "keeper"
    before = {p.name: p.read_bytes() for p in (data_dir / "profiles").iterdir()}
    for label, (path, message) in _bad_inputs(tmp_path).items():
        res = _cli([str(path), "--user-id", "keeper", "--json"], data_dir)
        assert res.returncode != 0, label
        assert message in res.stderr, (label, res.stderr)
        assert json.loads(res.stdout) == {"error": res.stderr.strip().removeprefix("error: "), "stored": False}
    after = {p.name: p.read_bytes() for p in (data_dir / "profiles").iterdir()}
    assert after == before
    assert ProfileRepository(data_dir / "profiles").load("keeper") is not None


def test_dry_run_stores_nothing(tmp_path, samples):
    data_dir = tmp_path / "state"
    res = _cli([str(samples / "Spotify Extended Streaming History"), "--dry-run", "--json"], data_dir)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["stored"] is False
    assert not (data_dir / "profiles").exists() or not any((data_dir / "profiles").iterdir())


def test_catalog_artists_get_the_world_artist_id(tmp_path, resolver, spotify_server):
    """An imported taste shares artists by id with the users of the local Spotify world: the name is
    resolved through the configured API's search (here the local server), not by importing the world."""
    from soundmates.world.catalog import artists
    from soundmates.world.generator import artist_id

    spotify_server()
    names = artists().names
    keys = [normalize_artist_name(n) for n in names]
    i = next(i for i, n in enumerate(names) if n.isascii() and n.isalpha() and len(n) > 4 and keys.count(keys[i]) == 1)
    z = _zip(
        tmp_path / "p.zip",
        {
            "Playlist1.json": {
                "playlists": [
                    {
                        "name": "p",
                        "items": [
                            {
                                "track": {
                                    "trackName": "t",
                                    "artistName": names[i].upper(),
                                    "albumName": "a",
                                    "trackUri": "spotify:track:t1",
                                }
                            }
                        ],
                    }
                ]
            }
        },
    )
    profile, _ = import_export(z, user_id="u", resolver=resolver)
    assert profile.tracks["t1"].artist_ids == [artist_id(i)]
