"""CLI commands of the index stage: ``soundmates index build`` and ``soundmates index status``."""

from __future__ import annotations

import typer

index_app = typer.Typer(
    help="The user index (Annoy or Voyager): build a new version from stored features, show what is served.",
    no_args_is_help=True,
)


@index_app.command("build")
def build(
    n_trees: int = typer.Option(None, "--n-trees", min=1, help="Annoy trees; default: chosen from the number of users."),
    search_k: int = typer.Option(
        None,
        "--search-k",
        min=1,
        help="Annoy: nodes inspected per query; Voyager: query ef. Default: calibrated so recall@10 >= 0.95.",
    ),
    backend: str = typer.Option(None, "--backend", help="annoy or voyager; default: $SOUNDMATES_INDEX_BACKEND, else annoy."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (version, count, parameters) on stdout."),
) -> None:
    """Embed every stored user with the current model and publish a new index version atomically."""
    from soundmates.cli._common import emit_json, fail
    from soundmates.index.backends import BACKENDS
    from soundmates.pipelines.index import build_index, parameters_text

    if backend is not None and backend.strip().lower() not in BACKENDS:
        fail(f"unknown index backend {backend!r}: choose one of {', '.join(BACKENDS)}", code=2)
    try:
        summary = build_index(n_trees=n_trees, search_k=search_k, progress=True, backend=backend)
    except Exception as exc:  # noqa: BLE001 - say what failed; the previously published version keeps serving
        if as_json:
            emit_json({"error": f"{type(exc).__name__}: {exc}"})
            raise typer.Exit(1) from None
        fail(" ".join(f"index build failed: {exc}".split()), code=1)
        return
    if as_json:
        emit_json(summary)
        return
    p = summary["parameters"]
    state = "" if summary["published"] else f" (not published: {summary['current']} indexes newer data)"
    typer.echo(
        f"index {summary['version']}{state}: {summary['count']:,} users, dim {summary['dim']}, {summary['backend']}, "
        f"model {summary['model_version']}, {parameters_text(summary['parameters'])} "
        f"(recall@10 {p['calibrated_recall_at_10']}) in {summary['seconds']} s"
    )


@index_app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout.")) -> None:
    """Show the served index version, its size and age, the fresh buffer and removals."""
    from soundmates.cli._common import emit_json, fail
    from soundmates.index import IndexCorrupt, RemovalsUnreadable, UserIndex

    try:
        st = UserIndex().status()
    except IndexCorrupt as exc:  # nothing valid to serve: say so, and what to run
        if as_json:
            kind = "removals_unreadable" if isinstance(exc, RemovalsUnreadable) else "index_corrupt"
            emit_json({"error": str(exc), "kind": kind})
            raise typer.Exit(1) from None
        fail(str(exc), code=1)
        return
    if as_json:
        emit_json(st)
        return
    if st["version"] is None:
        typer.echo("no index built yet: run 'soundmates index build'")
    else:
        typer.echo(f"index {st['version']}: {st['count']:,} users, built {st['built_at']}, model {st['model_version']}")
    typer.echo(f"fresh buffer: {st['fresh']} (rebuild due: {st['rebuild_due']}), removed: {st['tombstones']}")
    for w in st["warnings"]:
        typer.echo(f"warning: {w}", err=True)


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    app.add_typer(index_app, name="index")
