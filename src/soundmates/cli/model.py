"""CLI commands of the model stage: ``soundmates train``, ``soundmates evaluate``, ``soundmates promote``.

torch and lightning are imported inside the commands, so ``soundmates --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


# Long only by its typer options (one declaration per flag, each with its help text); the body is short.
def train(
    max_epochs: int = typer.Option(
        None, "--max-epochs", help="Most epochs (early stopping on the validation monitor may stop sooner)."
    ),
    seed: int = typer.Option(None, "--seed", help="Seed of the split, the initialisation and the batches."),
    config: Path = typer.Option(
        None, "--config", help="YAML of hyperparameters over configs/model/default.yaml (only the keys it changes)."
    ),
    data_version: int = typer.Option(
        None, "--data-version", help="user_features data version to train on (default: the latest)."
    ),
    lr: float = typer.Option(None, "--lr", help="Learning rate."),
    temperature: float = typer.Option(None, "--temperature", help="Softmax temperature of the in-batch loss."),
    batch_size: int = typer.Option(None, "--batch-size", help="Users per batch (in-batch negatives = batch size - 1)."),
    shared_towers: bool = typer.Option(
        None, "--shared-towers/--separate-towers", help="One tower for query and candidate, or two."
    ),
    genre_dim: int = typer.Option(None, "--genre-dim", help="Dimension of the genre bag embedding."),
    artist_dim: int = typer.Option(None, "--artist-dim", help="Dimension of the artist bag embedding."),
    patience: int = typer.Option(None, "--patience", help="Epochs without validation improvement before stopping."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Train the two-tower model, tune the baselines, evaluate; register both unpromoted (then `soundmates promote`)."""
    from soundmates.cli._common import emit_json, fail
    from soundmates.pipelines.model import train_model

    hp: dict[str, Any] = dict(
        max_epochs=max_epochs,
        seed=seed,
        lr=lr,
        temperature=temperature,
        batch_size=batch_size,
        shared_towers=shared_towers,
        genre_dim=genre_dim,
        artist_dim=artist_dim,
        patience=patience,
    )
    try:
        result = train_model(config_file=config, data_version=data_version, **{k: v for k, v in hp.items() if v is not None})
    except Exception as exc:  # noqa: BLE001 - say what failed, exit non-zero
        if as_json:
            emit_json({"error": f"{type(exc).__name__}: {exc}"})
            raise typer.Exit(1) from None
        fail(f"training failed: {type(exc).__name__}: {exc}", code=1)
        return
    if as_json:
        emit_json(result)
        return
    typer.echo(
        f"model {result['version']} registered (not promoted yet); the gate would serve "
        f"{result['gate']['served']}: {result['gate']['reason']}"
    )
    from soundmates.model.protocol import VAL_METRIC

    for name, v in result["metrics"]["val"].items():
        typer.echo(f"  validation {name:15s} {VAL_METRIC} {v:.4f}")
    fb = result.get("feedback")
    if fb:
        then = f"serving {fb['served_name']} ({fb['served_version']})" if fb.get("tuned_served") else "the base stays served"
        typer.echo(f"  feedback: {fb.get('reason')}; after promote {then}")
    typer.echo("next: `soundmates promote` makes the gate's choice current")


def evaluate(
    dataset: str = typer.Option(
        "world", "--dataset", help="world (a generated world with --path, else the stored users) or hetrec."
    ),
    path: Path = typer.Option(None, "--path", help="World folder (generated there if missing) or HetRec Last.fm 2k folder."),
    users: int = typer.Option(None, "--users", help="World: use the first N users (default: all; 2,000 when generating)."),
    seed: int = typer.Option(
        None, "--seed", help="Seed of the split and the training (HetRec: also of the halves); default: the model YAML's."
    ),
    config: Path = typer.Option(
        None, "--config", help="YAML of the two-tower's hyperparameters over configs/model/default.yaml (only what changes)."
    ),
    max_epochs: int = typer.Option(None, "--max-epochs", help="Most epochs of the two-tower."),
    report_dir: Path = typer.Option(
        None, "--report-dir", help="Where to write evaluation.{json,md,html} (default <data_dir>/reports/<dataset>)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Held-out users against the whole population: the model, its LSA start and every tuned baseline."""
    from soundmates.cli._common import emit_json, fail
    from soundmates.pipelines.model import evaluate_model

    if dataset not in ("world", "hetrec"):
        fail(f"--dataset must be 'world' or 'hetrec', got {dataset!r}")
    if users is not None and users < 10:
        fail(f"--users must be at least 10, got {users}")
    try:
        hp: dict[str, Any] = {"max_epochs": max_epochs} if max_epochs else {}
        result = evaluate_model(
            dataset=dataset, path=path, users=users, seed=seed, config_file=config, report_dir=report_dir, **hp
        )
    except Exception as exc:  # noqa: BLE001
        if as_json:
            emit_json({"error": f"{type(exc).__name__}: {exc}"})
            raise typer.Exit(1) from None
        fail(f"evaluation failed: {type(exc).__name__}: {exc}", code=1)
        return
    if as_json:
        emit_json(result)
        return
    from soundmates.model.evaluate import markdown_table

    typer.echo(markdown_table(result))
    typer.echo(f"report: {result['report']['html']}")


def promote(
    version: str = typer.Option(None, "--version", help="Trained version whose gate decision to apply (default: the latest)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Apply the gate: serve the trained model only if it beat the incumbent and the best tuned baseline."""
    from soundmates.cli._common import emit_json, fail
    from soundmates.pipelines.model import promote_model

    try:
        result = promote_model(version=version)
    except Exception as exc:  # noqa: BLE001
        if as_json:
            emit_json({"error": f"{type(exc).__name__}: {exc}"})
            raise typer.Exit(1) from None
        fail(f"promotion failed: {type(exc).__name__}: {exc}", code=1)
        return
    if as_json:
        emit_json(result)
        return
    typer.echo(f"serving {result['served']} ({result['version']}): {result['reason']}")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    app.command("train")(train)
    app.command("evaluate")(evaluate)
    app.command("promote")(promote)
