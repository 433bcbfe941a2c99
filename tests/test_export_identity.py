"""Identity across sources: an export keeps the Spotify ids its URIs carry and resolves name-only
artists through the configured API's search (the local server here), cached, else a name key."""

from __future__ import annotations

import json
import sqlite3
import zipfile
from pathlib import Path

import pytest
import requests

from soundmates.config import get_settings
from soundmates.export.genres import GenreResolver, normalize_artist_name
from soundmates.export.identity import name_key
from soundmates.export.importer import import_export
from soundmates.world.catalog import artists
from soundmates.world.generator import artist_id
from soundmates.world.server import FaultConfig
from tests.fixtures.spotify import world_user_ids

UNKNOWN = "Zzqx Nobody Plays This Band"


@pytest.fixture
def genres(tmp_path):
    r = GenreResolver(tmp_path / "genres.sqlite", catalog={})
    yield r
    r.close()


def _zip(path: Path, files: dict[str, object]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, json.dumps(content))
    return path


def _unique_catalog_names(n: int) -> list[tuple[int, str]]:
    """``n`` catalog artists whose name no other catalog artist shares (after normalisation)."""
    names = artists().names
    counts: dict[str, int] = {}
    for name in names:
        counts[normalize_artist_name(name)] = counts.get(normalize_artist_name(name), 0) + 1
    picked = [(i, nm) for i, nm in enumerate(names) if nm.isascii() and len(nm) > 5 and counts[normalize_artist_name(nm)] == 1]
    return picked[100 : 100 + n]


def _search_calls(server) -> int:
    return requests.get(f"{server.base_url}/_stats", timeout=10).json()["requests"].get("search", 0)


def _name_only_export(path: Path, artist_names: list[str]) -> Path:
    rows = [{"track": {"trackName": f"song {k}", "artistName": a, "albumName": "x"}} for k, a in enumerate(artist_names)]
    return _zip(path, {"Playlist1.json": {"playlists": [{"name": "mine", "items": rows}]}})


def test_an_export_with_uris_keeps_real_ids_and_shares_artists_with_an_ingested_user(
    tmp_path, spotify_server, small_world, genres
):
    from soundmates.spotify.ingest import Ingestor

    spotify_server()
    settings = get_settings()
    ingestor = Ingestor(settings)
    ingested = next(p for p in (ingestor.ingest_user(u) for u in world_user_ids(small_world)[:20]) if len(p.tracks) >= 6)
    counts: dict[str, int] = {}
    for name in artists().names:
        counts[normalize_artist_name(name)] = counts.get(normalize_artist_name(name), 0) + 1
    # Tracks whose first artist's name is the catalog's only artist of that name (a name search can tell it apart).
    tracks = [t for t in ingested.tracks.values() if counts[normalize_artist_name(ingested.artists[t.artist_ids[0]].name)] == 1][
        :6
    ]
    assert len(tracks) >= 4

    def art(track):
        return ingested.artists[track.artist_ids[0]]

    followed = art(tracks[0])
    z = _zip(
        tmp_path / "export.zip",
        {
            "Playlist1.json": {
                "playlists": [
                    {
                        "name": "mix",
                        "items": [
                            {
                                "track": {
                                    "trackName": t.name,
                                    "artistName": art(t).name,
                                    "albumName": "a",
                                    "trackUri": f"spotify:track:{t.id}",
                                }
                            }
                            for t in tracks[:3]
                        ],
                    }
                ]
            },
            "YourLibrary.json": {
                "tracks": [
                    {"artist": art(tracks[3]).name, "album": "a", "track": tracks[3].name, "uri": f"spotify:track:{tracks[3].id}"}
                ],
                "artists": [{"name": followed.name, "uri": f"spotify:artist:{followed.id}"}],
            },
            "Streaming_History_Audio_2024.json": [
                {
                    "ts": "2024-05-01T10:00:00Z",
                    "ms_played": 200_000,
                    "master_metadata_track_name": t.name,
                    "master_metadata_album_artist_name": art(t).name,
                    "master_metadata_album_album_name": "a",
                    "spotify_track_uri": f"spotify:track:{t.id}",
                }
                for t in tracks[4:]
            ],
        },
    )
    profile, summary = import_export(z, user_id="me", settings=settings, resolver=genres)
    # Every track keeps the id its URI carries, and every artist is the ingested user's artist, by id.
    assert set(profile.tracks) == {t.id for t in tracks}
    for t in tracks:
        assert profile.tracks[t.id].artist_ids == [t.artist_ids[0]]
    assert set(profile.artists) <= set(ingested.artists)
    # The followed artist's id came from its URI, the others from a search.
    assert summary.artist_id_sources.get("search", 0) == len({art(t).id for t in tracks} - {followed.id})


def test_a_name_only_row_is_resolved_through_search_once_and_then_from_the_cache(tmp_path, spotify_server, genres):
    server = spotify_server()
    settings = get_settings()
    (i, name), (j, other) = _unique_catalog_names(2)
    z = _name_only_export(tmp_path / "e.zip", [name.upper(), other, UNKNOWN, name])
    profile, summary = import_export(z, user_id="me", settings=settings, resolver=genres)
    ids = {profile.artists[a].name: a for a in profile.artists}
    assert ids[name.upper()] == artist_id(i) and ids[other] == artist_id(j)  # case does not matter
    assert ids[UNKNOWN] == name_key(normalize_artist_name(UNKNOWN))  # the API knows no such artist
    assert _search_calls(server) == 3  # one per distinct name
    # The row spelt differently is the same artist: the cache answers it.
    assert summary.artist_id_sources == {"search": 2, "not_found": 1, "cache": 1}
    assert (settings.cache_dir / "artist_ids.sqlite").exists()

    again, summary2 = import_export(z, user_id="me", settings=settings, resolver=genres)
    assert _search_calls(server) == 3  # a hit and a miss alike come from the cache
    assert summary2.artist_id_sources == {"cache": 4}
    assert set(again.artists) == set(profile.artists)


def test_name_keys_when_the_api_refuses_and_nothing_is_cached(tmp_path, spotify_server, genres, monkeypatch):
    # Retry-After above the client's cap: the API refuses at once; the import must not wait on it.
    server = spotify_server(faults=FaultConfig(rate_429=1.0, retry_after=3600))
    settings = get_settings()
    (i, name), (_, other) = _unique_catalog_names(2)
    z = _name_only_export(tmp_path / "e.zip", [name, other])
    profile, summary = import_export(z, user_id="me", settings=settings, resolver=genres)
    assert set(profile.artists) == {name_key(normalize_artist_name(n)) for n in (name, other)}
    assert "Retry-After" in summary.spotify_search_unavailable
    assert server.stats()["requests"].get("search", 0) == 1  # one refusal stops the asking
    assert summary.artist_id_sources == {"name_key": 2}
    with sqlite3.connect(settings.cache_dir / "artist_ids.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM artist_ids").fetchone() == (0,)  # a refusal is no answer

    # The refusal was not cached: with the API back (here: another server), the next import finds the real id.
    healthy = spotify_server()
    profile2, _ = import_export(z, user_id="me", settings=get_settings(), resolver=genres)
    assert artist_id(i) in profile2.artists
    assert healthy.stats()["requests"].get("search", 0) == 2


def test_without_credentials_no_api_is_asked_and_names_become_keys(tmp_path, genres, monkeypatch):
    monkeypatch.delenv("SPOTIPY_CLIENT_ID", raising=False)
    monkeypatch.delenv("SPOTIPY_CLIENT_SECRET", raising=False)
    ((_, name),) = _unique_catalog_names(1)
    profile, summary = import_export(_name_only_export(tmp_path / "e.zip", [name]), user_id="me", resolver=genres)
    assert list(profile.artists) == [name_key(normalize_artist_name(name))]
    assert summary.artist_id_sources == {"name_key": 1} and summary.spotify_search_unavailable is None


def test_ids_cached_from_one_api_are_not_answers_for_another(tmp_path, spotify_server, genres):
    first = spotify_server()
    ((_, name),) = _unique_catalog_names(1)
    z = _name_only_export(tmp_path / "e.zip", [name])
    import_export(z, user_id="me", settings=get_settings(), resolver=genres)
    second = spotify_server()  # another base URL, as when switching from the local server to Spotify
    _, summary = import_export(z, user_id="me", settings=get_settings(), resolver=genres)
    assert summary.artist_id_sources == {"search": 1}
    assert first.stats()["requests"]["search"] == 1 and second.stats()["requests"]["search"] == 1


def test_an_import_runs_without_loading_the_simulator(tmp_path, spotify_server):
    """In a process of its own, an import resolves names through the configured API's search and
    never loads a module of soundmates.world (the local server is just another Spotify API)."""
    import os
    import subprocess
    import sys

    spotify_server()  # in this process: the subprocess only gets its URL and credentials
    ((i, name),) = _unique_catalog_names(1)
    z = _name_only_export(tmp_path / "e.zip", [name])
    code = (
        "import json, sys\n"
        "from soundmates.export.importer import import_export\n"
        f"profile, summary = import_export({str(z)!r}, user_id='me')\n"
        "print(json.dumps({'artists': sorted(profile.artists), 'sources': summary.artist_id_sources,\n"
        "    'world': sorted(m for m in sys.modules if m.startswith('soundmates.world'))}))\n"
    )
    env = dict(os.environ, SOUNDMATES_DATA_DIR=str(tmp_path / "data"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["artists"] == [artist_id(i)] and got["sources"] == {"search": 1}
    assert got["world"] == []


def test_world_and_export_read_one_shipped_artist_genre_table(tmp_path):
    """The artist->genre table is soundmates.catalog_data's: the world's catalog re-exports it, and an
    import's genre resolver, given no table, answers a catalog artist's genres from it."""
    from soundmates import catalog_data
    from soundmates.world import catalog

    assert catalog.artist_genre_table is catalog_data.artist_genre_table
    assert catalog.artists is catalog_data.artists
    table = catalog_data.artist_genre_table()
    counts: dict[str, int] = {}
    for key in table:
        counts[normalize_artist_name(key)] = counts.get(normalize_artist_name(key), 0) + 1
    name = next(n for n, gs in table.items() if len(gs) >= 2 and n.isascii() and counts[normalize_artist_name(n)] == 1)
    resolver = GenreResolver(tmp_path / "genres.sqlite")  # no catalog given: the shipped one
    try:
        res = resolver.resolve(name.title())
    finally:
        resolver.close()
    assert res.source == "catalog" and res.genres == table[name]
