"""``soundmates ingest``: Spotify profiles -> canonical profiles under SOUNDMATES_DATA_DIR."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from soundmates.cli._common import emit_json, fail


def read_ref_file(path: Path) -> list[str]:
    """One reference per line; blank lines and ``#`` comment lines are ignored.

    A ``#`` only starts a comment at the beginning of a line: legacy user ids may hold ``#``.
    """
    refs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if text and not text.startswith("#"):
            refs.append(text)
    return refs


def ingest(
    refs: Optional[list[str]] = typer.Argument(None, help="Profile references: https://open.spotify.com/user/ID, spotify:user:ID or a bare ID."),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="A file with one reference per line (blank lines and # comments ignored), e.g. a world's users.txt."),
    refresh: bool = typer.Option(False, "--refresh", help="Fetch users again even if their profile is stored (raw pages are refetched too)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (the summary) on stdout."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr."),
) -> None:
    """Fetch Spotify users' public playlists, tracks and artists into canonical profiles.

    Works against the real Web API or the local server by configuration only
    (SOUNDMATES_SPOTIFY_API_URL, SOUNDMATES_SPOTIFY_TOKEN_URL; credentials from
    SPOTIPY_CLIENT_ID / SPOTIPY_CLIENT_SECRET). Users that fail are listed with their
    reason, users a rate limit kept from being done are listed as deferred (with the seconds
    to wait), and the exit code stays 0; it is non-zero only when nothing could run.
    """
    all_refs = list(refs or [])
    if file is not None:
        try:
            all_refs += read_ref_file(file)
        except OSError as exc:
            fail(f"cannot read --file {file}: {exc.strerror or exc}")
        except UnicodeDecodeError:
            fail(f"--file {file} is not UTF-8 text")
    if not all_refs:
        fail("nothing to ingest: give profile references or --file F (one reference per line)")

    from soundmates.config import get_settings
    from soundmates.pipelines.ingest import ingest_users
    from soundmates.spotify.errors import AuthenticationFailed, MissingCredentials

    try:
        summary = ingest_users(all_refs, settings=get_settings(), refresh=refresh, progress=progress)
    except (MissingCredentials, AuthenticationFailed) as exc:
        fail(exc.reason)
        return

    data = summary.model_dump(mode="json")
    if as_json:
        emit_json(data)
        return
    typer.echo(
        f"ingested {summary.ingested}, skipped {summary.skipped} (already stored), failed {len(summary.failed)}, "
        f"deferred {len(summary.deferred)} (rate-limited); {summary.api_calls} API calls in {summary.elapsed_s:.1f} s"
    )
    for f in summary.failed:
        typer.echo(f"  failed {f.ref}: {f.reason}")
    if summary.deferred:
        wait = max(d.retry_after_s for d in summary.deferred)
        typer.echo(f"  deferred {len(summary.deferred)} user(s): Spotify asked to wait; run the same command again "
                   f"in {wait:.0f} s to resume them (pages already fetched are kept)")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    app.command("ingest")(ingest)
