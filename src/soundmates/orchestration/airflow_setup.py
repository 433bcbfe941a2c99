"""One-time Airflow objects Soundmates needs: the Spotify pool and the ``spotify_default`` connection.

    python -m soundmates.orchestration.airflow_setup [--api-url URL --token-url URL]

Run after ``airflow db migrate`` (``scripts/run.sh`` does) — one Python process
instead of several ``airflow`` CLI calls (~5 s each). Credentials are read from
``SPOTIPY_CLIENT_ID`` / ``SPOTIPY_CLIENT_SECRET`` and never printed. Idempotent.
"""

from __future__ import annotations

import json
import os

import typer

from soundmates.orchestration import SPOTIFY_CONN_ID, SPOTIFY_POOL, SPOTIFY_POOL_SLOTS


def ensure_pool(slots: int = SPOTIFY_POOL_SLOTS) -> None:
    """The pool that bounds concurrent Spotify API tasks (the API rate-limits per app)."""
    from airflow.models.pool import Pool

    Pool.create_or_update_pool(
        name=SPOTIFY_POOL,
        slots=slots,
        description="Concurrent Spotify API work (ingest, new users)",
        include_deferred=False,
    )


def ensure_spotify_connection(
    client_id: str, client_secret: str, api_url: str | None = None, token_url: str | None = None
) -> None:
    """Create or replace ``spotify_default`` (login = client id, password = secret, extra = endpoints)."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    extra = {k: v for k, v in {"api_url": api_url, "token_url": token_url}.items() if v}
    with create_session() as session:
        existing = session.query(Connection).filter(Connection.conn_id == SPOTIFY_CONN_ID).one_or_none()
        if existing is not None:
            session.delete(existing)
            session.flush()
        session.add(
            Connection(
                conn_id=SPOTIFY_CONN_ID,
                conn_type="generic",
                login=client_id,
                password=client_secret,
                extra=json.dumps(extra) if extra else None,
                description="Spotify Web API app credentials (or the local server's)",
            )
        )


def main(
    slots: int = typer.Option(SPOTIFY_POOL_SLOTS, help="Slots of the spotify_api pool."),
    api_url: str = typer.Option("", help="Spotify API base URL stored in the connection (empty = the real API)."),
    token_url: str = typer.Option("", help="Spotify token URL stored in the connection."),
) -> None:
    """Create the spotify_api pool and the spotify_default connection (from SPOTIPY_* env)."""
    ensure_pool(slots)
    client_id = os.environ.get("SPOTIPY_CLIENT_ID", "")
    secret = os.environ.get("SPOTIPY_CLIENT_SECRET", "")
    if client_id and secret:
        ensure_spotify_connection(client_id, secret, api_url or None, token_url or None)
        typer.echo(f"pool {SPOTIFY_POOL} ({slots} slots) and connection {SPOTIFY_CONN_ID} ready", err=True)
    else:
        typer.echo(
            f"pool {SPOTIFY_POOL} ready; SPOTIPY_CLIENT_ID/SECRET unset, connection {SPOTIFY_CONN_ID} "
            "not created (tasks will read the environment)",
            err=True,
        )


if __name__ == "__main__":  # pragma: no cover
    typer.run(main)
