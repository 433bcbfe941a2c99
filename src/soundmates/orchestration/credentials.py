"""Spotify credentials for tasks: the Airflow connection ``spotify_default``, else the environment.

The connection's login/password are the client id/secret; its extra may carry
``api_url`` and ``token_url`` (the local Spotify-compatible server, for a demo).
They are handed to the pipeline through the same environment variables the CLI
reads (``SPOTIPY_*``, ``SOUNDMATES_SPOTIFY_*``), only for the duration of the
task, and are never logged: the log line names which source was used, not values.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from soundmates.orchestration import SPOTIFY_CONN_ID

log = logging.getLogger(__name__)


def _connection_env(conn_id: str) -> dict[str, str]:
    """Env vars from the Airflow connection, or {} when there is none (or no Airflow context)."""
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    except Exception:  # noqa: BLE001 - AirflowNotFoundException, or no task context (CLI, plain tests)
        return {}
    env: dict[str, str] = {}
    if conn.login:
        env["SPOTIPY_CLIENT_ID"] = conn.login
    if conn.password:
        env["SPOTIPY_CLIENT_SECRET"] = conn.password
    extra = conn.extra_dejson or {}
    if extra.get("api_url"):
        env["SOUNDMATES_SPOTIFY_API_URL"] = str(extra["api_url"])
    if extra.get("token_url"):
        env["SOUNDMATES_SPOTIFY_TOKEN_URL"] = str(extra["token_url"])
    return env


@contextmanager
def spotify_credentials(conn_id: str = SPOTIFY_CONN_ID) -> Iterator[str]:
    """Expose Spotify credentials to the pipeline for one block; yields the source used.

    Yields ``"connection:<id>"`` or ``"environment"``. Raises ``RuntimeError``
    naming both places when neither holds a client id and secret.
    """
    from soundmates.config import reset_settings

    env = _connection_env(conn_id)
    source = f"connection:{conn_id}" if env else "environment"
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    reset_settings()
    try:
        if not (os.environ.get("SPOTIPY_CLIENT_ID") and os.environ.get("SPOTIPY_CLIENT_SECRET")):
            raise RuntimeError(
                f"no Spotify credentials: set the Airflow connection '{conn_id}' (login = client id, "
                "password = client secret) or the SPOTIPY_CLIENT_ID / SPOTIPY_CLIENT_SECRET environment variables"
            )
        log.info("Spotify credentials from %s", source)
        yield source
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_settings()
