"""Playlist rows from an API that predates the Feb 2026 ``item`` rename still reach the profile.

The ingest asks only for ``item`` (half the bytes of asking for ``item`` and ``track``). A small
loopback server here plays an older API: it applies ``fields`` but knows rows' content only as
``track``, so a filter naming ``item`` alone leaves rows without content. The ingest must notice on
the first such page, fetch it again naming both, keep doing so, and store no page without its rows.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from soundmates.config import get_settings, reset_settings
from soundmates.profiles import ProfileRepository
from soundmates.spotify.ingest import Ingestor
from soundmates.spotify.parsing import ITEM_FIELDS, LEGACY_ITEM_FIELDS
from soundmates.spotify.raw_store import UserPages


def _track(n: int) -> dict:
    return {
        "id": f"t{n}",
        "type": "track",
        "name": f"Song {n}",
        "is_local": False,
        "explicit": False,
        "popularity": 40,
        "duration_ms": 200000,
        "artists": [{"id": "a1", "name": "Band"}],
        "album": {"name": "LP", "release_date": "1999-05-01"},
    }


class OldApi(BaseHTTPRequestHandler):
    """Two playlists of two tracks; rows carry ``track`` only, and ``fields`` drops what it does not name."""

    protocol_version = "HTTP/1.1"
    item_filters: list[str] = []

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send({"access_token": "tok", "token_type": "Bearer", "expires_in": 3600})

    def do_GET(self):
        url = urlsplit(self.path)
        parts = url.path.removeprefix("/v1/").split("/")
        if parts[0] == "artists":
            return self._send({"artists": [{"id": "a1", "name": "Band", "genres": ["indie rock"], "popularity": 50}]})
        if parts[0] == "playlists":
            fields = parse_qs(url.query).get("fields", [""])[0]
            OldApi.item_filters.append(fields)
            k = int(parts[1][1:])
            rows = [{"added_at": "2024-01-01T00:00:00Z", "is_local": False, "track": _track(2 * k + i)} for i in range(2)]
            if fields and "track(" not in fields:
                rows = [{key: v for key, v in r.items() if key != "track"} for r in rows]
            return self._send({"items": rows, "next": None})
        if len(parts) == 3:
            listed = [{"id": f"p{k}", "name": f"mix {k}", "owner": {"id": "old"}, "tracks": {"total": 2}} for k in (1, 2)]
            return self._send({"items": listed, "next": None})
        return self._send({"id": parts[1], "display_name": "Old"})

    def _send(self, obj: dict) -> None:
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def old_api(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), OldApi)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("SOUNDMATES_SPOTIFY_API_URL", f"{base}/v1/")
    monkeypatch.setenv("SOUNDMATES_SPOTIFY_TOKEN_URL", f"{base}/api/token")
    monkeypatch.setenv("SPOTIPY_CLIENT_ID", "id")
    monkeypatch.setenv("SPOTIPY_CLIENT_SECRET", "secret")
    OldApi.item_filters = []
    yield
    server.shutdown()
    server.server_close()


def test_rows_without_item_are_fetched_again_naming_track_too(old_api):
    reset_settings()
    settings = get_settings().model_copy(update={"ingest_workers": 1})
    summary = Ingestor(settings).ingest_many(["old"], progress=False)
    assert summary.ingested == 1, summary.failed
    profile = ProfileRepository(settings.profiles_dir).load("old")
    assert sorted(profile.tracks) == ["t2", "t3", "t4", "t5"]
    assert [len(p.items) for p in profile.playlists] == [2, 2]
    # The first page was asked for with ``item`` only, then again with both; the next playlist with both at once.
    assert OldApi.item_filters == [ITEM_FIELDS, LEGACY_ITEM_FIELDS, LEGACY_ITEM_FIELDS]
    pages = UserPages(next(settings.raw_dir.rglob(UserPages.LOG)).parent)
    kept = [pages.get(n) for n in pages.names() if n.startswith("items.")]
    assert len(kept) == 2 and all("track" in row for page in kept for row in page["items"])
