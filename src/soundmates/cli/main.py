"""The ``soundmates`` command.

Each stage registers its commands from its own module (``cli/<stage>.py``),
so the entry point stays a list of names and ``soundmates --help`` stays fast:
no module here imports torch, sentence-transformers or airflow at top level.
"""

from __future__ import annotations

import importlib

import typer
from typer.core import TyperGroup

from soundmates.cli._common import report_error


class _SoundmatesGroup(TyperGroup):
    """The root command group: every error of every command ends here as one line and an exit code."""

    def invoke(self, ctx):
        as_json = "--json" in ctx.args
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException, KeyboardInterrupt, SystemExit):
            raise  # exits and usage errors (bad options): typer prints those itself
        except Exception as exc:  # the one top-level handler (see cli/_common.report_error)
            report_error(exc, as_json=as_json)  # re-raises under --debug, else typer.Exit(code)
            raise


app = typer.Typer(
    cls=_SoundmatesGroup,
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
    "taste_map",
    "recommend",
    "blend",
    "feedback",
    "profile",
    "export",
    "connect",
    "store",
)


@app.callback()
def _root(
    debug: bool = typer.Option(
        False, "--debug", envvar="SOUNDMATES_DEBUG", help="Show full tracebacks of errors (also SOUNDMATES_DEBUG=1)."
    ),
) -> None:
    """Soundmates: find the people whose music taste is closest to yours."""
    from soundmates.logs import configure_logging

    # True, or None = follow SOUNDMATES_DEBUG (an earlier in-process --debug run does not stick)
    configure_logging(debug=True if debug else None)


@app.command()
def version() -> None:
    """Print the Soundmates version."""
    from soundmates import __version__

    typer.echo(__version__)


for _name in _STAGE_MODULES:
    importlib.import_module(f"soundmates.cli.{_name}").register(app)


def main() -> None:  # pragma: no cover - console script
    try:
        app()
    except (SystemExit, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - raised before a command ran (e.g. while loading the commands)
        try:
            report_error(exc)  # re-raises under --debug
        except typer.Exit as done:
            raise SystemExit(done.exit_code) from None


if __name__ == "__main__":  # pragma: no cover
    main()
