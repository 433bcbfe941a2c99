"""World generation speed and local Spotify server throughput.

Generation: users.txt + ground truth for 1,000 and 100,000 users (1,000,000 with
SOUNDMATES_BENCH_WORLD_1M=1). Server: a minimal crawler (users -> playlists -> items ->
artists in batches of 50, artists cached) against ``soundmates spotify serve`` running in
its own process, as an ingest would use it; with 4 client threads, 1 thread, and 10% 429s.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import requests

REPO = Path(__file__).resolve().parents[1]


def _generate(out: Path, users: int, seed: int = 7) -> float:
    from soundmates.world.generator import generate_world

    t0 = time.perf_counter()
    generate_world(out, users, seed)
    return time.perf_counter() - t0


class _Served:
    """``soundmates spotify serve`` in a subprocess (its own GIL, like production)."""

    def __init__(self, world: Path, *extra: str):
        cmd = [sys.executable, "-m", "soundmates.cli.main", "spotify", "serve", "--world", str(world), "--port", "0", *extra]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            m = re.search(r"at (http://\S+/v1/)\s+token: (\S+)", line)
            if m:
                self.api, self.token_url = m.group(1), m.group(2)
                return
        self.close()
        raise RuntimeError("server did not start")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _crawl(api: str, token_url: str, user_ids: list[str], threads: int) -> dict:
    tok = requests.post(token_url, data={"grant_type": "client_credentials"}, auth=("b", "b")).json()["access_token"]
    local = threading.local()
    lat: dict[str, list[float]] = defaultdict(list)
    counts = defaultdict(int)
    known_artists: set[str] = set()
    lock = threading.Lock()

    def get(kind: str, url: str, **kw) -> dict:
        if not hasattr(local, "s"):
            local.s = requests.Session()
            local.s.headers["Authorization"] = f"Bearer {tok}"
        for _ in range(20):
            t0 = time.perf_counter()
            r = local.s.get(url, timeout=30, **kw)
            with lock:
                lat[kind].append(time.perf_counter() - t0)
                counts[kind] += 1
            if r.status_code == 429:
                time.sleep(float(r.headers.get("Retry-After", "0")))
                continue
            r.raise_for_status()
            return r.json()
        raise RuntimeError(f"gave up on {url}")

    def one(uid: str) -> None:
        base = f"{api}users/{quote(uid, safe='')}"
        get("user", base)
        url = base + "/playlists?limit=50"
        artists: set[str] = set()
        while url:
            page = get("user_playlists", url)
            for pl in page["items"]:
                iurl = f"{api}playlists/{pl['id']}/items?limit=50"
                while iurl:
                    rows = get("playlist_items", iurl)
                    for row in rows["items"]:
                        item = row.get("item")
                        if item and item.get("type") == "track" and item.get("id"):
                            artists.update(a["id"] for a in item["artists"] if a.get("id"))
                    iurl = rows["next"]
            url = page["next"]
        with lock:
            new = sorted(artists - known_artists)
            known_artists.update(new)
        for i in range(0, len(new), 50):
            get("artists", f"{api}artists", params={"ids": ",".join(new[i : i + 50])})

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, user_ids))
    seconds = time.perf_counter() - t0
    total = sum(counts.values())
    return {
        "users": len(user_ids),
        "threads": threads,
        "seconds": round(seconds, 2),
        "requests": total,
        "requests_per_s": round(total / seconds, 1),
        "users_per_s": round(len(user_ids) / seconds, 1),
        "p50_ms": {k: round(1000 * statistics.median(v), 2) for k, v in lat.items()},
        "p95_ms": {k: round(1000 * sorted(v)[int(0.95 * (len(v) - 1))], 2) for k, v in lat.items()},
        "calls": dict(counts),
    }


def run(out_dir: Path) -> dict:
    gen = {}
    with tempfile.TemporaryDirectory() as tmp:
        sizes = [1_000, 100_000] + ([1_000_000] if os.environ.get("SOUNDMATES_BENCH_WORLD_1M") else [])
        for n in sizes:
            gen[n] = round(_generate(Path(tmp) / f"w{n}", n), 2)
        world = Path(tmp) / "w1000"
        ids = (world / "users.txt").read_text(encoding="utf-8").splitlines()
        crawls = {}
        srv = _Served(world)
        try:
            crawls["full, 4 threads, 1,000 users"] = _crawl(srv.api, srv.token_url, ids, 4)
            crawls["full, 1 thread, 200 users"] = _crawl(srv.api, srv.token_url, ids[:200], 1)
        finally:
            srv.close()
        srv = _Served(world, "--fault-429", "0.1", "--retry-after", "0", "--fault-seed", "1")
        try:
            crawls["10% 429 (Retry-After 0), 4 threads, 200 users"] = _crawl(srv.api, srv.token_url, ids[200:400], 4)
        finally:
            srv.close()
    rows = "\n".join(f"| {n:,} | {s} | {round(n / s):,} |" for n, s in gen.items())
    crawl_rows = "\n".join(
        f"| {name} | {c['requests']:,} | {c['seconds']} | {c['requests_per_s']} | {c['users_per_s']} | "
        f"{c['p50_ms'].get('playlist_items', '-')} | {c['p95_ms'].get('playlist_items', '-')} |"
        for name, c in crawls.items()
    )
    markdown = (
        "World generation (users.txt + hidden-taste ground truth; playlists are derived lazily by the server):\n\n"
        "| users | seconds | users/s |\n|---:|---:|---:|\n" + rows + "\n\n"
        "Local server under a minimal crawler (user, all playlist pages, all item pages at limit 50, new artists in "
        "batches of 50), server in its own process, on the shared 2-core machine:\n\n"
        "| run | requests | seconds | requests/s | users/s | items p50 ms | items p95 ms |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n" + crawl_rows + "\n"
    )
    return {"title": "Local Spotify world and server", "markdown": markdown, "generation_seconds": gen, "crawls": crawls}


if __name__ == "__main__":  # pragma: no cover
    import json

    print(json.dumps(run(REPO / "bench" / "results"), indent=2))
