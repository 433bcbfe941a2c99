"""CLI of the world stage: ``soundmates world generate|describe`` and ``soundmates spotify serve``.

Heavy work is imported inside the commands, so ``soundmates --help`` stays fast.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import typer

from soundmates.cli._common import emit_json, fail

world_app = typer.Typer(help="Generate and inspect the local Spotify world.", no_args_is_help=True)
spotify_app = typer.Typer(help="The local Spotify-compatible Web API server.", no_args_is_help=True)


def _default_world_dir() -> Path:
    from soundmates.config import get_settings

    return get_settings().world_dir


@world_app.command("generate")
def generate(
    users: int = typer.Option(1000, "--users", "-n", help="Number of users (1 .. 1,000,000)."),
    seed: int = typer.Option(7, "--seed", "-s", help="Random seed: the same seed gives the same world, byte for byte."),
    out: Path | None = typer.Option(None, "--out", "-o", help="World directory (default: $SOUNDMATES_DATA_DIR/world)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (the world summary) on stdout."),
) -> None:
    """Write users.txt, world.json and the hidden ground truth of a deterministic world."""
    import time

    from tqdm import tqdm

    from soundmates.world.generator import MAX_USERS, generate_world

    if not 1 <= users <= MAX_USERS:
        fail(f"--users must be between 1 and {MAX_USERS:,}, got {users}")
    if seed < 0:
        fail(f"--seed must be a non-negative integer, got {seed}")
    out_dir = out or _default_world_dir()
    if out_dir.exists() and not out_dir.is_dir():
        fail(f"--out {out_dir} exists and is not a directory")
    started = time.perf_counter()
    with tqdm(total=users, unit="user", desc="world", file=sys.stderr, disable=users < 20_000) as bar:
        meta = generate_world(out_dir, users, seed, progress=bar.update)
    summary = {
        "world": str(out_dir),
        "users": meta["users"],
        "seed": meta["seed"],
        "users_file": str(out_dir / "users.txt"),
        "seconds": round(time.perf_counter() - started, 3),
    }
    if as_json:
        emit_json(summary)
    else:
        typer.echo(f"world of {users:,} users (seed {seed}) written to {out_dir} in {summary['seconds']} s", err=True)


@world_app.command("describe")
def describe(
    user_id: str = typer.Argument(..., help="A user id exactly as in users.txt."),
    world: Path | None = typer.Option(None, "--world", "-w", help="World directory (default: $SOUNDMATES_DATA_DIR/world)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """What the server will serve for one user: playlists, items, episodes, local files, null rows."""
    from soundmates.world.generator import WorldError, describe_user

    try:
        info = describe_user(world or _default_world_dir(), user_id)
    except WorldError as exc:
        fail(str(exc))
    except KeyError as exc:
        fail(str(exc.args[0]))
    if as_json:
        emit_json(info)
        return
    info.pop("playlist_detail")
    for k, v in info.items():
        typer.echo(f"{k:20} {v}")


@spotify_app.command("serve")
def serve(
    world: Path | None = typer.Option(None, "--world", "-w", help="World directory (default: $SOUNDMATES_DATA_DIR/world)."),
    port: int = typer.Option(8765, "--port", "-p", help="TCP port (0 = any free port)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (keep it on loopback)."),
    mode: str = typer.Option("full", "--mode", help="full (extended quota) or development (Feb 2026 restrictions)."),
    fault_429: float = typer.Option(0.0, "--fault-429", help="Fraction of API requests answering 429 with Retry-After."),
    fault_5xx: float = typer.Option(0.0, "--fault-5xx", help="Fraction answering 500/502/503."),
    fault_drop: float = typer.Option(0.0, "--fault-drop", help="Fraction whose connection is closed without an answer."),
    retry_after: int = typer.Option(1, "--retry-after", help="Retry-After seconds sent with a 429."),
    latency_ms: float = typer.Option(0.0, "--latency-ms", help="Added latency per API request, in ms."),
    fault_seed: int = typer.Option(0, "--fault-seed", help="Seed of the fault decisions (same seed, same faults)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every request to stderr."),
) -> None:
    """Serve a world as a Spotify-compatible Web API until SIGINT/SIGTERM."""
    from soundmates.world.generator import WorldError
    from soundmates.world.server import MODES, FaultConfig, SpotifyServer

    if mode not in MODES:
        fail(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    try:
        faults = FaultConfig(
            rate_429=fault_429,
            rate_5xx=fault_5xx,
            rate_drop=fault_drop,
            retry_after=retry_after,
            latency_ms=latency_ms,
            seed=fault_seed,
        )
    except ValueError as exc:
        fail(str(exc))
    world_dir = world or _default_world_dir()
    try:
        server = SpotifyServer(world_dir, host=host, port=port, mode=mode, faults=faults, verbose=verbose)
        server.start()
    except WorldError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")

    def _stop(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    typer.echo(f"serving {world_dir} ({mode} mode) at {server.api_url}  token: {server.token_url}", err=True)
    typer.echo(f"SOUNDMATES_SPOTIFY_API_URL={server.api_url} SOUNDMATES_SPOTIFY_TOKEN_URL={server.token_url}", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        typer.echo("stopping", err=True)
    finally:
        server.stop()


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    app.add_typer(world_app, name="world")
    app.add_typer(spotify_app, name="spotify")
