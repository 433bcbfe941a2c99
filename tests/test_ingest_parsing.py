"""Parsing of recorded real Web API responses (shared/data/spotify-webapi-samples) and of the 2026 shapes."""

from __future__ import annotations

import copy
import json

import pytest

from soundmates.spotify.errors import MalformedResponse
from soundmates.spotify.parsing import artist_from, classify_row, next_offset, track_from
from soundmates.spotify.raw_store import ArtistCache


@pytest.fixture(scope="module")
def recorded_playlist(shared_dir):
    path = shared_dir / "data/spotify-webapi-samples/rspotify_get_playlist_37i9dQZF1DX1R3yDogYrbo_2018-11-04.json"
    return json.loads(path.read_text())


def test_recorded_rows_become_tracks_with_year_explicit_and_popularity(recorded_playlist):
    rows = recorded_playlist["tracks"]["items"]
    kinds = [classify_row(r)[0] for r in rows]
    assert kinds == ["track"] * len(rows) == ["track"] * recorded_playlist["tracks"]["total"]
    track, artists = track_from(classify_row(rows[0])[1])
    assert track.id == "4g9FZotDgtpioHkh3z92fp"
    assert track.name == "Alegria, Alegria - Ao Vivo"
    assert track.release_year == 2018 and track.explicit is False and track.popularity == 56
    assert track.duration_ms == 159700
    assert artists[0] == ("7HGNYPmbDrMkylWqeFCOIQ", "Caetano Veloso") and len(track.artist_ids) == 4
    # release_date of "year" precision parses too
    year_only = [r for r in rows if r["track"]["album"]["release_date_precision"] == "year"]
    assert year_only and all(
        track_from(r["track"])[0].release_year == int(r["track"]["album"]["release_date"]) for r in year_only
    )


def test_2026_shape_item_key_and_missing_popularity(recorded_playlist):
    row = copy.deepcopy(recorded_playlist["tracks"]["items"][1])
    row["item"] = row.pop("track")
    del row["item"]["popularity"]  # development mode removed it
    row["item"]["album"]["release_date"], row["item"]["album"]["release_date_precision"] = "1968-03", "month"
    kind, obj = classify_row(row)
    assert kind == "track"
    track, _ = track_from(obj)
    assert track.popularity is None and track.release_year == 1968


@pytest.mark.parametrize(
    ("row", "kind"),
    [
        (None, "null"),
        ({"added_at": "2020-01-01T00:00:00Z", "track": None}, "null"),
        ({"is_local": True, "track": {"id": None, "name": "my mp3", "type": "track", "is_local": True}}, "local"),
        ({"item": {"id": "ep1", "type": "episode", "name": "A podcast"}}, "episode"),
        ({"track": {"id": None, "type": "track", "name": "gone"}}, "null"),
        ("garbage", "null"),
    ],
)
def test_rows_that_are_not_music_tracks_are_classified(row, kind):
    assert classify_row(row)[0] == kind


def test_recorded_artists_keep_genres_and_popularity_and_missing_stays_none(shared_dir):
    raw = json.loads((shared_dir / "data/spotify-webapi-samples/webapijava_GetSeveralArtistsRequest.json").read_text())
    bowie = artist_from("0oSGxfWSnnOXhD2fKuz2Gy", raw["artists"][0], "fallback")
    assert bowie.name == "David Bowie" and bowie.genres == ["art rock", "glam rock", "permanent wave"] and bowie.popularity == 77
    stripped = {"id": "x", "name": "No Genres", "genres": []}
    assert artist_from("x", stripped, "f").genres == [] and artist_from("x", stripped, "f").popularity is None
    unknown = artist_from("y", None, "Name From Track")
    assert unknown.name == "Name From Track" and unknown.genres is None


def test_paging_offsets_come_from_next_and_a_loop_is_malformed():
    page = {"items": [{}] * 50, "next": "http://127.0.0.1:1/v1/users/u/playlists?offset=50&limit=50"}
    assert next_offset(page, 0, "playlists") == 50
    assert next_offset({"items": [], "next": None}, 50, "playlists") is None
    with pytest.raises(MalformedResponse, match="does not advance"):
        next_offset({"items": [{}], "next": "http://h/v1/x?offset=0&limit=50"}, 0, "items")


def test_artist_cache_persists_and_survives_a_torn_last_line(tmp_path):
    path = tmp_path / "artists.jsonl"
    cache = ArtistCache(path)
    cache.add({"a1": {"id": "a1", "name": "One", "genres": ["pop"]}, "a2": None})
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"id": "a3", "artist": {"id": "a3", "na')  # a crash mid-append
    reopened = ArtistCache(path)
    assert "a1" in reopened and "a2" in reopened and "a3" not in reopened
    assert reopened.get("a1")["name"] == "One" and reopened.get("a2") is None
    reopened.add({"a3": {"id": "a3", "name": "Three"}})
    again = ArtistCache(path)
    assert len(again) == 3 and again.get("a3")["name"] == "Three"
