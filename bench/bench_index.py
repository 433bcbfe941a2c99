"""Index benchmark: Annoy and Voyager vs numpy brute force at 10k, 100k and 1M users; new-user end-to-end latency.

Part 1 (synthetic, 64-d clustered embeddings, like a two-tower model's output): build time,
index size, calibrated parameters, recall@10 of held-out users (not in the index) against exact
search, and query latency p50/p99 of ``UserIndex.query`` (what the recommender calls, with the
per-query version check) next to numpy brute force over the same matrix, measured side by side.

Part 2 (local Spotify server): a user with ~20 playlists who is not stored is recommended for
live, end to end (ingest over HTTP, features, embedding, search, reasons) with warm caches
(encoder loaded, text cache and artist cache filled by a first run).

    python -m bench.run_all --only index
    SOUNDMATES_BENCH_INDEX_SIZES=10000,100000 python -m bench.run_all --only index   # quicker
    python -m bench.bench_index              # the same, writes bench/results/index.json (not REPORT.md)
    SOUNDMATES_BENCH_INDEX_SIZES=100000 SOUNDMATES_BENCH_E2E_RUNS=0 python -m bench.bench_index --print-only   # quick
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 64
CLUSTERS = 500
N_QUERIES_ANN = 300
N_QUERIES_BRUTE = 60
SIZES = tuple(int(s) for s in os.environ.get("SOUNDMATES_BENCH_INDEX_SIZES", "10000,100000,1000000").split(","))
E2E_RUNS = int(os.environ.get("SOUNDMATES_BENCH_E2E_RUNS", "12"))  # 0 = skip the end-to-end part
BACKENDS = tuple(os.environ.get("SOUNDMATES_BENCH_INDEX_BACKENDS", "annoy,voyager").split(","))


def _log(msg: str) -> None:
    print(f"bench index: {msg}", file=sys.stderr, flush=True)


def clustered(n: int, seed: int, centres: np.ndarray) -> np.ndarray:
    """Users around taste clusters with individual spread (within-cluster cosine ~0.5), unit length."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    step = 100_000
    for s in range(0, n, step):
        m = min(step, n - s)
        x = centres[rng.integers(0, len(centres), m)] + rng.normal(size=(m, DIM)).astype(np.float32)
        out[s : s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _brute_once(data: np.ndarray, q: np.ndarray) -> float:
    t = time.perf_counter()
    sims = data @ q
    top = np.argpartition(-sims, 10)[:10]
    top[np.argsort(-sims[top])]
    return time.perf_counter() - t


def bench_backend(backend: str, n: int, data_path: Path, queries: np.ndarray, exact: np.ndarray, root: Path) -> dict:
    """Build, size, recall@10 of held-out users and ``UserIndex.query`` latency for one backend.

    Queries are timed in fresh processes that open the published index as a serving process does:
    one started as ``make run`` and docker-compose start them (huge pages asked for, see
    ``soundmates.index.huge_pages``), one without, side by side.
    """
    from soundmates.index import UserIndex, huge_pages, recall_at_k

    data = np.load(data_path)
    ids = [f"u{i}" for i in range(n)]
    index_root = root / f"idx-{backend}-{n}"
    index = UserIndex(root=index_root, backend=backend)
    _log(f"{backend} {n:,}: building")
    t0 = time.perf_counter()
    version = index.build(ids, data)
    build_s = time.perf_counter() - t0
    del data
    m = index.manifest()
    size_mb = sum(f.stat().st_size for f in (index.versions_dir / version).iterdir()) / 2**20
    del index
    qpath = root / "queries.npy"
    np.save(qpath, queries)
    served = _timed_queries(index_root, data_path, qpath, huge=True)
    plain = _timed_queries(index_root, data_path, qpath, huge=False)
    params = {k: m[k] for k in ("n_trees", "search_k", "M", "ef_construction", "ef") if k in m}
    row = {
        "backend": backend,
        "users": n,
        "recall@10": round(recall_at_k(served.pop("approx"), exact), 4),
        **served,
        "build_s": round(build_s, 2),
        "ann_build_s": m["build_seconds"],
        "mb": round(size_mb, 1),
        "parameters": params,
        "calibration_recall": m["calibration"]["recall_at_k"],
        "thp_mode": huge_pages.kernel_mode(),
    }
    plain.pop("approx")
    row["speedup_p50"] = round(row["brute_p50_ms"] / row["p50_ms"], 1)
    row["without_huge_pages"] = {**plain, "speedup_p50": round(plain["brute_p50_ms"] / plain["p50_ms"], 1)}
    row["serving_rss"] = serving_rss(index_root, qpath)
    _log(f"{backend} {n:,}: {row}")
    shutil.rmtree(index_root, ignore_errors=True)
    return row


def _child(args: list[str], huge: bool) -> dict:
    """Run ``python -m bench.bench_index ARGS`` in a fresh process (with or without huge pages); its JSON line."""
    import json
    import subprocess

    from soundmates.index.huge_pages import SERVING_TUNABLES

    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    if huge:
        env["GLIBC_TUNABLES"] = SERVING_TUNABLES
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_index", *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _timed_queries(index_root: Path, data_path: Path, qpath: Path, huge: bool) -> dict:
    return _child(["--time-queries", str(index_root), str(data_path), str(qpath)], huge)


def _time_queries_child(index_root: str, data_path: str, queries_path: str) -> dict:
    """The child of :func:`_timed_queries`: ``UserIndex.query`` p50/p99 beside brute force over the same matrix."""
    from soundmates.index import UserIndex, huge_pages

    data = np.load(data_path)  # in this process's memory, as the brute-force baseline would hold it
    queries = np.load(queries_path)
    index = UserIndex(root=Path(index_root))
    index.query(queries[0], 10)  # first query maps/loads the file and verifies the checksum: not a steady-state cost
    lat, approx, brute_lat = [], [], []
    # Interleaved in blocks (60 index queries, then 12 brute-force ones), so the shared machine's load hits
    # both alike; in blocks, not one by one, as each brute-force scan evicts the index from the CPU caches.
    block = len(queries) // (N_QUERIES_BRUTE // 12)
    for i, q in enumerate(queries):
        t = time.perf_counter()
        res = index.query(q, 10)
        lat.append(time.perf_counter() - t)
        approx.append([int(u[1:]) for u, _ in res])
        if (i + 1) % block == 0:
            brute_lat += [_brute_once(data, b) for b in queries[i + 1 - block : i + 1 : block // 12]]
    return {
        "p50_ms": round(_pct(lat, 50) * 1e3, 3),
        "p99_ms": round(_pct(lat, 99) * 1e3, 3),
        "brute_p50_ms": round(_pct(brute_lat, 50) * 1e3, 3),
        "brute_p99_ms": round(_pct(brute_lat, 99) * 1e3, 3),
        "huge_pages": huge_pages.in_use(),
        "approx": approx,
    }


def serving_rss(index_root: Path, qpath: Path) -> dict:
    """Resident memory of a fresh serving process (huge pages asked for, as served): the recommend package
    imported, then this index opened and every query answered (its own process: nothing of the build counts)."""
    return _child(["--serving-rss", str(index_root), str(qpath)], huge=True)


def _serving_rss_child(index_root: str, queries_path: str) -> dict:
    """The child of :func:`serving_rss`: RSS after the imports, after the first query, and the peak, in MB."""
    import soundmates.recommend  # noqa: F401 - what a serving process holds besides the index
    from soundmates.index import UserIndex

    def status_mb(field: str) -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
        return float("nan")

    queries = np.load(queries_path)
    before = status_mb("VmRSS")
    index = UserIndex(root=Path(index_root))
    index.query(queries[0], 10)
    opened = status_mb("VmRSS")
    for q in queries:
        index.query(q, 10)
    return {
        "imports_mb": before,
        "opened_mb": opened,
        "after_queries_mb": status_mb("VmRSS"),
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent (the benchmark, GBs)
        "peak_mb": status_mb("VmHWM"),
        "queries": int(len(queries)),
    }


def bench_size(n: int, root: Path) -> list[dict]:
    """One row per backend for ``n`` users: same data, same queries, same brute-force baseline."""
    from soundmates.index import exact_top_k

    centres = np.random.default_rng(0).normal(size=(CLUSTERS, DIM)).astype(np.float32)
    data = clustered(n, 1, centres)
    queries = clustered(N_QUERIES_ANN, 2, centres)  # newcomers: same population, not indexed
    _log(f"{n:,}: exact top-10 of {N_QUERIES_ANN} queries")
    exact = exact_top_k(data, queries, 10)
    data_path = root / f"data-{n}.npy"
    np.save(data_path, data)
    del data
    try:
        return [bench_backend(b, n, data_path, queries, exact, root) for b in BACKENDS]
    finally:
        data_path.unlink(missing_ok=True)


def bench_new_user(root: Path) -> dict:
    """p50/p95 of Recommender.recommend for a not-stored user with ~20 playlists, warm caches."""
    from soundmates.config import Settings
    from soundmates.world.generator import describe_user, generate_world
    from soundmates.world.server import SpotifyServer

    world = root / "world"
    generate_world(world, 400, 5)
    ids = (world / "users.txt").read_text().splitlines()
    by_pl = sorted(ids, key=lambda u: abs(describe_user(world, u).get("playlists", 0) - 20))
    newcomer = by_pl[0]
    desc = describe_user(world, newcomer)
    n_playlists = desc["playlists"]
    stored = [u for u in ids if u != newcomer][:30]
    with SpotifyServer(world, port=0) as srv:
        os.environ.update(
            SOUNDMATES_SPOTIFY_API_URL=srv.api_url,
            SOUNDMATES_SPOTIFY_TOKEN_URL=srv.token_url,
            SPOTIPY_CLIENT_ID=os.environ.get("SPOTIPY_CLIENT_ID", "bench"),
            SPOTIPY_CLIENT_SECRET=os.environ.get("SPOTIPY_CLIENT_SECRET", "bench"),
        )
        settings = Settings(data_dir=root / "data", spotify_api_url=srv.api_url, spotify_token_url=srv.token_url)
        from soundmates.pipelines import build_features, build_index, ingest_users
        from soundmates.recommend import Recommender

        _log(f"e2e: ingesting {len(stored)} stored users")
        ingest_users(stored, settings=settings, progress=False)
        build_features(settings)
        summary = build_index(settings, progress=False)
        rec = Recommender(settings)
        _log(f"e2e: warm-up for {newcomer} ({n_playlists} playlists)")
        t = time.perf_counter()
        first = rec.recommend(newcomer, k=10)
        cold_s = time.perf_counter() - t
        lat = []
        for _ in range(E2E_RUNS):
            rec.live.clear()  # every run fetches and featurises again, as a new visitor would
            t = time.perf_counter()
            rec.recommend(newcomer, k=10)
            lat.append(time.perf_counter() - t)
    return {
        "user_playlists": n_playlists,
        "user_tracks": desc["tracks"],
        "stored_users": summary["count"],
        "model_version": summary["model_version"],
        "first_run_s": round(cold_s, 3),
        "runs": len(lat),
        "p50_s": round(_pct(lat, 50), 3),
        "p95_s": round(_pct(lat, 95), 3),
        "matches": len(first.matches),
        "known": first.known,
    }


def run(out_dir: Path) -> dict:
    root = Path(tempfile.mkdtemp(prefix="soundmates-bench-index-"))
    load_before = os.getloadavg()[0]
    try:
        rows = [row for n in SIZES for row in bench_size(n, root)]
        try:
            e2e = bench_new_user(root) if E2E_RUNS > 0 else {"error": "skipped (SOUNDMATES_BENCH_E2E_RUNS=0)"}
        except Exception as exc:  # noqa: BLE001 - the ANN table stands on its own; say why the e2e part is missing
            _log(f"e2e failed: {type(exc).__name__}: {exc}")
            e2e = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        shutil.rmtree(root, ignore_errors=True)

    load_after = os.getloadavg()[0]
    from soundmates.index import huge_pages
    from soundmates.index import voyager_backend as vb
    from soundmates.index.huge_pages import SERVING_TUNABLES
    from soundmates.index.tuning import CALIBRATION_MARGIN, CALIBRATION_QUERIES, TARGET_RECALL

    lines = [
        f"Machine load average {load_before:.1f} at the start, {load_after:.1f} at the end "
        f"({os.cpu_count()} cores, shared): latencies are noisy, ratios were measured side by side.",
        "",
        f"Synthetic {DIM}-d clustered embeddings ({CLUSTERS} taste clusters); {N_QUERIES_ANN} held-out users as queries "
        f"(recall@10 against exact search); latency = `UserIndex.query` (includes the per-query version and removal "
        f"checks), brute force = numpy dot product + argpartition over the same matrix ({N_QUERIES_BRUTE} queries), "
        f"timed interleaved with each backend's own queries (blocks of 60 index then 12 brute-force queries), so "
        f"both see the same load of the shared machine. Both are timed in a fresh process that opens the published "
        f"index, started as `make run` and docker-compose start serving processes (`GLIBC_TUNABLES="
        f"{SERVING_TUNABLES}`: glibc asks the kernel, THP mode `{huge_pages.kernel_mode()}`, for huge pages), and again "
        f"in one started without it (last column). Annoy's `search_k` and Voyager's query `ef` (M {vb.M}, ef_construction "
        f"{vb.EF_CONSTRUCTION}, float32) are calibrated at build time (doubling, then bisecting, until recall@10 on "
        f"sampled users reaches {TARGET_RECALL + CALIBRATION_MARGIN:.3f} for Annoy ({CALIBRATION_QUERIES} users), "
        f"{vb.VOYAGER_TARGET:.3f} for Voyager ({vb.VOYAGER_CALIBRATION_QUERIES:,} users, held out of the graph while measured).",
        "",
        "| backend | users | build s | MB | parameters | recall@10 | p50 / p99 ms | brute p50 / p99 ms | speed-up p50 "
        "| without huge pages: p50 ms, brute p50 ms, speed-up |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        w = r["without_huge_pages"]
        params = ", ".join(f"{k} {v:,}" for k, v in r["parameters"].items())
        lines.append(
            f"| {r['backend']} | {r['users']:,} | {r['build_s']} | {r['mb']} | {params} | {r['recall@10']:.3f} "
            f"| {r['p50_ms']} / {r['p99_ms']} | {r['brute_p50_ms']} / {r['brute_p99_ms']} | {r['speedup_p50']}× "
            f"| {w['p50_ms']}, {w['brute_p50_ms']}, {w['speedup_p50']}× |"
        )
    lines += [
        "",
        "Serving memory: a fresh process imports `soundmates.recommend`, opens the index and answers the "
        f"{N_QUERIES_ANN} queries (the recommend service's index side; the feature store it also reads is "
        "not in this figure). Annoy's file is memory-mapped, so only the pages queries touch are resident; "
        "Voyager loads the whole graph.",
        "",
        "| backend | users | file MB | RSS after imports MB | RSS index opened MB | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        m = r["serving_rss"]
        lines.append(f"| {r['backend']} | {r['users']:,} | {r['mb']} | {m['imports_mb']} | {m['opened_mb']} | {m['peak_mb']} |")
    lines.append("")
    if "error" in e2e:
        lines.append(f"New-user end-to-end latency: not measured ({e2e['error']}).")
    else:
        lines += [
            f"New-user end-to-end (local server, a not-stored user with {e2e['user_playlists']} playlists / {e2e['user_tracks']} tracks, "
            f"{e2e['stored_users']} stored users, model `{e2e['model_version']}`, warm caches; ingest over HTTP + "
            f"features + embedding + search + reasons): p50 {e2e['p50_s']} s, p95 {e2e['p95_s']} s over {e2e['runs']} runs "
            f"(first, cold run {e2e['first_run_s']} s). Goal p95 ≤ 1.5 s.",
        ]
    return {
        "title": "Index: Annoy and Voyager vs brute force, new-user latency",
        "markdown": "\n".join(lines),
        "rows": rows,
        "new_user": e2e,
        "load_average": [round(load_before, 2), round(load_after, 2)],
    }


def main(argv: list[str] | None = None) -> int:
    """Run, write ``bench/results/index.json`` (not with ``--print-only``), print the table."""
    import argparse

    from bench.run_all import RESULTS, save

    ap = argparse.ArgumentParser(prog="python -m bench.bench_index", description=__doc__.split("\n")[0])
    ap.add_argument("--print-only", action="store_true", help="print the table, write nothing under bench/results")
    ap.add_argument("--serving-rss", nargs=2, metavar=("INDEX_ROOT", "QUERIES_NPY"), help=argparse.SUPPRESS)
    ap.add_argument("--time-queries", nargs=3, metavar=("INDEX_ROOT", "DATA_NPY", "QUERIES_NPY"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serving_rss or args.time_queries:
        import json

        child = _serving_rss_child(*args.serving_rss) if args.serving_rss else _time_queries_child(*args.time_queries)
        print(json.dumps(child))
        return 0
    t0 = time.perf_counter()
    result = run(RESULTS)
    if not args.print_only:
        _log(f"wrote {save('index', result, time.perf_counter() - t0)}")
    print(result["markdown"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
