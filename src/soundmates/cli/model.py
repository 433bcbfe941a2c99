"""CLI commands of the model stage: ``soundmates train`` and ``soundmates evaluate``.

torch and lightning are imported inside the commands, so ``soundmates --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import typer


def train(
    max_epochs: int = typer.Option(None, "--max-epochs", help="Most epochs (early stopping on validation recall@10 may stop sooner)."),
    seed: int = typer.Option(None, "--seed", help="Seed of the split, the initialisation and the batches."),
    config: Path = typer.Option(None, "--config", help="YAML file of hyperparameters (default configs/model/default.yaml)."),
    data_version: int = typer.Option(None, "--data-version", help="user_features data version to train on (default: the latest)."),
    lr: float = typer.Option(None, "--lr", help="Learning rate."),
    temperature: float = typer.Option(None, "--temperature", help="Softmax temperature of the in-batch loss."),
    batch_size: int = typer.Option(None, "--batch-size", help="Users per batch (in-batch negatives = batch size - 1)."),
    shared_towers: bool = typer.Option(None, "--shared-towers/--separate-towers", help="One tower for query and candidate, or two."),
    genre_dim: int = typer.Option(None, "--genre-dim", help="Dimension of the genre bag embedding."),
    artist_dim: int = typer.Option(None, "--artist-dim", help="Dimension of the artist bag embedding."),
    patience: int = typer.Option(None, "--patience", help="Epochs without validation improvement before stopping."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Train the two-tower model on the feature store, compare with baselines, register it (promoted if not worse)."""
    from soundmates.cli._common import emit_json, fail
    from soundmates.pipelines.model import train_model

    hp = dict(max_epochs=max_epochs, seed=seed, lr=lr, temperature=temperature, batch_size=batch_size,
              shared_towers=shared_towers, genre_dim=genre_dim, artist_dim=artist_dim, patience=patience)
    try:
        result = train_model(config_file=config, data_version=data_version, **{k: v for k, v in hp.items() if v is not None})
    except Exception as exc:  # noqa: BLE001 - say what failed, exit non-zero
        if as_json:
            emit_json({"error": f"{type(exc).__name__}: {exc}"})
            raise typer.Exit(1)
        fail(f"training failed: {type(exc).__name__}: {exc}", code=1)
        return
    if as_json:
        emit_json(result)
        return
    state = "promoted to current" if result["promoted"] else "kept, NOT served"
    typer.echo(f"model {result['version']} ({state}): {result['reason']}")
    for name, m in result["metrics"]["test"].items():
        if "recall@10" in m:
            typer.echo(f"  test {name:15s} recall@10 {m['recall@10']:.3f}  mrr {m['mrr']:.3f}")
    typer.echo(f"report: {result['report']['html']}")


def evaluate(
    dataset: str = typer.Option("world", "--dataset", help="world (the served model on its held-out users) or hetrec."),
    path: Path = typer.Option(None, "--path", help="HetRec Last.fm 2k folder (default ../shared/data/hetrec2011-lastfm-2k)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the HetRec halves and split."),
    config: Path = typer.Option(None, "--config", help="YAML hyperparameters for the HetRec training."),
    max_epochs: int = typer.Option(None, "--max-epochs", help="Most epochs for the HetRec training."),
    report_dir: Path = typer.Option(None, "--report-dir", help="Where to write evaluation.{json,md,html} (default <data_dir>/reports/<dataset>)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Recall@1/10/50, MRR, NDCG@10 of the model and every baseline on held-out users (+ a report with a plot)."""
    from soundmates.cli._common import emit_json, fail
    from soundmates.pipelines.model import evaluate_model

    if dataset not in ("world", "hetrec"):
        fail(f"--dataset must be 'world' or 'hetrec', got {dataset!r}")
    try:
        hp = {"max_epochs": max_epochs} if max_epochs else {}
        result = evaluate_model(dataset=dataset, path=path, seed=seed, config_file=config, report_dir=report_dir, **hp)
    except Exception as exc:  # noqa: BLE001
        if as_json:
            emit_json({"error": f"{type(exc).__name__}: {exc}"})
            raise typer.Exit(1)
        fail(f"evaluation failed: {type(exc).__name__}: {exc}", code=1)
        return
    if as_json:
        emit_json(result)
        return
    from soundmates.model.evaluate import markdown_table

    typer.echo(markdown_table(result))
    typer.echo(f"report: {result['report']['html']}")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    app.command("train")(train)
    app.command("evaluate")(evaluate)
