"""The local Spotify-compatible server, over real HTTP with requests."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests

from soundmates.world.generator import SHOWCASE, World, describe_user
from soundmates.world.server import FaultConfig, SpotifyServer
from tests.fixtures.spotify import world_user_ids


def token(server) -> str:
    r = requests.post(server.token_url, data={"grant_type": "client_credentials"}, auth=("test-id", "test-secret"))
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def session(server) -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token(server)}"
    return s


def user_url(server, uid: str, suffix: str = "") -> str:
    return f"{server.api_url}users/{quote(uid, safe='')}{suffix}"


def walk(s: requests.Session, url: str) -> list[dict]:
    """Follow ``next`` links; check each page's paging fields on the way."""
    items, expected_offset, total = [], None, None
    while url:
        r = s.get(url)
        assert r.status_code == 200, r.text
        page = r.json()
        assert set(page) >= {"href", "items", "limit", "next", "offset", "previous", "total"}
        if expected_offset is not None:
            assert page["offset"] == expected_offset
            assert page["total"] == total
        total = page["total"]
        assert len(page["items"]) == max(0, min(page["limit"], total - page["offset"]))
        assert page["href"].startswith("http://127.0.0.1:")
        if page["offset"] > 0:
            prev = parse_qs(urlsplit(page["previous"]).query)
            assert int(prev["offset"][0]) == max(0, page["offset"] - page["limit"])
        else:
            assert page["previous"] is None
        items.extend(page["items"])
        expected_offset = page["offset"] + page["limit"]
        url = page["next"]
    assert len(items) == total
    return items


# --- token and auth ------------------------------------------------------------------------------
def test_token_endpoint_accepts_basic_auth_and_form_fields(spotify_server):
    server = spotify_server()
    r = requests.post(server.token_url, data={"grant_type": "client_credentials"}, auth=("any", "pair"))
    body = r.json()
    assert r.status_code == 200 and body["token_type"] == "Bearer" and body["expires_in"] == 3600
    r = requests.post(server.token_url, data={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"})
    assert r.status_code == 200 and r.json()["access_token"]


@pytest.mark.parametrize(
    "data, auth, error",
    [
        ({"grant_type": "client_credentials"}, None, "invalid_client"),
        ({"grant_type": "client_credentials", "client_id": "x"}, None, "invalid_client"),
        ({"grant_type": "client_credentials"}, ("", "secret"), "invalid_client"),
        ({}, ("id", "secret"), "unsupported_grant_type"),
        ({"grant_type": "password"}, ("id", "secret"), "unsupported_grant_type"),
    ],
)
def test_token_endpoint_rejects_bad_clients(spotify_server, data, auth, error):
    server = spotify_server()
    r = requests.post(server.token_url, data=data, auth=auth)
    assert r.status_code == 400
    assert r.json()["error"] == error and r.json()["error_description"]


def test_garbage_basic_header_is_invalid_client(spotify_server):
    server = spotify_server()
    r = requests.post(
        server.token_url, data={"grant_type": "client_credentials"}, headers={"Authorization": "Basic !!!not-base64"}
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_client"


def test_api_needs_a_valid_token(spotify_server, small_world):
    server = spotify_server()
    url = user_url(server, world_user_ids(small_world)[0])
    r = requests.get(url)
    assert r.status_code == 401 and r.json() == {"error": {"status": 401, "message": "No token provided"}}
    r = requests.get(url, headers={"Authorization": "Bearer nonsense"})
    assert r.status_code == 401 and r.json() == {"error": {"status": 401, "message": "Invalid access token"}}
    tok = token(server)  # one token: each call gives a new one, and mixing two rebuilt the first intact 1 time in 17
    forged = tok[:-1] + ("0" if tok[-1] != "0" else "1")
    assert requests.get(url, headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    assert requests.get(url, headers={"Authorization": f"Bearer {tok}"}).status_code == 200


def test_token_survives_a_server_restart(spotify_server):
    first = spotify_server()
    tok = token(first)
    first.stop()
    second = spotify_server()
    r = requests.get(
        f"{second.api_url}users/{quote(second.world.user_ids[0], safe='')}", headers={"Authorization": f"Bearer {tok}"}
    )
    assert r.status_code == 200


# --- users and playlists -------------------------------------------------------------------------
def test_every_user_id_form_resolves_when_percent_encoded(spotify_server, small_world):
    server = spotify_server()
    s = session(server)
    for uid in world_user_ids(small_world):
        r = s.get(user_url(server, uid))
        assert r.status_code == 200, (uid, r.text)
        body = r.json()
        assert body["id"] == uid and body["type"] == "user" and body["uri"] == f"spotify:user:{uid}"
    # '+' and '.' may also arrive unencoded.
    plus = next(u for u in world_user_ids(small_world) if "+" in u)
    assert s.get(f"{server.api_url}users/{plus}").json()["id"] == plus


def test_unknown_things_are_404_with_spotify_error_bodies(spotify_server):
    server = spotify_server()
    s = session(server)
    r = s.get(user_url(server, "nobody-by-this-name"))
    assert r.status_code == 404 and r.json()["error"]["status"] == 404 and r.json()["error"]["message"]
    assert s.get(user_url(server, "nobody", "/playlists")).status_code == 404
    assert s.get(f"{server.api_url}playlists/0123456789abcdefghijkl").status_code == 404
    assert s.get(f"{server.api_url}playlists/0123456789abcdefghijkl/items").status_code == 404
    assert s.get(f"{server.api_url}artists/0123456789abcdefghijkl").status_code == 404
    assert s.get(f"{server.api_url}tracks/0123456789abcdefghijkl").status_code == 404
    assert s.get(f"{server.api_url}artists/short").status_code == 400
    assert s.get(f"{server.api_url}no-such-endpoint").status_code == 404


def test_served_playlists_match_describe_user(spotify_server, small_world):
    server = spotify_server()
    s = session(server)
    world = World(small_world)
    uid = world.user_ids[SHOWCASE["episodes_local_null"]]
    expect = describe_user(world, uid)
    playlists = walk(s, user_url(server, uid, "/playlists?limit=50"))
    assert len(playlists) == expect["playlists"]
    counts = {"tracks": 0, "episodes": 0, "local": 0, "null": 0}
    for pl in playlists:
        assert pl["owner"]["id"] == uid
        rows = walk(s, pl["items"]["href"] + "?limit=50")
        assert len(rows) == pl["items"]["total"] == pl["tracks"]["total"]
        for row in rows:
            item = row["item"]
            assert row["track"] == item  # full mode emits the deprecated key too
            if item is None:
                counts["null"] += 1
            elif row["is_local"]:
                assert item["id"] is None and item["uri"].startswith("spotify:local:")
                counts["local"] += 1
            elif item["type"] == "episode":
                counts["episodes"] += 1
            else:
                assert item["type"] == "track" and len(item["id"]) == 22
                counts["tracks"] += 1
    assert counts == {k: expect[k] for k in counts}


def test_paging_across_limits_is_consistent(spotify_server, small_world):
    server = spotify_server()
    s = session(server)
    uid = world_user_ids(small_world)[SHOWCASE["many_playlists"]]
    by_limit = {}
    for limit in (1, 7, 20, 50):
        pls = walk(s, user_url(server, uid, f"/playlists?limit={limit}"))
        by_limit[limit] = [p["id"] for p in pls]
    assert by_limit[1] == by_limit[7] == by_limit[20] == by_limit[50]
    assert len(set(by_limit[50])) == len(by_limit[50]) > 50
    default = s.get(user_url(server, uid, "/playlists")).json()
    assert default["limit"] == 20 and default["offset"] == 0
    # A huge playlist: /items (≤ 50) and the old /tracks (≤ 100) give the same rows.
    huge_owner = world_user_ids(small_world)[SHOWCASE["huge_playlist"]]
    huge = max(walk(s, user_url(server, huge_owner, "/playlists?limit=50")), key=lambda p: p["items"]["total"])
    assert huge["items"]["total"] >= 2000
    base = f"{server.api_url}playlists/{huge['id']}"
    tail_items = s.get(f"{base}/items?offset={huge['items']['total'] - 30}&limit=50").json()
    tail_tracks = s.get(f"{base}/tracks?offset={huge['items']['total'] - 30}&limit=100").json()
    assert len(tail_items["items"]) == len(tail_tracks["items"]) == 30
    assert tail_items["next"] is None and tail_items["previous"] is not None
    assert [r["added_at"] for r in tail_items["items"]] == [r["added_at"] for r in tail_tracks["items"]]
    past_end = s.get(f"{base}/items?offset=999999&limit=5").json()
    assert past_end["items"] == [] and past_end["next"] is None and past_end["total"] == huge["items"]["total"]


@pytest.mark.parametrize(
    "suffix",
    [
        "/playlists?limit=0",
        "/playlists?limit=51",
        "/playlists?limit=abc",
        "/playlists?offset=-1",
        "/playlists?offset=100001",
        "/playlists?limit=",
    ],
)
def test_bad_limit_or_offset_is_400(spotify_server, small_world, suffix):
    server = spotify_server()
    r = session(server).get(user_url(server, world_user_ids(small_world)[0], suffix))
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["status"] == 400 and ("limit" in err["message"] or "offset" in err["message"])


def test_item_limits_per_endpoint(spotify_server, small_world):
    server = spotify_server()
    s = session(server)
    uid = world_user_ids(small_world)[SHOWCASE["huge_playlist"]]
    pid = s.get(user_url(server, uid, "/playlists")).json()["items"][0]["id"]
    assert s.get(f"{server.api_url}playlists/{pid}/items?limit=51").status_code == 400
    assert s.get(f"{server.api_url}playlists/{pid}/items?limit=50").status_code == 200
    assert s.get(f"{server.api_url}playlists/{pid}/tracks?limit=100").status_code == 200
    assert s.get(f"{server.api_url}playlists/{pid}/tracks?limit=101").status_code == 400
    full = s.get(f"{server.api_url}playlists/{pid}").json()
    assert full["id"] == pid and full["tracks"]["limit"] == 100 and full["items"]["total"] == full["tracks"]["total"]


# --- artists and tracks --------------------------------------------------------------------------
def _some_track_and_artist_ids(s, server, uid) -> tuple[list[str], list[str]]:
    pid = s.get(user_url(server, uid, "/playlists")).json()["items"][0]["id"]
    rows = s.get(f"{server.api_url}playlists/{pid}/items?limit=50").json()["items"]
    tracks = [r["item"] for r in rows if r["item"] and r["item"]["type"] == "track" and r["item"]["id"]]
    return [t["id"] for t in tracks], list(dict.fromkeys(a["id"] for t in tracks for a in t["artists"]))


def test_batch_and_single_artists_and_tracks(spotify_server, small_world):
    server = spotify_server()
    s = session(server)
    track_ids, artist_ids = _some_track_and_artist_ids(s, server, world_user_ids(small_world)[SHOWCASE["huge_playlist"]])
    assert len(artist_ids) >= 10
    batch = s.get(f"{server.api_url}artists", params={"ids": ",".join(artist_ids[:50])}).json()["artists"]
    assert [a["id"] for a in batch] == artist_ids[:50]
    assert all(isinstance(a["genres"], list) and isinstance(a["popularity"], int) for a in batch)
    single = s.get(f"{server.api_url}artists/{artist_ids[0]}").json()
    assert single == batch[0]
    tb = s.get(f"{server.api_url}tracks", params={"ids": ",".join(track_ids[:20])}).json()["tracks"]
    assert [t["id"] for t in tb] == track_ids[:20]
    assert s.get(f"{server.api_url}tracks/{track_ids[0]}").json() == tb[0]
    # An unknown but well-formed id gives null in a batch, like the real API.
    mixed = s.get(f"{server.api_url}artists", params={"ids": f"{artist_ids[0]},0123456789abcdefghijkl"}).json()
    assert mixed["artists"][1] is None


@pytest.mark.parametrize("endpoint", ["artists", "tracks"])
def test_batch_id_errors(spotify_server, small_world, endpoint):
    server = spotify_server()
    s = session(server)
    track_ids, artist_ids = _some_track_and_artist_ids(s, server, world_user_ids(small_world)[SHOWCASE["huge_playlist"]])
    ids = artist_ids if endpoint == "artists" else track_ids
    many = (ids * 60)[:51]
    r = s.get(f"{server.api_url}{endpoint}", params={"ids": ",".join(many)})
    assert r.status_code == 400 and r.json()["error"]["status"] == 400
    assert s.get(f"{server.api_url}{endpoint}", params={"ids": "bad id"}).status_code == 400
    assert s.get(f"{server.api_url}{endpoint}").status_code == 400
    assert s.get(f"{server.api_url}{endpoint}", params={"ids": ""}).status_code == 400


def test_audio_features_is_403_like_the_real_api(spotify_server):
    server = spotify_server()
    s = session(server)
    for path in ("audio-features?ids=0123456789abcdefghijkl", "audio-features/0123456789abcdefghijkl"):
        r = s.get(server.api_url + path)
        assert r.status_code == 403 and r.json() == {"error": {"status": 403}}


# --- development mode ----------------------------------------------------------------------------
def test_development_mode_restrictions(spotify_server, small_world):
    full = spotify_server()
    sf = session(full)
    uid = world_user_ids(small_world)[SHOWCASE["huge_playlist"]]
    pid = sf.get(user_url(full, uid, "/playlists")).json()["items"][0]["id"]
    track_ids, artist_ids = _some_track_and_artist_ids(sf, full, uid)

    dev = spotify_server(mode="development")
    s = session(dev)
    forbidden = {"error": {"status": 403, "message": "Forbidden"}}
    for url in (
        user_url(dev, uid),
        user_url(dev, uid, "/playlists"),
        f"{dev.api_url}playlists/{pid}/tracks",
        f"{dev.api_url}artists?ids={artist_ids[0]}",
        f"{dev.api_url}tracks?ids={track_ids[0]}",
    ):
        r = s.get(url)
        assert r.status_code == 403 and r.json() == forbidden, url
    # What remains: single artist/track, playlist and /items, without the removed fields.
    rows = s.get(f"{dev.api_url}playlists/{pid}/items?limit=50").json()["items"]
    assert rows and all("track" not in r and "item" in r for r in rows)
    track = next(r["item"] for r in rows if r["item"] and r["item"]["type"] == "track")
    assert "popularity" not in track and "available_markets" not in track
    assert "release_date" in track["album"] and isinstance(track["explicit"], bool)
    pl = s.get(f"{dev.api_url}playlists/{pid}").json()
    assert "tracks" not in pl and pl["items"]["total"] > 0
    artists = [s.get(f"{dev.api_url}artists/{a}").json() for a in artist_ids[:40]]
    assert all("popularity" not in a and "followers" not in a for a in artists)
    missing = sum(1 for a in artists if "genres" not in a)
    empty = sum(1 for a in artists if a.get("genres") == [])
    assert missing > 0 and empty > 0  # genres often missing or empty
    assert s.get(f"{dev.api_url}tracks/{track_ids[0]}").status_code == 200


# --- hidden ground truth, stats, concurrency -----------------------------------------------------
def test_ground_truth_is_never_served(spotify_server, small_world):
    server = spotify_server()
    s = session(server)
    for path in ("truth/taste.npy", "../truth/taste.npy", "world.json", "users.txt", "v1/../truth/taste.npy"):
        assert s.get(f"{server.base_url}/{path}").status_code == 404
        assert s.get(f"{server.api_url}{path}").status_code in (400, 404)
    uid = world_user_ids(small_world)[SHOWCASE["episodes_local_null"]]
    text = s.get(user_url(server, uid)).text + s.get(user_url(server, uid, "/playlists?limit=50")).text
    for word in ("mainstream", "explicit_tolerance", "era_width", "taste", "communities"):
        assert word not in text


def test_stats_count_requests_per_endpoint(spotify_server, small_world):
    server = spotify_server()
    s = session(server)
    uid = world_user_ids(small_world)[0]
    s.get(user_url(server, uid))
    s.get(user_url(server, uid, "/playlists"))
    s.get(user_url(server, uid, "/playlists"))
    stats = server.stats()
    assert stats["requests"] == {"token": 1, "user": 1, "user_playlists": 2}
    assert stats["api_calls"] == 3 and stats["status"]["200"] == 4
    over_http = requests.get(f"{server.base_url}/_stats").json()
    assert over_http["requests"] == stats["requests"]
    server.reset_stats()
    assert server.stats()["total"] == 0
    s.get(user_url(server, uid))
    requests.delete(f"{server.base_url}/_stats")
    assert requests.get(f"{server.base_url}/_stats").json()["total"] == 0


def test_concurrent_clients(spotify_server, small_world):
    server = spotify_server()
    tok = token(server)
    ids = world_user_ids(small_world)
    errors: list[str] = []
    local = threading.local()

    def fetch(uid: str) -> int:
        if not hasattr(local, "s"):
            local.s = requests.Session()
            local.s.headers["Authorization"] = f"Bearer {tok}"
        r = local.s.get(user_url(server, uid, "/playlists?limit=50"))
        if r.status_code != 200:
            errors.append(r.text)
            return -1
        return r.json()["total"]

    with ThreadPoolExecutor(16) as pool:
        totals = list(pool.map(fetch, ids * 3))
    assert not errors
    assert totals[: len(ids)] == totals[len(ids) : 2 * len(ids)]
    assert server.stats()["requests"]["user_playlists"] == 3 * len(ids)


def test_server_rejects_bad_construction(small_world, tmp_path):
    with pytest.raises(ValueError, match="mode must be"):
        SpotifyServer(small_world, mode="sandbox")
    with pytest.raises(ValueError, match="rate_429"):
        FaultConfig(rate_429=1.5)
    with pytest.raises(ValueError, match="must not exceed 1"):
        FaultConfig(rate_429=0.6, rate_5xx=0.6)
    from soundmates.world.generator import WorldError

    with pytest.raises(WorldError):
        SpotifyServer(tmp_path)


def test_json_is_utf8_with_non_ascii_names(spotify_server, small_world):
    server = spotify_server()
    s = session(server)
    uid = next(u for u in world_user_ids(small_world) if not u.isascii())
    r = s.get(user_url(server, uid))
    assert r.headers["Content-Type"].startswith("application/json")
    assert json.loads(r.content.decode("utf-8"))["id"] == uid


# --- the CLI -------------------------------------------------------------------------------------
def test_cli_serve_until_sigterm(small_world):
    import re
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "soundmates.cli.main",
            "spotify",
            "serve",
            "--world",
            str(small_world),
            "--port",
            "0",
            "--mode",
            "development",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 60
        api = None
        while time.time() < deadline and api is None:
            m = re.search(r"at (http://127\.0\.0\.1:\d+/v1/)", proc.stderr.readline())
            api = m.group(1) if m else None
        assert api, "server did not announce its URL"
        tok = requests.post(api.replace("/v1/", "/api/token"), data={"grant_type": "client_credentials"}, auth=("a", "b")).json()[
            "access_token"
        ]
        uid = world_user_ids(small_world)[0]
        r = requests.get(f"{api}users/{quote(uid, safe='')}", headers={"Authorization": f"Bearer {tok}"})
        assert r.status_code == 403  # development mode, as asked
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--mode", "sandbox"], "--mode must be one of"),
        (["--fault-429", "1.5"], "rate_429"),
        (["--world", "/nonexistent/world"], "world.json is missing"),
    ],
)
def test_cli_serve_rejects_bad_options(small_world, args, message):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "soundmates.cli.main", "spotify", "serve", "--port", "0", "--world", str(small_world), *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and message in res.stderr


def test_cached_json_fragments_are_the_plain_encoding(small_world):
    """The renderer's fast paths (track JSON from cached fragments, msgspec) give exactly json.dumps' text."""
    from soundmates.world.generator import ROW_TRACK, track_by_n
    from soundmates.world.render import Renderer, dumps

    world = World(small_world)
    for mode in ("full", "development"):
        r = Renderer(world, "http://127.0.0.1:1/v1/", mode)
        checked = 0
        for i in range(world.n_users):
            for pl in world.playlists(i):
                for kind, n in zip(pl.kinds.tolist(), pl.values.tolist()):
                    if kind == ROW_TRACK and checked < 300:
                        obj = r.track(track_by_n(n))
                        assert r.track_json(n) == json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
                        checked += 1
        assert checked == 300
        odd = {"name": 'Sigur Rós "Ágætis" \\ \u2028 \x07 😀\n', "n": [1, -2, 10**15, None, True, False]}
        assert dumps(odd) == json.dumps(odd, ensure_ascii=False, separators=(",", ":"))
        assert json.loads(dumps([1.5, 0.1, 1e16])) == [1.5, 0.1, 1e16]  # floats: the same value (1e16 vs 1e+16)


# --- the fields filter ---------------------------------------------------------------------------
FILTERS = [
    "total,limit",  # the examples of openapi.yml
    "items(added_by.id,track(name,href,album(name,href)))",
    "items.track.album(!external_urls,images)",
    "next,items(added_at,item(!album,available_markets))",
    "href,items,items(is_local)",  # a whole field named again with a filter: the whole field
    "items(item(album(release_date,artists(id),images(url),nope),id))",  # an album's own filter, in its order
]


def _filtered_like_the_whole_page(s, server, pid: str, expression: str, **params) -> dict:
    """The filtered page, asserted equal to the unfiltered page projected by hand (key order is not compared)."""
    from soundmates.world.fields import parse_fields, project

    whole = s.get(f"{server.api_url}playlists/{pid}/items", params={"limit": 50, **params}).json()
    got = s.get(f"{server.api_url}playlists/{pid}/items", params={"limit": 50, "fields": expression, **params})
    assert got.status_code == 200, got.text
    expected = project(whole, parse_fields(expression))
    assert got.json() == expected, expression
    return got.json()


@pytest.mark.parametrize("mode", ["full", "development"])
def test_fields_filter_playlist_items_like_the_api(spotify_server, small_world, mode):
    from soundmates.spotify.parsing import ITEM_FIELDS

    full = spotify_server()
    uid = world_user_ids(small_world)[SHOWCASE["episodes_local_null"]]  # episodes, local files and null rows
    pids = [p["id"] for p in session(full).get(user_url(full, uid, "/playlists"), params={"limit": 50}).json()["items"]]
    server = spotify_server(mode=mode)
    s = session(server)
    sizes = []
    for pid in pids[:6]:
        for expression in [ITEM_FIELDS, *FILTERS]:
            _filtered_like_the_whole_page(s, server, pid, expression)
        page = _filtered_like_the_whole_page(s, server, pid, ITEM_FIELDS, offset=10)
        assert set(page) <= {"next", "items"}
        sizes.append(len(json.dumps(page)) / len(s.get(f"{server.api_url}playlists/{pid}/items?limit=50&offset=10").text))
    assert max(sizes) < 0.4  # what an ingest reads is a fraction of the page


def test_fields_filter_the_playlist_and_bad_filters_are_400(spotify_server, small_world):
    server = spotify_server()
    s = session(server)
    uid = world_user_ids(small_world)[SHOWCASE["huge_playlist"]]
    pid = s.get(user_url(server, uid, "/playlists")).json()["items"][0]["id"]
    pl = s.get(f"{server.api_url}playlists/{pid}", params={"fields": "name,items.total"}).json()
    assert set(pl) == {"name", "items"} and set(pl["items"]) == {"total"} and pl["items"]["total"] > 0
    for bad in ("items((", "items(track", "a,,b", "items.(x)", "9x"):
        r = s.get(f"{server.api_url}playlists/{pid}/items", params={"fields": bad})
        assert r.status_code == 400 and r.json() == {"error": {"status": 400, "message": "Invalid fields parameter"}}, bad
