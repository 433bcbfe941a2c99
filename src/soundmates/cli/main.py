"""The ``soundmates`` command.

Each stage registers its commands from its own module (``cli/<stage>.py``),
so the entry point stays a list of names and ``soundmates --help`` stays fast:
no module here imports torch, sentence-transformers or airflow at top level.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="soundmates",
    help="Soundmates: find the people whose music taste is closest to yours.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Order = the order of the pipeline, which is also the order in --help.
_STAGE_MODULES = (
    "world",
    "ingest",
    "features",
    "model",
    "index",
    "recommend",
    "export",
    "connect",
    "store",
)

@app.callback()
def _root() -> None:
    """Soundmates: find the people whose music taste is closest to yours."""


@app.command()
def version() -> None:
    """Print the Soundmates version."""
    from soundmates import __version__

    typer.echo(__version__)


for _name in _STAGE_MODULES:
    importlib.import_module(f"soundmates.cli.{_name}").register(app)


def main() -> None:  # pragma: no cover - console script
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
