"""Small helpers shared by CLI modules."""

from __future__ import annotations

import json
import sys
from typing import Any


def emit_json(obj: Any) -> None:
    """Print exactly one JSON object on stdout (progress bars go to stderr)."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = 2) -> None:
    """One line ``error: ...`` on stderr and exit ``code`` (the message is made one printable line)."""
    import typer

    from soundmates.logs import one_line

    typer.secho(f"error: {one_line(message, limit=1000)}", fg="red", err=True)
    raise typer.Exit(code)


def _is_project_error(exc: BaseException) -> bool:
    """An error class of this package: its message was written for the person running the command."""
    return any(c.__module__.split(".")[0] == "soundmates" for c in type(exc).__mro__)


def error_message(exc: BaseException) -> str:
    """The one line a person reads for ``exc``: the project's own message, or an 'unexpected error'."""
    from soundmates.logs import describe, one_line

    if _is_project_error(exc):
        text = one_line(exc, limit=1000) or one_line(getattr(exc, "reason", "") or "", limit=1000)
        return text or type(exc).__name__
    if isinstance(exc, MemoryError):
        return "out of memory (is the input far larger than expected?); rerun with --debug for details"
    if isinstance(exc, OSError) and exc.filename is not None:
        return (
            f"unexpected error: {exc.strerror or type(exc).__name__}: {one_line(exc.filename, 200)}; "
            "rerun with --debug for details"
        )
    return f"unexpected error: {describe(exc)}; rerun with --debug for details"


def report_error(exc: BaseException, *, as_json: bool = False) -> None:
    """The CLI's one error policy: under ``--debug`` (or ``SOUNDMATES_DEBUG=1``) re-raise, so the
    traceback shows; else one line on stderr (and, with ``--json``, ``{"error": ...}`` on stdout)
    and exit 1.

    Errors of the project's own classes carry a message for people (what was wrong, what to do);
    anything else (OSError, MemoryError, a pydantic ValidationError, ...) is reported as unexpected.
    """
    from soundmates.logs import is_debug

    if is_debug():
        raise exc
    message = error_message(exc)
    if as_json:
        emit_json({"error": message})
    fail(message, code=1)
