"""Ingest: API calls per user against the lower bound, and users/s, on a 1,000-user local world.

The lower bound per user is ``1 (user) + playlist pages + sum(ceil(items/50)) + ceil(new artists/50)``
with "new artists" = artists no earlier user of the run had; it is computed from what the
world serves (``describe_user``) and the artist ids of the stored profiles, in ingest order.
Two runs side by side, each on a fresh data dir and a fresh in-process server: no faults,
and 10% of requests answered 429 with ``Retry-After: 0`` (a 1 s Retry-After on 10% of ~15k
requests would only measure sleeping).

Server capacity on its own: the requests an ingest makes (every user, playlist page and item
page of the world, each once, so the render caches are as cold as in a real run), sent by a
bounded load generator in a child process (``SERVER_LOAD_THREADS`` keep-alive connections), the
server in this process; requests/s and the server process's CPU ms per request.

    python -m bench.bench_ingest --capacity-only     # just the server capacity (any PYTHONPATH: before/after)
"""

from __future__ import annotations

import json
import math
import multiprocessing
import shutil
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

N_USERS = int(__import__("os").environ.get("SOUNDMATES_BENCH_INGEST_USERS", "1000"))
SEED = 11
RATE_429 = 0.10
RETRY_AFTER_S = 0
SERVER_LOAD_THREADS = 4
CAPACITY_USERS = 300
THROUGHPUT_WORKERS = (1, 6)  # SOUNDMATES_INGEST_WORKERS: one by one, and the default
SERVER_WARMUP_USERS = 20  # users served before timing (imports, catalog, first-request costs), not timed again


def _world_pages(world_dir: Path, user_ids: list[str]) -> dict[str, tuple[int, int]]:
    """Per user, from what the world serves: (playlist listing pages, item pages)."""
    from soundmates.world.generator import World

    world = World(world_dir)
    out = {}
    for uid in user_ids:
        pls = world.playlists(world.user_index(uid))
        out[uid] = (max(1, math.ceil(len(pls) / 50)), sum(math.ceil(p.total / 50) for p in pls))
    return out


def _lower_bound(pages: dict[str, tuple[int, int]], user_ids: list[str], profiles_dir: Path) -> dict:
    """1 + playlist pages + sum(ceil(items/50)) + ceil(new artists/50) per user, in ingest order.

    The artists of a user are those of the stored profile (users without one fetch no artists);
    a sample is checked against the world's own count in :func:`_check_artist_counts`.
    """
    from soundmates.profiles import ProfileRepository

    repo = ProfileRepository(profiles_dir)
    seen: set[str] = set()
    parts = {"user": 0, "user_playlists": 0, "playlist_items": 0, "artists": 0}
    for uid in user_ids:
        parts["user"] += 1
        parts["user_playlists"] += pages[uid][0]
        parts["playlist_items"] += pages[uid][1]
        prof = repo.load(uid)
        if prof is not None:
            new = set(prof.artists) - seen
            parts["artists"] += math.ceil(len(new) / 50)
            seen |= new
    return {"parts": parts, "total": sum(parts.values()), "distinct_artists": len(seen)}


def _check_artist_counts(world_dir: Path, user_ids: list[str], profiles_dir: Path, sample: int = 40) -> int:
    """How many of a sample of stored profiles disagree with the world on their number of artists."""
    from soundmates.profiles import ProfileRepository
    from soundmates.world.generator import World, describe_user

    world, repo = World(world_dir), ProfileRepository(profiles_dir)
    stored = [u for u in user_ids[:: max(1, len(user_ids) // sample)] if repo.exists(u)][:sample]
    return sum(1 for u in stored if len(repo.load(u).artists) != describe_user(world, u)["distinct_artists"])


def _one_run(world_dir: Path, user_ids: list[str], pages: dict, data_dir: Path, faults) -> dict:
    from soundmates.config import Settings, SpotifyCredentials
    from soundmates.spotify.client import SpotifyClient
    from soundmates.spotify.ingest import Ingestor
    from soundmates.world.server import SpotifyServer

    with SpotifyServer(world_dir, port=0, mode="full", faults=faults) as server:
        settings = Settings(data_dir=data_dir, spotify_api_url=server.api_url, spotify_token_url=server.token_url)
        client = SpotifyClient(settings, SpotifyCredentials(client_id="bench", client_secret="bench"))
        ingestor = Ingestor(settings, client=client)
        t0 = time.perf_counter()
        summary = ingestor.ingest_many(user_ids, progress=sys.stderr.isatty())
        wall = time.perf_counter() - t0
        server_stats = server.stats()
    bound = _lower_bound(pages, user_ids, settings.profiles_dir)
    bound["artist_count_mismatches_in_sample"] = _check_artist_counts(world_dir, user_ids, settings.profiles_dir)
    retried_429 = summary.retries.get("429", 0)
    return {
        "ingested": summary.ingested,
        "failed": len(summary.failed),
        "failed_reasons": sorted({f.reason.split(":")[0] for f in summary.failed}),
        "requests": summary.api_calls,
        "calls_without_retries": summary.api_calls - sum(summary.retries.values()),
        "retried": summary.retries,
        "retried_429": retried_429,
        "calls_by_endpoint": summary.calls_by_endpoint,
        "token_requests": summary.token_requests,
        "server_stats": server_stats,
        "lower_bound": bound,
        "wall_s": round(wall, 2),
        "users_per_s": round(len(user_ids) / wall, 1),
    }


def _ingest_urls(world_dir: Path, users: range) -> list[str]:
    """The paths an ingest requests for these users (user, playlist pages, item pages; limit 50, its ``fields``)."""
    from soundmates.spotify.parsing import ITEM_FIELDS
    from soundmates.world.generator import World

    fields = quote(ITEM_FIELDS, safe="")
    world = World(world_dir)
    out = []
    for i in users:
        q = quote(world.user_ids[i], safe="")
        pls = world.playlists(i)
        out.append(f"/v1/users/{q}")
        out += [f"/v1/users/{q}/playlists?offset={o}&limit=50" for o in range(0, max(1, len(pls)), 50)]
        out += [f"/v1/playlists/{p.id}/items?offset={o}&limit=50&fields={fields}" for p in pls for o in range(0, p.total, 50)]
    return out


def _load(port: int, token: str, urls: list[str], threads: int, conn) -> None:
    """Child process: GET every url once over ``threads`` keep-alive connections; send (n, non-200, wall)."""
    import http.client
    import threading

    counts, bad = [0] * threads, [0] * threads

    def work(k: int) -> None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for u in urls[k::threads]:
            c.request("GET", u, headers={"Authorization": f"Bearer {token}"})
            r = c.getresponse()
            r.read()
            counts[k] += 1
            bad[k] += r.status != 200
        c.close()

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    conn.send((sum(counts), sum(bad), time.perf_counter() - t0))


def server_capacity(world_dir: Path, n_users: int, threads: int = SERVER_LOAD_THREADS) -> dict:
    """Requests/s of the local server alone under a bounded loopback load (see the module docstring)."""
    import requests

    from soundmates.world.server import SpotifyServer

    ctx = multiprocessing.get_context("spawn")
    with SpotifyServer(world_dir, port=0, mode="full") as server:
        token = requests.post(server.token_url, data={"grant_type": "client_credentials"}, auth=("b", "b"), timeout=30).json()[
            "access_token"
        ]
        n_world = server.world.n_users
        warm = _ingest_urls(world_dir, range(max(0, n_world - SERVER_WARMUP_USERS), n_world))
        timed = _ingest_urls(world_dir, range(min(n_users, n_world - SERVER_WARMUP_USERS)))
        results = []
        for urls in (warm, timed):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_load, args=(server.port, token, urls, threads, child))
            proc.start()
            cpu0 = time.process_time()  # this process = the server's threads (the client is the child)
            n, bad, wall = parent.recv()
            cpu = time.process_time() - cpu0
            proc.join(30)
            results.append((n, bad, wall, cpu))
    n, bad, wall, cpu = results[1]
    return {
        "users": min(n_users, n_world - SERVER_WARMUP_USERS),
        "requests": n,
        "non_200": bad,
        "threads": threads,
        "wall_s": round(wall, 2),
        "requests_per_s": round(n / wall, 1),
        "server_cpu_ms_per_request": round(cpu / n * 1000, 3),
        "server_cpu_bound_requests_per_s": round(n / cpu, 1),
    }


def _serve(world_dir: Path, conn, latency_ms: float = 0.0) -> None:
    """Child process: the local server on an ephemeral port until told to stop; sends its URLs, then its stats.

    ``latency_ms``: every answer delayed that long (the fault mode), as a remote API's round trip would be.
    """
    from soundmates.world.server import FaultConfig, SpotifyServer

    faults = FaultConfig(latency_ms=latency_ms) if latency_ms else None
    with SpotifyServer(world_dir, port=0, mode="full", faults=faults) as server:
        conn.send((server.api_url, server.token_url))
        conn.recv()
        conn.send(server.stats())


def ingest_throughput(world_dir: Path, user_ids: list[str], data_dir: Path, workers: int, latency_ms: float = 0.0) -> dict:
    """Users/s of ``ingest_many`` with ``workers`` threads, the server in its own process (as in ``make run``)."""
    from soundmates.config import Settings, SpotifyCredentials
    from soundmates.spotify.client import SpotifyClient
    from soundmates.spotify.ingest import Ingestor

    parent, child = multiprocessing.get_context("spawn").Pipe()
    proc = multiprocessing.get_context("spawn").Process(target=_serve, args=(world_dir, child, latency_ms))
    proc.start()
    try:
        api_url, token_url = parent.recv()
        settings = Settings(data_dir=data_dir, spotify_api_url=api_url, spotify_token_url=token_url, ingest_workers=workers)
        client = SpotifyClient(settings, SpotifyCredentials(client_id="bench", client_secret="bench"))
        t0 = time.perf_counter()
        summary = Ingestor(settings, client=client).ingest_many(user_ids, progress=sys.stderr.isatty())
        wall = time.perf_counter() - t0
        parent.send("stop")
        parent.recv()
    finally:
        proc.join(30)
    return {
        "workers": workers,
        "latency_ms": latency_ms,
        "users": len(user_ids),
        "ingested": summary.ingested,
        "failed": len(summary.failed),
        "requests": summary.api_calls,
        "calls_by_endpoint": summary.calls_by_endpoint,
        "wall_s": round(wall, 2),
        "users_per_s": round(len(user_ids) / wall, 1),
        "requests_per_s": round(summary.api_calls / wall, 1),
    }


def run(out_dir: Path) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        return _run_in(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # ~2 MB of raw pages per user and run


def _run_in(tmp: Path) -> dict:
    from soundmates.world.generator import generate_world
    from soundmates.world.server import FaultConfig

    world_dir = tmp / "world"
    t0 = time.perf_counter()
    generate_world(world_dir, N_USERS, SEED)
    gen_s = time.perf_counter() - t0
    user_ids = [u for u in (world_dir / "users.txt").read_text(encoding="utf-8").splitlines() if u]
    pages = _world_pages(world_dir, user_ids)

    capacity = server_capacity(world_dir, CAPACITY_USERS)
    # One worker vs the default pool, the server in its own process (as under `make run`), side by side.
    throughput = [ingest_throughput(world_dir, user_ids, tmp / f"workers-{w}", w) for w in THROUGHPUT_WORKERS]
    runs = {
        "no faults": _one_run(world_dir, user_ids, pages, tmp / "clean", None),
        f"{RATE_429:.0%} 429 (Retry-After {RETRY_AFTER_S} s)": _one_run(
            world_dir, user_ids, pages, tmp / "faults", FaultConfig(rate_429=RATE_429, retry_after=RETRY_AFTER_S, seed=SEED)
        ),
    }
    rows = []
    for label, r in runs.items():
        lb = r["lower_bound"]["total"]
        r["ratio_requests"] = round(r["requests"] / lb, 3)
        r["ratio_calls"] = round(r["calls_without_retries"] / lb, 3)
        rows.append(
            f"| {label} | {r['ingested']} / {r['failed']} | {lb / N_USERS:.2f} | {r['calls_without_retries'] / N_USERS:.2f} "
            f"| **{r['ratio_calls']:.3f}×** | {r['requests'] / N_USERS:.2f} | {r['ratio_requests']:.3f}× "
            f"| {r['retried_429']} | {r['users_per_s']:.1f} | {r['wall_s']:.1f} |"
        )
    clean = runs["no faults"]
    parts = clean["lower_bound"]["parts"]
    markdown = "\n".join(
        [
            f"A {N_USERS:,}-user world (seed {SEED}, generated in {gen_s:.1f} s), served by the in-process local server, "
            "ingested from scratch (fresh data dir) in one process, both runs side by side.",
            "Lower bound per user = 1 + playlist pages + Σ⌈items/50⌉ + ⌈new artists/50⌉ (from the world and the stored profiles). "
            '*Calls* exclude the requests repeated after a retried 429 (each is unavoidable: the API said "again"); '
            "*requests* are everything sent. Goal: calls ≤ 1.1× the bound.",
            "",
            "| run | ingested / failed | bound calls/user | calls/user | calls ÷ bound | requests/user | requests ÷ bound | 429s retried | users/s | wall s |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"Bound parts (no faults, all users): user {parts['user']}, playlist pages {parts['user_playlists']}, item pages {parts['playlist_items']}, "
            f"artist batches {parts['artists']} ({clean['lower_bound']['distinct_artists']} distinct artists). "
            f"Calls by endpoint: {clean['calls_by_endpoint']}. Failed users are the world's users without public playlists or tracks "
            f"({', '.join(clean['failed_reasons']) or 'none'}).",
            "",
            f"Server alone (the requests an ingest makes for {capacity['users']} users, each once: {capacity['requests']:,} requests, "
            f"{capacity['threads']} keep-alive client threads in a child process, the server in this one): "
            f"**{capacity['requests_per_s']:.0f} requests/s**, {capacity['server_cpu_ms_per_request']:.2f} ms server CPU per request "
            f"(= {capacity['server_cpu_bound_requests_per_s']:.0f} requests/s per core of server CPU), {capacity['non_200']} non-200. "
            f"Goal ≥ 600 requests/s on 2 cores.",
            "",
            "Ingest with the server in its own process (as under `make run`), fresh data dir each, side by side: "
            + "; ".join(
                f"{t['workers']} worker{'s' if t['workers'] > 1 else ''}: **{t['users_per_s']:.1f} users/s** "
                f"({t['requests_per_s']:.0f} requests/s, {t['wall_s']:.0f} s)"
                for t in throughput
            )
            + ". Goal ≥ 50 users/s.",
        ]
    )
    return {
        "title": "Ingest: API calls vs lower bound, users/s",
        "markdown": markdown,
        "users": N_USERS,
        "generate_s": round(gen_s, 2),
        "runs": runs,
        "server_capacity": capacity,
        "throughput": throughput,
    }


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="ingest / local-server benchmark")
    ap.add_argument("--capacity-only", action="store_true", help="only the server capacity, printed as JSON")
    ap.add_argument("--users", type=int, default=CAPACITY_USERS)
    ap.add_argument("--latency-ms", type=float, default=0.0, help="with --throughput: delay every answer (a remote API)")
    ap.add_argument("--throughput-users", type=int, default=0, help="with --throughput: the first N users (0 = all)")
    ap.add_argument(
        "--throughput", type=str, default="", help="worker counts, e.g. 1,6: ingest users/s, server in a child process"
    )
    args = ap.parse_args()
    if args.throughput:
        from soundmates.world.generator import generate_world

        with tempfile.TemporaryDirectory(prefix="bench-throughput-") as d:
            generate_world(Path(d) / "world", N_USERS, SEED)
            ids = [u for u in (Path(d) / "world" / "users.txt").read_text(encoding="utf-8").splitlines() if u]
            for w in (int(x) for x in args.throughput.split(",")):
                some = ids[: args.throughput_users or None]
                t = ingest_throughput(Path(d) / "world", some, Path(d) / f"data-{w}", w, args.latency_ms)
                print(json.dumps(t), flush=True)
    elif args.capacity_only:
        from soundmates.world.generator import generate_world

        with tempfile.TemporaryDirectory(prefix="bench-capacity-") as d:
            generate_world(Path(d) / "world", N_USERS, SEED)
            print(json.dumps(server_capacity(Path(d) / "world", args.users)))
    else:
        print(json.dumps(run(Path("bench/results")), indent=2, default=str))
