"""The local server's JSON validates against Spotify's OpenAPI spec (tests/data/openapi.yml).

The spec is a copy of ``../shared/spotify-web-api/openapi.yml`` (MIT, see tests/data/openapi.LICENSE),
so this test never skips. Local-file rows (null ids) and null rows are what the real API sends but
the spec does not allow (its ids are non-nullable strings): they are checked by shape, not by schema.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
import requests

from soundmates.world.generator import SHOWCASE
from tests.fixtures.spotify import world_user_ids


def test_the_validator_catches_wrong_shapes(check):
    with pytest.raises(AssertionError, match="PublicUserObject"):
        check("PublicUserObject", {"id": 5, "type": "user"})
    with pytest.raises(AssertionError):
        check("PagingObject", {"href": "x", "items": []})  # limit, next, offset, ... missing
    with pytest.raises(AssertionError):
        check("TrackObject", {"type": "episode"})


def _sample(server, small_world, mode: str) -> dict[str, list]:
    """One pass over every endpoint; returns responses by schema name."""
    s = requests.Session()
    s.headers["Authorization"] = (
        "Bearer "
        + requests.post(server.token_url, data={"grant_type": "client_credentials"}, auth=("a", "b")).json()["access_token"]
    )
    api = server.api_url
    ids = world_user_ids(small_world)
    out: dict[str, list] = {
        k: []
        for k in (
            "PublicUserObject",
            "PagingPlaylistObject",
            "SimplifiedPlaylistObject",
            "PlaylistObject",
            "PagingPlaylistTrackObject",
            "PlaylistTrackObject",
            "TrackObject",
            "ArtistObject",
            "odd_rows",
        )
    }
    full = mode == "full"
    # In development mode the user endpoints are gone: reach playlists through full-mode ids.
    playlist_ids: list[str] = []
    showcase = [ids[SHOWCASE["episodes_local_null"]], ids[SHOWCASE["huge_playlist"]], ids[0]]
    if full:
        for uid in showcase:
            out["PublicUserObject"].append(s.get(f"{api}users/{quote(uid, safe='')}").json())
            page = s.get(f"{api}users/{quote(uid, safe='')}/playlists?limit=50").json()
            out["PagingPlaylistObject"].append(page)
            out["SimplifiedPlaylistObject"].extend(page["items"])
            playlist_ids.extend(p["id"] for p in page["items"][:3])
    else:
        playlist_ids = server.sample_playlist_ids
    track_ids, artist_ids = [], []

    def is_odd(row: dict) -> bool:
        return row["is_local"] or row["item"] is None

    for pid in playlist_ids:
        playlist = s.get(f"{api}playlists/{pid}").json()
        for key in ("items", "tracks"):
            if key in playlist:
                out["odd_rows"].extend(r for r in playlist[key]["items"] if is_odd(r))
                # A few embedded rows suffice (validation is slow); the /items pages cover more.
                playlist[key]["items"] = [r for r in playlist[key]["items"] if not is_odd(r)][:5]
        out["PlaylistObject"].append(playlist)
        page = s.get(f"{api}playlists/{pid}/items?limit=50").json()
        rows = page["items"]
        odd = [r for r in rows if is_odd(r)]
        out["odd_rows"].extend(odd)
        regular = [r for r in rows if r not in odd]
        out["PlaylistTrackObject"].extend(regular[:20])
        out["PagingPlaylistTrackObject"].append({**page, "items": regular[:3]})
        for r in rows:
            if r not in odd and r["item"]["type"] == "track":
                track_ids.append(r["item"]["id"])
                artist_ids.extend(a["id"] for a in r["item"]["artists"])
    track_ids = list(dict.fromkeys(track_ids))[:60]
    artist_ids = list(dict.fromkeys(artist_ids))[:60]
    if full:
        out["TrackObject"].extend(s.get(f"{api}tracks", params={"ids": ",".join(track_ids[:50])}).json()["tracks"])
        out["ArtistObject"].extend(s.get(f"{api}artists", params={"ids": ",".join(artist_ids[:50])}).json()["artists"])
    out["TrackObject"].extend(s.get(f"{api}tracks/{t}").json() for t in track_ids[:10])
    out["ArtistObject"].extend(s.get(f"{api}artists/{a}").json() for a in artist_ids[:30])
    return out


# Development mode refuses the user endpoints, so those schemas have nothing to check there.
_USER_SCHEMAS = {"PublicUserObject", "PagingPlaylistObject", "SimplifiedPlaylistObject"}


def _validate_all(check, sample, mode: str) -> None:
    for name, objs in sample.items():
        if name == "odd_rows":
            continue
        assert objs or (mode == "development" and name in _USER_SCHEMAS), f"no {name} sampled"
        for obj in objs:
            check(name, obj)
    assert sample["odd_rows"], "expected local-file and null rows in the sample"
    for row in sample["odd_rows"]:
        item = row["item"]
        assert item is None or (
            row["is_local"] and item["is_local"] and item["id"] is None and item["uri"].startswith("spotify:local:")
        )


def test_full_mode_responses_validate(spotify_server, small_world, check):
    server = spotify_server()
    sample = _sample(server, small_world, "full")
    _validate_all(check, sample, "full")
    kinds = {r["item"]["type"] for r in sample["PlaylistTrackObject"]}
    assert kinds == {"track", "episode"}  # both branches of the oneOf were exercised


def test_development_mode_responses_validate(spotify_server, small_world, check):
    full = spotify_server()
    full_sample = _sample(full, small_world, "full")
    dev = spotify_server(mode="development")
    dev.sample_playlist_ids = [p["id"] for p in full_sample["PlaylistObject"]]
    sample = _sample(dev, small_world, "development")
    _validate_all(check, sample, "development")
    assert all("track" not in r for r in sample["PlaylistTrackObject"])
