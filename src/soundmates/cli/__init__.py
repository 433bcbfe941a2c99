"""Command line interface (typer). Heavy imports stay inside the commands."""
