"""CLI commands of the recommend stage: ``soundmates recommend``, ``soundmates add``, ``soundmates remove``."""

from __future__ import annotations

import sys

import typer


def _error(exc: Exception, as_json: bool) -> None:
    from soundmates.cli._common import emit_json, fail

    kind = getattr(exc, "kind", type(exc).__name__)
    if as_json:
        emit_json({"error": str(exc), "kind": kind})
        raise typer.Exit(1)
    fail(str(exc), code=1)


def recommend(
    ref: str = typer.Argument(..., help="Spotify profile link, spotify:user:ID URI, or user ID."),
    k: int = typer.Option(10, "--k", "-k", min=1, max=100, help="How many matches."),
    diversity: float = typer.Option(0.0, "--diversity", min=0.0, max=1.0, help="0 = closest first; higher = fewer near-copies."),
    consent: bool = typer.Option(False, "--consent", help="Store an unknown profile and make it findable by others."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Find the users whose music taste is closest to REF's, with the reasons."""
    from soundmates.cli._common import emit_json
    from soundmates.recommend import Recommender, RecommendError

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        result = Recommender().recommend(ref, k=k, consent=consent, diversity=diversity, progress=progress)
    except RecommendError as exc:
        _error(exc, as_json)
        return
    if as_json:
        emit_json(result.model_dump(mode="json"))
        return
    who = result.display_name or result.user_id
    served = f", served by {result.embedder.name} {result.embedder.version}" if result.embedder else ""
    typer.echo(f"Closest to {who} ({'known' if result.known else 'fetched live'}{served}):")
    for i, m in enumerate(result.matches, 1):
        pct = f", closer than {m.percentile:.0f}% of random pairs" if m.percentile is not None else ""
        typer.echo(f"{i:2}. {m.display_name or m.user_id} [{m.user_id}] score {m.score:.3f}{pct}")
        if m.shared_genres:
            typer.echo("    genres:  " + ", ".join(g.genre for g in m.shared_genres[:5]))
        if m.shared_artists:
            typer.echo("    artists: " + ", ".join(a.name for a in m.shared_artists[:5]))
        if m.shared_tracks:
            typer.echo("    tracks:  " + ", ".join(t.name for t in m.shared_tracks[:3]))
        if m.closest_artists:
            typer.echo("    try:     " + ", ".join(a.name for a in m.closest_artists[:3]))
    for w in result.warnings:
        typer.echo(f"warning: {w}", err=True)


def add(
    ref: str = typer.Argument(..., help="Spotify profile link, spotify:user:ID URI, or user ID."),
    restore_removed: bool = typer.Option(
        False,
        "--restore-removed",
        help="Operator only, after checking with the owner: queue a profile its owner removed. It is fetched "
        "afresh and findable only once the pipeline has run; nothing removed comes back.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Consent: queue REF for the pipeline (ingest, features, index) so others can find them.

    A profile removed with 'soundmates remove' is refused, unless its owner connects with Spotify
    (dashboard) or an operator passes --restore-removed.
    """
    from soundmates.cli._common import emit_json
    from soundmates.recommend import Recommender, RecommendError

    try:
        entry = Recommender().add(ref, restore_removed=restore_removed)
    except RecommendError as exc:
        _error(exc, as_json)
        return
    if as_json:
        emit_json(entry.model_dump(mode="json"))
        return
    typer.echo(f"{entry.user_id}: {entry.status} (requested {entry.requested_at})")


def remove(
    ref: str = typer.Argument(..., help="Spotify profile link, spotify:user:ID URI, or user ID."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Remove REF: hidden from every result at once and for good; stored profile, raw responses and features deleted.

    Nobody brings a removed profile back by asking: only its owner (Connect with Spotify) or an
    operator (add --restore-removed), and then only from newly fetched data.
    """
    from soundmates.cli._common import emit_json
    from soundmates.recommend import Recommender, RecommendError

    try:
        report = Recommender().remove(ref)
    except RecommendError as exc:
        _error(exc, as_json)
        return
    if as_json:
        emit_json(report)
        return
    typer.echo(
        f"{report['user_id']}: hidden from results; profile deleted: {report.get('profile_deleted', False)}, "
        f"raw responses deleted: {report.get('raw_responses_deleted', False)}, "
        f"store rows deleted: {report.get('store_rows_deleted', 0)}"
    )


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    app.command("recommend")(recommend)
    app.command("add")(add)
    app.command("remove")(remove)
