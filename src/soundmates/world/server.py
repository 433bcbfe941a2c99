"""A local Spotify-compatible Web API serving a generated world: the server's lifecycle and counters.

Responses follow the shapes of the real API (paging objects with absolute ``next`` URLs pointing at
this server, Spotify's error bodies) and validate against ``openapi.yml``. The rooms:
``http`` (transport), ``routes`` (route table and order of checks), ``render`` (JSON bodies),
``faults`` (injected 429/5xx/drops/latency), ``oauth`` + ``me`` (Connect with Spotify), ``tokens``.

``mode="development"`` reproduces what an ordinary (development-mode) app meets since Feb 2026:
removed endpoints answer 403, popularity/followers/markets/label are gone, artist genres are
often empty or missing, and playlists use ``items``/``item`` instead of ``tracks``/``track``.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from soundmates.world.directory import World
from soundmates.world.errors import MAX_IDS, ApiError
from soundmates.world.faults import FaultConfig, FaultInjector
from soundmates.world.http import WorldHTTPServer
from soundmates.world.oauth import OAuthState
from soundmates.world.playlists_write import CreatedPlaylists
from soundmates.world.render import Renderer
from soundmates.world.routes import MAX_OFFSET
from soundmates.world.tokens import TokenSigner

MODES = ("full", "development")

__all__ = ["MODES", "MAX_IDS", "MAX_OFFSET", "ApiError", "FaultConfig", "SpotifyServer"]


class SpotifyServer:
    """A local Spotify Web API for one world; a context manager that serves from a background thread.

    >>> with SpotifyServer(world_dir) as srv:          # port 0 = any free port
    ...     requests.post(srv.token_url, ...); requests.get(srv.api_url + "users/...")
    """

    def __init__(
        self,
        world_dir: str | Path,
        host: str = "127.0.0.1",
        port: int = 0,
        mode: str = "full",
        faults: FaultConfig | None = None,
        verbose: bool = False,
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.world = World(world_dir)
        self.host = host
        self.requested_port = port
        self.mode = mode
        self.faults = faults or FaultConfig()
        self.fault_injector = FaultInjector(self.faults)
        self.verbose = verbose
        # Tokens are signed, not stored: a token stays valid across server restarts on the same world.
        self._tokens = TokenSigner(self.world.seed)
        self.oauth = OAuthState(self.world, mode, self._tokens.issue)
        self.created_playlists = CreatedPlaylists()  # POST /v1/me/playlists (in memory, like OAuth grants)
        self._lock = threading.Lock()
        self._stats_requests: Counter[str] = Counter()
        self._stats_status: Counter[str] = Counter()
        self._stats_faults: Counter[str] = Counter()
        self._httpd: WorldHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._renderer: Renderer | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return self._httpd.server_address[1]

    @property
    def renderer(self) -> Renderer:
        """The JSON renderer of the running server (request handlers only run once it started)."""
        if self._renderer is None:
            raise RuntimeError("server not started")
        return self._renderer

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v1/"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/api/token"

    def start(self) -> SpotifyServer:
        if self._httpd is not None:
            return self
        # Read users.txt and build the id index now: fail early on a broken file, and never make
        # the first client wait seconds (a 1M-user world) and time out.
        self.world.user_index("")
        if self.world.n_users:
            # The catalog's communities (a k-means, seconds) are built on first use: here, not in a request.
            self.world.playlists(0)
        self._httpd = WorldHTTPServer((self.host, self.requested_port), self)
        self._renderer = Renderer(self.world, self.api_url, self.mode)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name=f"spotify-server-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> SpotifyServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the CLI)."""
        self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(timeout=0.5)
        finally:
            self.stop()

    # --- stats -------------------------------------------------------------------------------
    def stats(self) -> dict:
        with self._lock:
            return {
                "total": sum(self._stats_requests.values()),
                "api_calls": sum(v for k, v in self._stats_requests.items() if k != "token"),
                "requests": dict(self._stats_requests),
                "status": dict(self._stats_status),
                "faults": dict(self._stats_faults),
                "mode": self.mode,
            }

    def reset_stats(self) -> None:
        with self._lock:
            self._stats_requests.clear()
            self._stats_status.clear()
            self._stats_faults.clear()
        self.fault_injector.reset()

    def count(self, endpoint: str, status: int, fault: str | None = None) -> None:
        """Count one answered (or dropped: status 0) request under its endpoint name."""
        with self._lock:
            self._stats_requests[endpoint] += 1
            self._stats_status[str(status)] += 1
            if fault:
                self._stats_faults[fault] += 1

    # --- tokens ------------------------------------------------------------------------------
    def issue_token(self) -> str:
        return self._tokens.issue()

    def token_valid(self, token: str) -> bool:
        return self._tokens.valid(token)
