"""The local server's OAuth side (world/oauth.py): /authorize, the PKCE code and refresh grants, /v1/me….

Driven with plain HTTP (no spotipy), so each Spotify rule is checked on the wire.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
import requests
import yaml

from soundmates.world import oauth
from tests.fixtures.spotify import world_user_ids
from tests.helpers.oauth import REDIRECT, SCOPES, _authorize, _code, _exchange, _login, _token


def _get(srv, path: str, token: str, **params) -> requests.Response:
    return requests.get(srv.api_url + path, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=10)


@pytest.fixture
def dev(spotify_server):
    return spotify_server(mode="development")


def test_login_page_lists_the_allowlisted_users_and_redirects_with_code_and_state(dev):
    page = _authorize(dev, login_as=None)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    allowed = oauth.allowlist(dev)
    assert len(allowed) == oauth.DEV_MODE_MAX_USERS
    for uid in allowed:
        assert f"data-user-id='{uid}'" in page.text
    assert "user-top-read" in page.text  # the scopes asked for are shown
    resp = _authorize(dev, login_as=allowed[0])
    assert resp.headers["Location"].startswith(REDIRECT + "?code=")
    token = _exchange(dev, _code(resp)).json()
    assert set(token) >= {"access_token", "refresh_token", "expires_in", "scope", "token_type"}
    assert set(token["scope"].split()) == set(SCOPES.split())


@pytest.mark.parametrize("redirect", ["http://localhost:8080/", "http://example.com:8080/", "ftp://127.0.0.1:1/", "nonsense"])
def test_bad_redirect_uris_get_spotifys_invalid_client_text(dev, redirect):
    resp = _authorize(dev, login_as=oauth.allowlist(dev)[0], redirect=redirect)
    assert resp.status_code == 400
    assert "INVALID_CLIENT: Invalid redirect URI" in resp.text
    assert "Location" not in resp.headers  # never redirect to an unchecked URI


def test_pkce_verification_and_single_use_codes(dev):
    user = oauth.allowlist(dev)[0]
    wrong = _exchange(dev, _code(_authorize(dev, login_as=user)), verifier="w" * 50)
    assert wrong.status_code == 400 and wrong.json() == {
        "error": "invalid_grant",
        "error_description": "code_verifier was incorrect",
    }

    missing = _token(
        dev, grant_type="authorization_code", code=_code(_authorize(dev, login_as=user)), redirect_uri=REDIRECT, client_id="cid"
    )
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    assert "code_verifier" in missing.json()["error_description"]

    code = _code(_authorize(dev, login_as=user))
    assert _exchange(dev, code).status_code == 200
    again = _exchange(dev, code)  # codes are single-use
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"

    other_uri = _exchange(dev, _code(_authorize(dev, login_as=user)), redirect="http://127.0.0.1:10/cb")
    assert other_uri.status_code == 400 and other_uri.json()["error"] == "invalid_grant"

    no_pkce = _exchange(dev, _code(_authorize(dev, login_as=user, verifier=None)))  # classic flow needs the secret
    assert no_pkce.status_code == 400 and no_pkce.json()["error"] == "invalid_client"

    plain = _authorize(dev, login_as=user, code_challenge_method="plain")
    assert plain.status_code == 302 and "error=invalid_request" in plain.headers["Location"]


def test_codes_are_short_lived(dev):
    oauth.configure(dev, code_ttl_s=-1)
    resp = _exchange(dev, _code(_authorize(dev, login_as=oauth.allowlist(dev)[0])))
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"


def test_refresh_tokens_rotate_and_the_old_one_is_rejected(dev):
    first = _login(dev, oauth.allowlist(dev)[0])
    second = _token(dev, grant_type="refresh_token", refresh_token=first["refresh_token"], client_id="cid")
    assert second.status_code == 200
    new = second.json()
    assert new["refresh_token"] != first["refresh_token"] and new["access_token"] != first["access_token"]
    assert _get(dev, "me", new["access_token"]).status_code == 200
    reused = _token(dev, grant_type="refresh_token", refresh_token=first["refresh_token"], client_id="cid")
    assert reused.status_code == 400 and reused.json() == {"error": "invalid_grant", "error_description": "Invalid refresh token"}
    other_client = _token(dev, grant_type="refresh_token", refresh_token=new["refresh_token"], client_id="other")
    assert other_client.status_code == 400 and other_client.json()["error"] == "invalid_client"


def test_development_mode_refuses_users_off_the_allowlist(dev, small_world):
    allowed = set(oauth.allowlist(dev))
    outsider = next(u for u in world_user_ids(small_world) if u not in allowed)
    resp = _authorize(dev, login_as=outsider)
    assert resp.status_code == 403 and "User not registered in the Developer Dashboard" in resp.text
    with pytest.raises(ValueError, match="at most 5"):
        oauth.configure(dev, allowlist=world_user_ids(small_world)[:6])
    oauth.configure(dev, allowlist=[outsider])
    assert _authorize(dev, login_as=outsider).status_code == 302


def test_full_mode_lets_anyone_log_in(spotify_server, small_world):
    full = spotify_server(mode="full")
    last = world_user_ids(small_world)[-1]
    assert _authorize(full, login_as=last).status_code == 302


def test_me_endpoints_need_a_user_token_and_the_right_scope(dev):
    user = oauth.allowlist(dev)[0]
    app_token = requests.post(
        dev.token_url, data={"grant_type": "client_credentials", "client_id": "a", "client_secret": "b"}, timeout=10
    ).json()["access_token"]
    resp = _get(dev, "me", app_token)
    assert resp.status_code == 401 and resp.json()["error"]["message"] == "Valid user authentication required"

    tok = _login(dev, user, scope="playlist-read-private")["access_token"]
    me = _get(dev, "me", tok).json()
    assert me["id"] == user and me["type"] == "user"
    top = _get(dev, "me/top/tracks", tok)
    assert top.status_code == 403 and top.json()["error"]["message"] == "Insufficient client scope"
    assert _get(dev, "me/following", tok, type="artist").status_code == 403


def test_expired_access_tokens_answer_401(dev):
    oauth.configure(dev, access_ttl_s=-10)
    tok = _login(dev, oauth.allowlist(dev)[0])["access_token"]
    resp = _get(dev, "me", tok)
    assert resp.status_code == 401 and resp.json()["error"]["message"] == "The access token expired"


def test_development_mode_items_only_of_owned_or_collaborative_playlists(dev):
    user = oauth.allowlist(dev)[0]
    tok = _login(dev, user)["access_token"]
    listed = _get(dev, "me/playlists", tok, limit=50).json()
    owned = [p for p in listed["items"] if p["owner"]["id"] == user]
    collab = [p for p in listed["items"] if p["collaborative"]]
    followed = [p for p in listed["items"] if p["owner"]["id"] != user and not p["collaborative"]]
    assert owned and len(collab) == 1 and len(followed) == 1
    assert listed["total"] == len(listed["items"])
    for p in owned + collab:
        assert _get(dev, f"playlists/{p['id']}/items", tok).status_code == 200, p["name"]
    refused = _get(dev, f"playlists/{followed[0]['id']}/items", tok)
    assert refused.status_code == 403 and refused.json()["error"]["message"] == "Forbidden"
    # An app token keeps the server's existing development-mode behaviour for that playlist.
    app_token = requests.post(
        dev.token_url, data={"grant_type": "client_credentials", "client_id": "a", "client_secret": "b"}, timeout=10
    ).json()["access_token"]
    assert _get(dev, f"playlists/{followed[0]['id']}/items", app_token).status_code == 200


def test_full_mode_user_token_reads_any_playlist(spotify_server):
    full = spotify_server(mode="full")
    user = oauth.default_allowlist(full)[0]
    tok = _login(full, user)["access_token"]
    listed = _get(full, "me/playlists", tok, limit=50).json()["items"]
    followed = [p for p in listed if p["owner"]["id"] != user and not p["collaborative"]]
    assert _get(full, f"playlists/{followed[0]['id']}/items", tok).status_code == 200


def test_top_lists_follow_the_users_playlists_and_following_pages_by_cursor(dev):
    from soundmates.world.generator import track_by_id

    user = oauth.allowlist(dev)[0]
    tok = _login(dev, user)["access_token"]
    top = _get(dev, "me/top/tracks", tok, limit=50).json()
    assert 0 < top["total"] <= oauth.TOP_LIMIT and len(top["items"]) == top["total"]
    # The most frequent track of the user's playlists comes first.
    rows: dict[str, int] = {}
    for p in _get(dev, "me/playlists", tok, limit=50).json()["items"]:
        if p["owner"]["id"] != user:
            continue
        offset = 0
        while True:
            page = _get(dev, f"playlists/{p['id']}/items", tok, limit=50, offset=offset).json()
            for row in page["items"]:
                item = row.get("item")
                if item and item.get("type") == "track" and item.get("id"):
                    rows[item["id"]] = rows.get(item["id"], 0) + 1
            if not page["next"]:
                break
            offset += 50
    counts = [rows[t["id"]] for t in top["items"]]
    assert counts == sorted(counts, reverse=True) and counts[0] == max(rows.values())
    assert all(track_by_id(t["id"]) is not None for t in top["items"])

    artists = _get(dev, "me/top/artists", tok, limit=10).json()
    assert artists["total"] > 0 and len(artists["items"]) == min(10, artists["total"])

    seen, after = [], None
    for _ in range(20):
        page = _get(dev, "me/following", tok, type="artist", limit=7, **({"after": after} if after else {})).json()["artists"]
        seen += [a["id"] for a in page["items"]]
        if not page["next"]:
            break
        after = page["cursors"]["after"]
    assert len(seen) == len(set(seen)) == page["total"] > 7
    bad = _get(dev, "me/following", tok, type="album")
    assert bad.status_code == 400


def test_me_responses_follow_the_openapi_schemas(dev):
    from jsonschema import FormatChecker
    from openapi_schema_validator import OAS30Validator

    spec = Path(__file__).resolve().parent / "data" / "openapi.yml"
    comps = yaml.load(spec.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["components"]

    def check(name, instance):
        v = OAS30Validator({"$ref": f"#/components/schemas/{name}", "components": comps}, format_checker=FormatChecker())
        errors = list(v.iter_errors(instance))
        assert not errors, f"{name}: {[e.message for e in errors[:3]]}"

    tok = _login(dev, oauth.allowlist(dev)[0])["access_token"]
    check("PrivateUserObject", _get(dev, "me", tok).json())
    check("PagingPlaylistObject", _get(dev, "me/playlists", tok).json())
    check("PagingTrackObject", _get(dev, "me/top/tracks", tok).json())
    check("PagingArtistObject", _get(dev, "me/top/artists", tok).json())
    check("PagingSavedTrackObject", _get(dev, "me/tracks", tok).json())
    check("CursorPagingSimplifiedArtistObject", _get(dev, "me/following", tok, type="artist").json()["artists"])


def test_unknown_me_path_is_404_and_odd_user_ids_log_in(dev, small_world):
    ids = world_user_ids(small_world)
    odd = [u for u in ids[:9] if not u.isalnum()][:2]
    oauth.configure(dev, allowlist=odd)
    for uid in odd:
        tok = _login(dev, uid)["access_token"]
        assert _get(dev, "me", tok).json()["id"] == uid
    assert _get(dev, "me/nothing", tok).status_code == 404
    assert quote(odd[0], safe="") in _authorize(dev, login_as=None).text.replace("&amp;", "&")
