"""Scale: an N-user generated world through the real pipeline (local server -> ingest -> features -> train -> index).

The server runs in its own process (as under ``make run``); the ingest runs as the bootstrap DAG runs
it, batches of 100 users in two processes at once (the ``spotify_api`` pool's two slots); every
later stage runs in this process, on a fresh data dir. Each stage's wall time and users/s go to ``bench/results/scale.json`` as soon as the stage
ends (a long run that is stopped leaves the stages it finished), then the new-user latency with the
served model: a world user not ingested (~20 playlists) recommended live, warm, p50/p95.

The ingest stage may be given a time budget (``SOUNDMATES_BENCH_SCALE_INGEST_BUDGET_S``, 0 = none):
users are ingested in chunks of ``CHUNK`` and the stage stops after the chunk that crosses it; the
later stages then run on the users ingested, and every stage says how many users it had.

    SOUNDMATES_BENCH_SCALE_USERS=100000 SOUNDMATES_BENCH_SCALE_INGEST_BUDGET_S=1200 python -m bench.bench_scale
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

USERS = int(os.environ.get("SOUNDMATES_BENCH_SCALE_USERS", "100000"))
INGEST_BUDGET_S = float(os.environ.get("SOUNDMATES_BENCH_SCALE_INGEST_BUDGET_S", "0"))
EPOCHS = int(os.environ.get("SOUNDMATES_BENCH_SCALE_EPOCHS", "5"))
NEW_USER_RUNS = int(os.environ.get("SOUNDMATES_BENCH_SCALE_NEW_USER_RUNS", "12"))
SEED = 11
CHUNK = 2000
# As the bootstrap DAG ingests: mapped tasks of its default batch_size, as many at once as the spotify_api pool has slots.
BATCH = 100
INGEST_PROCESSES = int(os.environ.get("SOUNDMATES_BENCH_SCALE_INGEST_PROCESSES", "2"))
RESULTS = Path(__file__).resolve().parent / "results"


def _log(msg: str) -> None:
    print(f"bench scale: {msg}", file=sys.stderr, flush=True)


def _peak_rss_mb() -> float:
    """Peak resident memory of this process (ru_maxrss is in KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class _Server:
    """The local server in a child process (bench_ingest's), for the duration of a ``with``."""

    def __init__(self, world_dir: Path):
        from bench.bench_ingest import _serve

        ctx = multiprocessing.get_context("spawn")
        self._parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(world_dir, child), daemon=True)
        self._proc.start()
        self.api_url, self.token_url = self._parent.recv()

    def __enter__(self) -> _Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self._parent.send("stop")
        if self._parent.poll(30):
            self._parent.recv()
        self._proc.join(30)


_WORKER_INGESTOR = None


def _start_ingest_worker(settings_fields: dict) -> None:
    """A pool process: one Ingestor (and client) for every batch it is given, as an Airflow worker keeps none."""
    global _WORKER_INGESTOR
    from soundmates.config import Settings, SpotifyCredentials
    from soundmates.spotify.client import SpotifyClient
    from soundmates.spotify.ingest import Ingestor

    settings = Settings(**settings_fields)
    client = SpotifyClient(settings, SpotifyCredentials(client_id="bench", client_secret="bench"))
    _WORKER_INGESTOR = Ingestor(settings, client=client)


def _ingest_batch(batch: list[str]) -> tuple[list[str], int]:
    assert _WORKER_INGESTOR is not None
    before = _WORKER_INGESTOR.client.api_calls
    summary = _WORKER_INGESTOR.ingest_many(batch, progress=False)
    return summary.ingested_user_ids, _WORKER_INGESTOR.client.api_calls - before


def _first_done(pending: dict) -> set:
    """The futures of ``pending`` that are done, waiting for at least one."""
    from concurrent.futures import FIRST_COMPLETED, wait

    return wait(pending, return_when=FIRST_COMPLETED).done


def _ingest(settings, user_ids: list[str], result: dict, write) -> list[str]:
    """Ingest as the bootstrap DAG does (batches of ``BATCH`` users, ``INGEST_PROCESSES`` at a time, each
    in its own process) until done or past the budget; returns the users ingested, in order."""
    from concurrent.futures import ProcessPoolExecutor

    fields = {k: getattr(settings, k) for k in ("data_dir", "spotify_api_url", "spotify_token_url", "ingest_workers")}
    batches = [user_ids[i : i + BATCH] for i in range(0, len(user_ids), BATCH)]
    done: dict[int, list[str]] = {}
    attempted = calls = 0
    t0 = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(INGEST_PROCESSES, mp_context=ctx, initializer=_start_ingest_worker, initargs=(fields,)) as pool:
        pending = {}
        next_batch = 0
        while next_batch < len(batches) or pending:
            past_budget = INGEST_BUDGET_S and time.perf_counter() - t0 > INGEST_BUDGET_S
            while not past_budget and next_batch < len(batches) and len(pending) < 2 * INGEST_PROCESSES:
                pending[pool.submit(_ingest_batch, batches[next_batch])] = next_batch
                next_batch += 1
            if not pending:
                break  # past the budget, nothing left running
            future = next(iter(_first_done(pending)))
            i = pending.pop(future)
            ingested, batch_calls = future.result()
            done[i] = ingested
            attempted += len(batches[i])
            calls += batch_calls
            wall = time.perf_counter() - t0
            result["stages"]["ingest"] = {
                "seconds": round(wall, 1),
                "users_per_s": round(attempted / wall, 2),
                "users": attempted,
                "ingested": sum(len(v) for v in done.values()),
                "api_calls": calls,
                "processes": INGEST_PROCESSES,
                "workers": settings.ingest_workers,
                "batch": BATCH,
                "complete": attempted == len(user_ids),
            }
            if attempted % CHUNK < BATCH or not pending:
                write()
                _log(f"ingest: {attempted:,}/{len(user_ids):,} users in {wall:.0f} s ({attempted / wall:.1f} users/s)")
    return [u for i in sorted(done) for u in done[i]]


def _timed(result: dict, stage: str, users: int, fn, write):
    t0 = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    result["stages"][stage] = {"seconds": round(wall, 1), "users_per_s": round(users / wall, 2) if wall else 0.0, "users": users}
    result["peak_rss_mb"] = _peak_rss_mb()
    write()
    _log(f"{stage}: {users:,} users in {wall:.0f} s")
    return out


def _newcomer(world_dir: Path, user_ids: list[str], ingested: set[str]) -> str:
    """A world user not ingested whose playlist count is nearest 20 (the issue's new user)."""
    from soundmates.world.generator import World, describe_user

    world = World(world_dir)
    pool = [u for u in user_ids[-400:] if u not in ingested]
    return min(pool, key=lambda u: abs(describe_user(world, u).get("playlists", 0) - 20))


def _new_user(settings, newcomer: str) -> dict:
    """p50/p95 of ``Recommender.recommend`` for a not-stored user, warm (a first run fills the caches)."""
    from soundmates.recommend import Recommender

    rec = Recommender(settings)
    t = time.perf_counter()
    first = rec.recommend(newcomer, k=10)
    cold = time.perf_counter() - t
    lat = []
    for _ in range(NEW_USER_RUNS):
        rec.live.clear()  # every run fetches and featurises again, as a new visitor would
        t = time.perf_counter()
        rec.recommend(newcomer, k=10)
        lat.append(time.perf_counter() - t)
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(round(q / 100 * (len(lat) - 1))))]  # noqa: E731
    return {
        "p50_s": round(pick(50), 3),
        "p95_s": round(pick(95), 3),
        "first_run_s": round(cold, 3),
        "runs": len(lat),
        "matches": len(first.matches),
    }


def _pipeline(root: Path, result: dict, write) -> None:
    from soundmates.config import Settings
    from soundmates.pipelines import build_features, build_index, train_model
    from soundmates.world.generator import generate_world

    world_dir = root / "world"
    t0 = time.perf_counter()
    generate_world(world_dir, USERS, SEED)
    result["generate_s"] = round(time.perf_counter() - t0, 1)
    user_ids = [u for u in (world_dir / "users.txt").read_text(encoding="utf-8").splitlines() if u]
    with _Server(world_dir) as server:
        env = {"SOUNDMATES_SPOTIFY_API_URL": server.api_url, "SOUNDMATES_SPOTIFY_TOKEN_URL": server.token_url}
        os.environ.update(env, SPOTIPY_CLIENT_ID="bench", SPOTIPY_CLIENT_SECRET="bench", SOUNDMATES_DATA_DIR=str(root / "data"))
        settings = Settings(data_dir=root / "data", spotify_api_url=server.api_url, spotify_token_url=server.token_url)
        newcomer = _newcomer(world_dir, user_ids, set())
        ingested = _ingest(settings, [u for u in user_ids if u != newcomer], result, write)
        n = len(ingested)
        _timed(result, "features", n, lambda: build_features(settings), write)
        trained = _timed(result, "train", n, lambda: train_model(settings, max_epochs=EPOCHS), write)
        index = _timed(result, "index", n, lambda: build_index(settings, progress=False), write)
        result["train"] = {k: trained.get(k) for k in ("version", "promoted", "model_version") if k in trained}
        result["new_user"] = {"stored_users": index["count"], "model": index["model_version"], **_new_user(settings, newcomer)}
        result["peak_rss_mb"] = _peak_rss_mb()
        write()


def run(out_dir: Path) -> dict:
    """Run the pipeline and return the result (also written to ``out_dir/scale.json`` after every stage)."""
    result: dict = {"title": "Scale: the real pipeline on a generated world", "users": USERS, "stages": {}, "peak_rss_mb": 0.0}
    load0 = os.getloadavg()[0]

    def write() -> None:
        result["markdown"] = markdown(result, load0)
        (Path(out_dir) / "scale.json").write_text(json.dumps(result, indent=2, default=str))

    root = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        _pipeline(root, result, write)
    except Exception as exc:  # the stages done stand; say which one stopped and why
        result["error"] = f"{type(exc).__name__}: {exc}"
        write()
        raise
    finally:
        shutil.rmtree(root, ignore_errors=True)
    write()
    return result


def markdown(result: dict, load0: float) -> str:
    rows = [
        f"| {stage} | {s.get('users', '')} | {s['seconds']} | {s['users_per_s']} |"
        + (" (stopped at the time budget)" if stage == "ingest" and not s.get("complete", True) else "")
        for stage, s in result["stages"].items()
    ]
    nu = result.get("new_user")
    return "\n".join(
        [
            f"A {result['users']:,}-user generated world (seed {SEED}); the local server in its own process; the ingest "
            f"in batches of {BATCH}, {INGEST_PROCESSES} processes at once ({result['stages'].get('ingest', {}).get('workers', '?')} "
            "threads each), as the bootstrap DAG runs it; "
            f"load average {load0:.1f} at the start ({os.cpu_count()} cores shared by other sessions).",
            "",
            "| stage | users | seconds | users/s |",
            "|---|---:|---:|---:|",
            *rows,
            "",
            f"Peak RSS of the pipeline process: {result.get('peak_rss_mb', 0)} MB.",
            f"The run stopped: {result['error']}." if result.get("error") else "",
            (
                f"New user end to end (not stored, warm, served model `{nu['model']}`, {nu['stored_users']:,} stored users): "
                f"p50 {nu['p50_s']} s, p95 {nu['p95_s']} s over {nu['runs']} runs."
                if nu
                else "New user: not measured (the run stopped before)."
            ),
        ]
    )


if __name__ == "__main__":
    RESULTS.mkdir(parents=True, exist_ok=True)
    print(json.dumps(run(RESULTS), indent=2, default=str))
