"""CLI commands of the features stage: ``soundmates features build``."""

from __future__ import annotations

import typer

features_app = typer.Typer(
    help="Taste features: canonical profiles -> feature store (user_features, user_profiles).",
    no_args_is_help=True,
)


@features_app.command("build")
def build(
    force: bool = typer.Option(False, "--force", help="Recompute every user and refit the scaler, even if unchanged."),
    user: list[str] = typer.Option(None, "--user", "-u", help="Only this user id (repeatable); default: every ingested profile."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with the summary on stdout."),
) -> None:
    """Compute taste features from ingested profiles (incremental: only users whose profile changed)."""
    from soundmates.cli._common import emit_json, fail
    from soundmates.pipelines.features import build_features

    try:
        summary = build_features(user_ids=list(user) if user else None, force=force)
    except Exception as exc:  # noqa: BLE001 - a whole-stage failure (store or encoder down): say what, exit non-zero
        if as_json:
            emit_json({"error": f"{type(exc).__name__}: {exc}"})
            raise typer.Exit(1) from None
        fail(f"features build failed: {type(exc).__name__}: {exc}", code=1)
        return
    if as_json:
        emit_json(summary)
        return
    typer.echo(
        f"{summary['users']} user(s) with features: {summary['updated']} updated, "
        f"{summary['unchanged']} unchanged; {len(summary['rejected'])} rejected; "
        f"user_features data version {summary['data_version']}"
    )
    for r in summary["rejected"]:
        typer.echo(f"  rejected {r['user_id']}: {r['reason']}")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    app.add_typer(features_app, name="features")
