"""`soundmates blend` end to end on a world ingested from the local Spotify server: the JSON contract, the
consent and input rules, exports, and saving to a connected account (the playlist is then on the server)."""

from __future__ import annotations

import json

import pytest
import requests
from typer.testing import CliRunner

from soundmates.cli.main import app


def _run(*args: str):
    return CliRunner().invoke(app, ["blend", *args])


def _connect(user_id: str) -> None:
    """Connect with Spotify as ``user_id`` (PKCE against the local server); tokens stored under the data dir."""
    from soundmates.config import get_settings
    from soundmates.spotify.connect import SpotifyConnect

    flow = SpotifyConnect(get_settings(), redirect_uri="http://127.0.0.1:9/cb")
    url, _ = flow.start()
    resp = requests.get(url, params={"login_as": user_id}, allow_redirects=False, timeout=10)
    assert resp.status_code == 302, resp.text
    flow.finish_from_url(resp.headers["Location"])


def _server_items(api_url: str, token: str, playlist_id: str) -> list[str]:
    got, url = [], f"{api_url}playlists/{playlist_id}/items?limit=50"
    while url:
        page = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
        got += [row["item"]["id"] for row in page["items"]]
        url = page["next"]
    return got


def test_blend_json_contract_and_scores(dashboard_world):
    from soundmates.recommend import Recommender

    a, b, c = dashboard_world.stored_ids[:3]
    out = _run(a, b, c, "--size", "24", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert set(data) == {"members", "tracks", "compatibility", "embedder"}
    assert data["members"] == [a, b, c] and isinstance(data["embedder"], str) and data["embedder"]
    assert 0 < len(data["tracks"]) <= 24
    for t in data["tracks"]:
        assert set(t) == {"id", "name", "artists", "reason", "from"} and t["reason"] and set(t["from"]) <= {a, b, c}
    comp = data["compatibility"]
    assert [len(r) for r in comp] == [3, 3, 3] and all(comp[i][i] == 1.0 for i in range(3))
    # the same score recommend shows for the pair
    assert comp[0][1] == Recommender().match_detail(a, b).score


def test_blend_bad_input_is_one_line(dashboard_world):
    a, b = dashboard_world.stored_ids[:2]
    stranger = dashboard_world.unknown_ids[0]
    for args, kind, words in (
        ([a], "bad_blend", "2 to 10 people"),
        ([a] * 11, "bad_blend", "2 to 10 people"),
        ([a, a], "bad_blend", "given twice"),
        ([a, stranger], "not_consented", "has not added themselves"),
        ([a, "spotify:track:nope"], "invalid_reference", "not a Spotify profile reference"),
    ):
        out = _run(*args, "--json")
        assert out.exit_code == 1, out.output
        err = json.loads(out.stdout)
        assert err["kind"] == kind and words in err["error"], err
        plain = _run(*args)
        assert plain.exit_code == 1 and "Traceback" not in plain.output
        assert [line for line in plain.stderr.splitlines() if line.startswith("error: ")], plain.stderr
    removed = CliRunner().invoke(app, ["remove", b, "--json"])
    assert removed.exit_code == 0
    out = _run(a, b, "--json")
    assert out.exit_code == 1 and json.loads(out.stdout)["kind"] == "removed"


def test_blend_exports_to_files(dashboard_world, tmp_path):
    a, b = dashboard_world.stored_ids[:2]
    data = json.loads(_run(a, b, "--json").stdout)
    ids = [t["id"] for t in data["tracks"]]
    for fmt in ("json", "csv", "m3u"):
        path = tmp_path / f"blend.{fmt}"
        out = _run(a, b, "--format", fmt, "--output", str(path))
        assert out.exit_code == 0, out.output
        text = path.read_text(encoding="utf-8")
        if fmt == "json":
            assert [t["id"] for t in json.loads(text)["tracks"]] == ids
        elif fmt == "csv":
            assert [line.split(",")[1] for line in text.splitlines()[1:]] == ids
        else:
            assert [ln.rsplit("/", 1)[1] for ln in text.splitlines() if not ln.startswith("#")] == ids
    assert _run(a, b, "--format", "xml").exit_code == 1


def test_blend_saved_to_a_connected_account_is_there_in_order(dashboard_world):
    from soundmates.config import get_settings
    from soundmates.spotify.connect import SpotifyConnect

    a, b = dashboard_world.stored_ids[:2]
    out = _run(a, b, "--size", "30", "--json", "--save-to", a)
    assert out.exit_code == 1 and "not connected" in json.loads(out.stdout)["error"]
    _connect(a)
    out = _run(a, b, "--size", "30", "--json", "--save-to", a)
    assert out.exit_code == 0, out.output
    ids = [t["id"] for t in json.loads(out.stdout)["tracks"]]
    assert "saved" in out.stderr and f"{len(ids)} tracks" in out.stderr
    flow = SpotifyConnect(get_settings(), redirect_uri="http://127.0.0.1:9/cb")
    token = flow.tokens.load(a)["access_token"]
    api = get_settings().spotify_api_url
    mine = requests.get(api + "me/playlists", headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    saved = mine["items"][0]
    assert saved["name"].startswith("Soundmates blend") and saved["public"] is False
    assert _server_items(api, token, saved["id"]) == ids


def test_saving_without_the_write_scope_is_refused_clearly(dashboard_world):
    from soundmates.config import get_settings
    from soundmates.spotify.connect import SpotifyConnect

    a, b = dashboard_world.stored_ids[:2]
    _connect(a)
    flow = SpotifyConnect(get_settings(), redirect_uri="http://127.0.0.1:9/cb")
    info = flow.tokens.load(a)
    flow.tokens.save(a, {**info, "scope": "user-top-read playlist-read-private"})  # an account connected before
    out = _run(a, b, "--save-to", a)
    assert out.exit_code == 1
    assert "playlist-modify-private" in out.stderr and "connect with Spotify again" in out.stderr


@pytest.mark.parametrize("size", ["0", "201"])
def test_size_bounds(size, dashboard_world):
    a, b = dashboard_world.stored_ids[:2]
    assert _run(a, b, "--size", size).exit_code == 2  # typer's usage error


def test_saving_into_a_non_members_account_is_refused(dashboard_world):
    """Privacy: a blend of A and B cannot be written into C's library, even though C connected here."""
    from soundmates.config import get_settings
    from soundmates.spotify.connect import SpotifyConnect

    a, b, c = dashboard_world.stored_ids[:3]
    _connect(c)
    out = _run(a, b, "--json", "--save-to", c)
    assert out.exit_code == 1, out.output
    err = json.loads(out.stdout)
    assert err["kind"] == "not_a_member" and "not a member of this blend" in err["error"], err
    plain = _run(a, b, "--save-to", f"spotify:user:{c}")
    assert plain.exit_code == 1 and "Traceback" not in plain.output
    assert [ln for ln in plain.stderr.splitlines() if ln.startswith("error: ") and "not a member" in ln], plain.stderr
    token = SpotifyConnect(get_settings(), redirect_uri="http://127.0.0.1:9/cb").tokens.load(c)["access_token"]
    api = get_settings().spotify_api_url
    theirs = requests.get(api + "me/playlists", headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    assert not [p for p in theirs["items"] if p["name"].startswith("Soundmates blend")]
