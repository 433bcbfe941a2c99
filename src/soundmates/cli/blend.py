"""``soundmates blend``: a shared playlist for 2 to 10 people, exported (JSON, CSV, M3U) or saved to a connected account."""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def _error(message: str, kind: str, as_json: bool) -> None:
    from soundmates.cli._common import emit_json, fail

    if as_json:
        emit_json({"error": message, "kind": kind})
        raise typer.Exit(1)
    fail(message, code=1)


def _save(blend, account: str) -> str:
    """Save to the connected ``account``; the line to print."""
    from soundmates.cli.connect import DEFAULT_PORT
    from soundmates.config import get_settings
    from soundmates.recommend.blend_save import save_blend
    from soundmates.spotify.connect import SpotifyConnect, loopback_redirect_uri

    flow = SpotifyConnect(get_settings(), redirect_uri=loopback_redirect_uri(DEFAULT_PORT))
    saved = save_blend(blend, flow, account)
    return f"saved {saved.tracks} tracks to {saved.account}'s private playlist {saved.id} {saved.url or ''}".rstrip()


def blend_cmd(
    refs: list[str] = typer.Argument(..., help="2 to 10 profiles (link, spotify:user:ID or ID); the first is you."),
    size: int = typer.Option(30, "--size", min=1, max=200, help="How many tracks."),
    as_json: bool = typer.Option(False, "--json", help="Print the blend as one JSON object on stdout."),
    fmt: str = typer.Option("", "--format", help="Export as json, csv or m3u (to --output, else stdout)."),
    output: Path | None = typer.Option(None, "--output", help="File to write the export to (--format, default json)."),
    save_to: str = typer.Option(
        "", "--save-to", help="Your connected account (soundmates connect; a member of the blend) to save it to, privately."
    ),
) -> None:
    """Blend: a playlist mixing what each of you would like, with why each track is there and how well you all match."""
    from soundmates.atomic import atomic_write_text
    from soundmates.cli._common import emit_json
    from soundmates.recommend import Recommender, RecommendError, blend_export
    from soundmates.recommend.blend_save import NotAMember
    from soundmates.spotify.connect import ConnectError
    from soundmates.spotify.errors import SpotifyError

    fmt = fmt.strip().lower() or ("json" if output is not None else "")
    if fmt and fmt not in blend_export.FORMATS:
        _error(f"unknown format {fmt!r}: use one of {', '.join(blend_export.FORMATS)}", "bad_format", as_json)
    try:
        blend = Recommender().blend(refs, size, progress=lambda m: print(m, file=sys.stderr, flush=True))
    except RecommendError as exc:
        _error(str(exc), getattr(exc, "kind", "error"), as_json)
        return
    if save_to:
        try:
            typer.echo(_save(blend, save_to), err=True)
        except NotAMember as exc:
            _error(f"the blend was made but not saved: {exc}", exc.kind, as_json)
        except (ConnectError, SpotifyError) as exc:
            _error(f"the blend was made but not saved to {save_to!r}: {exc}", "not_saved", as_json)
    if fmt and output is not None:
        atomic_write_text(output, blend_export.render(blend, fmt))
        typer.echo(f"wrote {len(blend.tracks)} tracks to {output} ({fmt})", err=True)
    elif fmt and not as_json:
        sys.stdout.write(blend_export.render(blend, fmt))
    if as_json:
        emit_json(blend.contract())
    elif not fmt and not save_to:
        _print(blend)
    for w in blend.warnings:
        typer.echo(f"warning: {w}", err=True)


def _print(blend) -> None:
    names = [blend.names.get(m, m) for m in blend.members]
    shares = blend.shares()
    typer.echo(f"Blend of {', '.join(names)} ({len(blend.tracks)} tracks, served by {blend.embedder}):")
    for i, t in enumerate(blend.tracks, 1):
        typer.echo(f"{i:3}. {t.name} — {', '.join(t.artists)}  [{t.reason}]")
    typer.echo("Shares: " + ", ".join(f"{blend.names.get(m, m)} {s:.0%}" for m, s in shares.items()))
    typer.echo("Match scores:")
    for i, row in enumerate(blend.compatibility):
        typer.echo(f"  {names[i]:>20}: " + "  ".join(f"{v:5.2f}" for v in row))


def register(app: typer.Typer) -> None:
    app.command("blend")(blend_cmd)
