"""CLI command of a person's taste profile: ``soundmates profile REF``."""

from __future__ import annotations

import typer


def profile(
    ref: str = typer.Argument(..., help="Spotify profile link, spotify:user:ID URI, or user ID."),
    within: float = typer.Option(0.5, "--within", min=-1.0, max=1.0, help="Count the people whose match score is at least this."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """REF's taste: top genres, artists and eras, how mainstream and how varied against everyone, who is near."""
    from soundmates.cli._common import emit_json
    from soundmates.cli.recommend import _error
    from soundmates.recommend import Recommender, RecommendError

    try:
        result = Recommender().taste_profile(ref, within=within)
    except RecommendError as exc:
        _error(exc, as_json)
        return
    if as_json:
        emit_json(result.model_dump(mode="json"))
        return
    typer.echo(f"Taste of {result.display_name or result.user_id} ({result.family or 'no genres'}):")
    typer.echo("  genres:  " + ", ".join(f"{g.name} {g.share:.0%}" for g in result.top_genres[:5]))
    typer.echo("  artists: " + ", ".join(a.name for a in result.top_artists[:5]))
    typer.echo("  eras:    " + ", ".join(f"{e.name} {e.share:.0%}" for e in result.eras if e.share >= 0.05))
    for label, p in (("mainstream", result.mainstream), ("variety", result.variety)):
        if p.percentile is not None:
            typer.echo(f"  {label}: {p.value} (more than {p.percentile:.0f}% of {p.users_compared:,} users)")
    if result.people_within is not None:
        typer.echo(f"  {result.people_within:,} of {result.people_compared:,} people score >= {result.within} with you")
    for w in result.warnings:
        typer.echo(f"warning: {w}", err=True)


def register(app: typer.Typer) -> None:
    """Add this command to the root app."""
    app.command("profile")(profile)
