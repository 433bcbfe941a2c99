"""CLI commands of the store stage: ``soundmates store show | inbox | optimize``."""

from __future__ import annotations

import typer

store_app = typer.Typer(
    help="Feature store: feature groups, their versions and rows; the new-users inbox.",
    no_args_is_help=True,
)


def _fail(message: str, as_json: bool, code: int = 1) -> None:
    """Error on stderr; with ``--json`` also the one JSON object on stdout, so scripts can parse it."""
    from soundmates.cli._common import emit_json, fail

    if as_json:
        emit_json({"error": message})
    fail(message, code=code)


def _open_store(as_json: bool = False):
    """The configured store, or a clear CLI error (e.g. Hopsworks selected without an API key)."""
    from soundmates.store import StoreError, get_store

    try:
        return get_store()
    except StoreError as exc:
        _fail(str(exc), as_json)


def _table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@store_app.command("show")
def show(as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout.")) -> None:
    """List feature groups: name, version, rows, data version (commit) and primary key."""
    from soundmates.cli._common import emit_json
    from soundmates.config import get_settings
    from soundmates.store import StoreError

    settings = get_settings()
    store = _open_store(as_json)
    try:
        groups = [g.to_dict() for g in store.groups()]
    except StoreError as exc:
        _fail(str(exc), as_json)
        return
    finally:
        store.close()
    where = str(settings.store_dir) if store.backend == "embedded" else "hopsworks"
    if as_json:
        emit_json({"backend": store.backend, "location": where, "groups": groups})
        return
    typer.echo(f"feature store: {store.backend} ({where})")
    if not groups:
        typer.echo("no feature groups yet: run `soundmates features build` to create them")
        return
    typer.echo(
        _table(
            ["name", "version", "rows", "data_version", "primary_key"],
            [[g["name"], g["version"], g["rows"], g["data_version"], ",".join(g["primary_key"])] for g in groups],
        )
    )


@store_app.command("inbox")
def inbox_cmd(
    status: str = typer.Option(None, "--status", help="Only requests with this status (pending, processing, done, failed)."),
    limit: int = typer.Option(20, "--limit", min=0, help="Show at most this many requests (newest first)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Show the new-users inbox: counts per status and the latest requests."""
    from soundmates.cli._common import emit_json
    from soundmates.store import StoreError, inbox

    if status is not None and status not in inbox.STATUSES:
        _fail(f"--status must be one of {', '.join(inbox.STATUSES)}; got {status!r}", as_json, code=2)
    store = _open_store(as_json)
    try:
        counts = inbox.counts(store)
        entries = [e.to_dict() for e in inbox.latest(store, status=status, limit=limit)]
    except StoreError as exc:
        _fail(str(exc), as_json)
        return
    finally:
        store.close()
    if as_json:
        emit_json({"counts": counts, "entries": entries})
        return
    typer.echo("  ".join(f"{k}: {v}" for k, v in counts.items()))
    if entries:
        typer.echo(
            _table(
                ["user_id", "status", "ref", "source", "updated_at", "reason"],
                [[e["user_id"], e["status"], e["ref"], e["source"], e["updated_at"], e["reason"]] for e in entries],
            )
        )


@store_app.command("optimize")
def optimize(
    group: str = typer.Argument(..., help="Feature group name, e.g. user_features."),
    version: int = typer.Option(1, "--version", min=1, help="Feature group (schema) version."),
    retention_hours: float = typer.Option(
        168.0, "--retention-hours", min=1.0, help="Keep time travel to data versions younger than this."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Compact an embedded group's small files and remove files older than the retention window."""
    from soundmates.cli._common import emit_json
    from soundmates.store import StoreError

    store = _open_store(as_json)
    if not hasattr(store, "optimize"):
        _fail(f"optimize is for the embedded store; the {store.backend} backend compacts on the server", as_json)
    try:
        result = store.optimize(group, version=version, retention_hours=retention_hours)
    except StoreError as exc:
        _fail(str(exc), as_json)
        return
    summary = {
        "group": group,
        "version": version,
        "data_version": result.get("data_version"),
        "files_removed_by_compaction": int((result.get("compacted") or {}).get("numFilesRemoved", 0)),
        "files_added_by_compaction": int((result.get("compacted") or {}).get("numFilesAdded", 0)),
        "files_vacuumed": len(result.get("vacuumed") or []),
    }
    if as_json:
        emit_json(summary)
        return
    typer.echo(
        f"{group} v{version}: compacted {summary['files_removed_by_compaction']} file(s) into "
        f"{summary['files_added_by_compaction']}, vacuumed {summary['files_vacuumed']}; data version {summary['data_version']}"
    )


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    app.add_typer(store_app, name="store")
