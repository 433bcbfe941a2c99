"""CLI commands of the recommend stage (filled in by that stage)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
