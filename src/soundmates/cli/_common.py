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
    import typer

    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)
