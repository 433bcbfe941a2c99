"""Validate the bootstrap DAG's params and cut the user list into ingest batches.

Pure Python (no Airflow, no stages) so the checks run in the UI-triggered task
and in unit tests alike; every error says which param was wrong and what to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MAX_BATCH_SIZE = 10_000


class BootstrapParamsError(ValueError):
    """The bootstrap run's params cannot work; the message names the param."""


def _world_user_ids(world_dir: Path) -> list[str]:
    users_file = world_dir / "users.txt"
    if not users_file.is_file():
        raise BootstrapParamsError(
            f"world_users: no generated world at {world_dir} (missing users.txt). Generate one with "
            f"`soundmates world generate --users N --out {world_dir}` and serve it, or pass `refs` instead."
        )
    return [line.strip() for line in users_file.read_text(encoding="utf-8").splitlines() if line.strip()]


def resolve_refs(
    refs: Any = None,
    world_users: Any = None,
    world_dir: str | Path | None = None,
    *,
    default_world_dir: Path | None = None,
) -> list[str]:
    """The profile references a bootstrap run ingests, from exactly one of ``refs`` or ``world_users``.

    ``refs``: a list of profile references (URLs, ``spotify:user:`` URIs or ids),
    de-duplicated in order. ``world_users``: the first N users of the generated
    world in ``world_dir`` (default: the settings' ``world/``), as ``spotify:user:`` URIs.
    """
    refs = [] if refs is None else refs
    if isinstance(refs, str):
        raise BootstrapParamsError("refs: expected a list of profile references, got one string; wrap it in [ ]")
    if not isinstance(refs, (list, tuple)):
        raise BootstrapParamsError(f"refs: expected a list of profile references, got {type(refs).__name__}")
    bad = [r for r in refs if not isinstance(r, str) or not r.strip()]
    if bad:
        raise BootstrapParamsError(f"refs: every reference must be a non-empty string; bad entries: {bad[:5]!r}")
    cleaned = list(dict.fromkeys(r.strip() for r in refs))

    if world_users in (None, "", 0) and not cleaned:
        raise BootstrapParamsError(
            "nothing to ingest: pass `refs` (a list of Spotify profile references) or `world_users` "
            "(how many users of the generated world to ingest)"
        )
    if world_users not in (None, "", 0) and cleaned:
        raise BootstrapParamsError("pass either `refs` or `world_users`, not both")
    if cleaned:
        return cleaned

    try:
        n = int(world_users)
    except (TypeError, ValueError):
        raise BootstrapParamsError(f"world_users: expected a positive integer, got {world_users!r}") from None
    if n < 1 or isinstance(world_users, bool):
        raise BootstrapParamsError(f"world_users: expected a positive integer, got {world_users!r}")
    directory = Path(world_dir) if world_dir else default_world_dir
    if directory is None:
        raise BootstrapParamsError("world_dir: no world directory given and no default configured")
    ids = _world_user_ids(directory)
    if n > len(ids):
        raise BootstrapParamsError(
            f"world_users: asked for {n} users but the world at {directory} has only {len(ids)}; "
            f"ask for at most {len(ids)} or generate a bigger world"
        )
    return [f"spotify:user:{uid}" for uid in ids[:n]]


def batches(refs: list[str], batch_size: Any) -> list[list[str]]:
    """Consecutive batches of at most ``batch_size`` references (one mapped ingest task each)."""
    try:
        size = int(batch_size)
    except (TypeError, ValueError):
        raise BootstrapParamsError(f"batch_size: expected an integer, got {batch_size!r}") from None
    if not 1 <= size <= MAX_BATCH_SIZE:
        raise BootstrapParamsError(f"batch_size: expected 1..{MAX_BATCH_SIZE}, got {size}")
    return [refs[i : i + size] for i in range(0, len(refs), size)]
