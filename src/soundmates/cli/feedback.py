"""CLI command of match feedback: ``soundmates feedback REF OTHER --up|--down``."""

from __future__ import annotations

import typer


def feedback(
    ref: str = typer.Argument(..., help="You: Spotify profile link, spotify:user:ID URI, or user ID (a stored profile)."),
    other: str = typer.Argument(..., help="The match you rate (a stored profile)."),
    up: bool = typer.Option(False, "--up", help="This match fits my taste."),
    down: bool = typer.Option(False, "--down", help="This match does not fit my taste."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Say whether OTHER fits REF's taste; kept only for stored (consenting) users, deleted with either of them."""
    from soundmates.cli._common import emit_json, fail
    from soundmates.cli.recommend import _error
    from soundmates.recommend import Recommender, RecommendError

    if up == down:
        fail("say either --up (the match fits) or --down (it does not), exactly one", code=2)
    try:
        result = Recommender().feedback(ref, other, up=up)
    except RecommendError as exc:
        _error(exc, as_json)
        return
    if as_json:
        emit_json(result.model_dump(mode="json"))
        return
    mine = result.yours
    typer.echo(
        f"{result.user_id} -> {result.other_id}: {result.vote} (your votes: {mine.get('up', 0)} up, {mine.get('down', 0)} down)"
    )


def register(app: typer.Typer) -> None:
    """Add this command to the root app."""
    app.command("feedback")(feedback)
