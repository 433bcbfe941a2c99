"""`soundmates import-export`: bring your own taste from a Spotify data export."""

from __future__ import annotations

from pathlib import Path

import typer

from soundmates.logs import one_line

from ._common import emit_json, fail


def import_export_cmd(
    path: Path = typer.Argument(..., help="The ZIP Spotify sent (Download your data), or its unpacked folder."),
    user_id: str = typer.Option(None, "--user-id", help="Store under this id (default: the username in Userdata.json)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Parse and summarise only; store nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Import a Spotify data export (Account data or Extended streaming history) as a taste profile."""
    from soundmates.config import get_settings
    from soundmates.export.archive import ExportError
    from soundmates.export.importer import import_export, store_export

    settings = get_settings()
    try:
        profile, summary = import_export(path, user_id=user_id, settings=settings, check_slot=True)
        stored = store_export(profile, settings, dry_run=dry_run)
    except ExportError as exc:
        if as_json:
            emit_json({"error": one_line(exc, limit=1000), "stored": False})
        fail(str(exc), code=1)
        return
    result = summary.model_dump() | {"stored": stored}
    if as_json:
        emit_json(result)
    else:
        typer.echo(
            f"{summary.user_id}: {summary.tracks} tracks by {summary.artists} artists in {summary.playlists} playlists, "
            f"{summary.plays_counted} plays counted; genre coverage {summary.genre_coverage:.0%}"
            + ("" if stored else " (dry run: nothing stored)")
        )


def register(app: typer.Typer) -> None:
    app.command("import-export")(import_export_cmd)
