"""The local server's playlist writes (world/playlists_write.py) on the wire: scopes, the 100-item cap, order,
snapshot ids, Spotify's error bodies, and the created playlist in /me/playlists and /playlists/{id}/items."""

from __future__ import annotations

import requests

from soundmates.world import oauth
from soundmates.world.generator import World
from tests.helpers.oauth import _login

WRITE = "playlist-read-private playlist-modify-private"


def _post(srv, path: str, token: str, body=None, **params) -> requests.Response:
    return requests.post(srv.api_url + path, json=body, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def _get(srv, path: str, token: str, **params) -> requests.Response:
    return requests.get(srv.api_url + path, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def _track_ids(srv, n: int) -> list[str]:
    """``n`` distinct catalogue track ids, from the world's own playlists."""
    world = World(srv.world.dir)
    out: list[str] = []
    from soundmates.world.generator import ROW_TRACK, track_by_n

    for i in range(world.n_users):
        for pl in world.playlists(i):
            for kind, value in zip(pl.kinds.tolist(), pl.values.tolist()):
                tid = track_by_n(value).id if kind == ROW_TRACK else None
                if tid and tid not in out:
                    out.append(tid)
                    if len(out) == n:
                        return out
    raise AssertionError("the world has too few tracks")


def _user(srv, scope: str = WRITE) -> tuple[str, str]:
    uid = oauth.allowlist(srv)[0]
    return uid, _login(srv, uid, scope)["access_token"]


def test_create_and_fill_a_private_playlist_in_order(spotify_server, check):
    srv = spotify_server(mode="development")
    uid, token = _user(srv)
    made = _post(srv, "me/playlists", token, {"name": "Our blend", "public": False, "description": "two of us"})
    assert made.status_code == 201, made.text
    pl = made.json()
    check("PlaylistObject", pl)
    assert pl["name"] == "Our blend" and pl["public"] is False and pl["owner"]["id"] == uid and pl["items"]["total"] == 0
    ids = _track_ids(srv, 150)
    snaps = {pl["snapshot_id"]}
    for chunk in (ids[:100], ids[100:]):
        r = _post(srv, f"playlists/{pl['id']}/items", token, {"uris": [f"spotify:track:{t}" for t in chunk]})
        assert r.status_code == 201, r.text
        assert set(r.json()) == {"snapshot_id"}
        snaps.add(r.json()["snapshot_id"])
    assert len(snaps) == 3  # a new snapshot per change
    # listed first among the account's playlists, private, with its 150 items
    mine = _get(srv, "me/playlists", token).json()
    check("PagingPlaylistObject", mine)
    first = mine["items"][0]
    assert first["id"] == pl["id"] and first["public"] is False and first["items"]["total"] == 150
    got: list[str] = []
    url = srv.api_url + f"playlists/{pl['id']}/items?limit=50"
    while url:
        page = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
        check("PagingPlaylistTrackObject", page)
        got += [row["item"]["id"] for row in page["items"]]
        url = page["next"]
    assert got == ids
    # inserting at a position
    r = _post(srv, f"playlists/{pl['id']}/items", token, {"uris": [f"spotify:track:{ids[5]}"], "position": 0})
    assert r.status_code == 201
    assert _get(srv, f"playlists/{pl['id']}/items", token, limit=2).json()["items"][0]["item"]["id"] == ids[5]


def test_scopes_are_checked(spotify_server):
    srv = spotify_server(mode="development")
    _, read_only = _user(srv, "playlist-read-private")
    r = _post(srv, "me/playlists", read_only, {"name": "x", "public": False})
    assert r.status_code == 403 and r.json() == {"error": {"status": 403, "message": "Insufficient client scope"}}
    _, private_only = _user(srv, WRITE)
    r = _post(srv, "me/playlists", private_only, {"name": "x"})  # public by default: needs playlist-modify-public
    assert r.status_code == 403 and r.json()["error"]["message"] == "Insufficient client scope"
    app_token = requests.post(srv.token_url, data={"grant_type": "client_credentials"}, auth=("a", "b"), timeout=10).json()
    r = _post(srv, "me/playlists", app_token["access_token"], {"name": "x", "public": False})
    assert r.status_code == 401 and r.json()["error"]["status"] == 401
    r = requests.post(srv.api_url + "me/playlists", json={"name": "x"}, timeout=10)
    assert r.status_code == 401 and r.json() == {"error": {"status": 401, "message": "No token provided"}}


def test_bad_requests_answer_the_spec_error_bodies(spotify_server):
    srv = spotify_server(mode="development")
    uid, token = _user(srv)
    assert _post(srv, "me/playlists", token, {"public": False}).json() == {
        "error": {"status": 400, "message": "Missing required field: name"}
    }
    bad_json = requests.post(
        srv.api_url + "me/playlists", data=b"{nope", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert bad_json.status_code == 400 and bad_json.json()["error"]["message"] == "Error parsing JSON."
    pid = _post(srv, "me/playlists", token, {"name": "x", "public": False}).json()["id"]
    ids = _track_ids(srv, 101)
    r = _post(srv, f"playlists/{pid}/items", token, {"uris": [f"spotify:track:{t}" for t in ids]})
    assert r.status_code == 400 and r.json() == {
        "error": {"status": 400, "message": "You can add a maximum of 100 tracks per request."}
    }
    r = _post(srv, f"playlists/{pid}/items", token, {"uris": ["spotify:track:nope"]})
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("Invalid track uri")
    assert _post(srv, f"playlists/{pid}/items", token, {}).json()["error"]["message"] == "No uris provided"
    r = _post(srv, f"playlists/{pid}/items", token, {"uris": [f"spotify:track:{ids[0]}"], "position": 5})
    assert r.status_code == 400 and r.json()["error"]["message"] == "Index out of bounds"
    assert _get(srv, f"playlists/{pid}/items", token).json()["total"] == 0  # nothing half-added
    # someone else's playlist: neither writable nor (development mode) readable
    other = oauth.allowlist(srv)[1]
    other_token = _login(srv, other, WRITE)["access_token"]
    r = _post(srv, f"playlists/{pid}/items", other_token, {"uris": [f"spotify:track:{ids[0]}"]})
    assert r.status_code == 403 and r.json()["error"]["message"] == "You cannot add tracks to a playlist you don't own."
    assert _get(srv, f"playlists/{pid}/items", other_token).status_code == 403
    # a verb the path does not take
    r = requests.put(srv.api_url + f"playlists/{pid}/items", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code in (405, 501)
