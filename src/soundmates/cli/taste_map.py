"""CLI command of the taste map: ``soundmates map build`` (after ``soundmates index build``)."""

from __future__ import annotations

import typer

map_app = typer.Typer(help="The taste map: a 2-D layout of the served index for the dashboard.", no_args_is_help=True)


@map_app.command("build")
def build(as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout.")) -> None:
    """Lay out every user of the served index in 2-D (UMAP) and store it beside the index."""
    from soundmates.cli._common import emit_json, fail
    from soundmates.index.layout import LayoutNotBuilt
    from soundmates.pipelines.taste_map import build_map

    try:
        summary = build_map(progress=not as_json)
    except LayoutNotBuilt as exc:
        if as_json:
            emit_json({"error": str(exc)})
            raise typer.Exit(1) from None
        fail(str(exc), code=1)
        return
    if as_json:
        emit_json(summary)
        return
    typer.echo(
        f"map of {summary['index_version']}: {summary['users']:,} users ({summary['method']}), neighbours kept "
        f"{summary['neighbour_preservation@10']} (PCA {summary['pca_neighbour_preservation@10']}) in {summary['seconds']} s"
    )


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    app.add_typer(map_app, name="map")
