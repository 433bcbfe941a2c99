"""Population: a new user's latency and the dashboard with 1,000 and then 100,000 users stored.

What it answers: does a new visitor still get their matches within a second, and does the dashboard stay
usable, once the store and the index hold 100,000 people? The stored users are a generated world's
(seed 11), written as the canonical profiles the ingest would store (``sources/world.py``: straight from
the generator, no HTTP; the ingest's own speed is ``bench_scale``'s and ``bench_ingest``'s question, and
ingesting 100,000 users here takes over an hour). Every later stage is the real pipeline in this process:

1. the first 1,000 users stored -> ``build_features`` -> ``train_model`` -> ``build_index`` -> ``build_map``; the model
   this serves is the one every later step uses (a model is trained on a sample and serves everyone);
2. a new user end to end (a world user not stored, ~20 playlists, fetched from the local server in its
   own process, featurised, embedded by the served model, searched, explained), warm: p50/p95;
3. the dashboard's Find page (``streamlit.testing``): a stored user's search, and the Map page;
4. the rest of the users stored -> ``build_features`` (incremental) -> ``build_index`` -> ``build_map``,
   then 2 and 3 again.

    SOUNDMATES_BENCH_POPULATION_USERS=100000 python -m bench.run_all --only population
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench.bench_dashboard import _search, _timed
from bench.bench_scale import _new_user, _newcomer, _peak_rss_mb, _Server

USERS = int(os.environ.get("SOUNDMATES_BENCH_POPULATION_USERS", "100000"))
FIRST = 1000
SEED = 11
EPOCHS = int(os.environ.get("SOUNDMATES_BENCH_SCALE_EPOCHS", "5"))
PROCESSES = 2
CHUNK = 500
REPEAT = 5
REPO_ROOT = Path(__file__).resolve().parents[1]
APP = REPO_ROOT / "streamlit_app" / "app.py"


def _log(msg: str) -> None:
    print(f"bench population: {msg}", file=sys.stderr, flush=True)


def _store_chunk(args: tuple[str, str, int, int]) -> int:
    """A pool process: users ``start..stop`` of the world as canonical profiles in the repository."""
    from soundmates.profiles import ProfileRepository
    from soundmates.sources.world import profile_from_specs
    from soundmates.world import catalog
    from soundmates.world.generator import World

    world_dir, profiles_dir, start, stop = args
    world, table, repo = World(world_dir), catalog.artists(), ProfileRepository(Path(profiles_dir))
    for i in range(start, stop):
        repo.save(profile_from_specs(world.user(i), world.playlists(i), table))
    return stop - start


def _store(world_dir: Path, profiles_dir: Path, start: int, stop: int) -> float:
    """Users ``start..stop`` stored, in ``PROCESSES`` processes; the wall time."""
    profiles_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    chunks = [(str(world_dir), str(profiles_dir), a, min(a + CHUNK, stop)) for a in range(start, stop, CHUNK)]
    with ProcessPoolExecutor(PROCESSES, mp_context=multiprocessing.get_context("spawn")) as pool:
        done = 0
        for n in pool.map(_store_chunk, chunks):
            done += n
            if done % 10_000 < CHUNK:
                _log(f"stored {start + done:,} / {stop:,}")
    return time.perf_counter() - t0


def _dashboard(me: str) -> dict:
    """The Find page's search for a stored user (first after start, then warm) and the Map page, in seconds."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(APP), default_timeout=600)
    at.run()
    first = _timed(lambda: _search(at, me))
    warm = [_timed(lambda: _search(at, me)) for _ in range(REPEAT)]
    map_s = _timed(lambda: at.switch_page("views/map.py").run())
    if at.exception:
        raise RuntimeError(f"the map page failed: {[e.value for e in at.exception]}")
    return {"find_first_s": round(first, 3), "find_warm_s": round(statistics.median(warm), 3), "map_page_s": round(map_s, 3)}


def _step(result: dict, name: str, fn, write):
    if name in result["steps"]:  # done before a resumed run: the data is in the root
        _log(f"{name}: done before ({result['steps'][name]} s)")
        return None
    t0 = time.perf_counter()
    out = fn()
    result["steps"][name] = round(time.perf_counter() - t0, 1)
    result["peak_rss_mb"] = _peak_rss_mb()
    write()
    _log(f"{name}: {result['steps'][name]} s")
    return out


def _measure(settings, newcomer: str, me: str, index: dict) -> dict:
    row = {"stored_users": index["count"], "model": index["model_version"]}
    row.update(_new_user(settings, newcomer))
    row.update(_dashboard(me))
    return row


def _pipeline(root: Path, result: dict, write) -> None:
    from soundmates.config import Settings, reset_settings
    from soundmates.pipelines import build_features, build_index, train_model
    from soundmates.pipelines.taste_map import build_map
    from soundmates.world.generator import generate_world

    world_dir = root / "world"
    if not (world_dir / "users.txt").exists():
        generate_world(world_dir, USERS + 400, SEED)
    user_ids = [u for u in (world_dir / "users.txt").read_text(encoding="utf-8").splitlines() if u]
    newcomer = _newcomer(world_dir, user_ids, set(user_ids[:USERS]))  # among the 400 never stored
    with _Server(world_dir) as server:
        env = {
            "SOUNDMATES_DATA_DIR": str(root / "data"),
            "SOUNDMATES_SPOTIFY_API_URL": server.api_url,
            "SOUNDMATES_SPOTIFY_TOKEN_URL": server.token_url,
            "SPOTIPY_CLIENT_ID": "bench",
            "SPOTIPY_CLIENT_SECRET": "bench",
            "SOUNDMATES_AIRFLOW_URL": "http://127.0.0.1:9",  # nothing listens: the pipeline page's quick answer
        }
        os.environ.update(env)
        reset_settings()
        settings = Settings()
        if str(REPO_ROOT) not in sys.path:
            sys.path.insert(0, str(REPO_ROOT))
        me = user_ids[0]
        _step(result, f"store {FIRST:,}", lambda: _store(world_dir, settings.profiles_dir, 0, FIRST), write)
        _step(result, f"features {FIRST:,}", lambda: build_features(settings), write)
        trained = _step(result, f"train {FIRST:,}", lambda: train_model(settings, max_epochs=EPOCHS), write)
        index = _step(result, f"index {FIRST:,}", lambda: build_index(settings, progress=False), write)
        _step(result, f"map {FIRST:,}", lambda: build_map(settings, progress=False), write)
        if not result["rows"]:
            result["train"] = {k: trained.get(k) for k in ("version", "promoted") if k in trained}
            result["rows"].append(_measure(settings, newcomer, me, index))
            write()
        _step(result, f"store {USERS:,}", lambda: _store(world_dir, settings.profiles_dir, FIRST, USERS), write)
        _step(result, f"features {USERS:,}", lambda: build_features(settings), write)
        index = _step(result, f"index {USERS:,}", lambda: build_index(settings, progress=False), write)
        _step(result, f"map {USERS:,}", lambda: build_map(settings, progress=False), write)
        result["rows"].append(_measure(settings, newcomer, me, index))
        result["peak_rss_mb"] = _peak_rss_mb()
        write()


def run(out_dir: Path) -> dict:
    """Run both stages; ``out_dir/population.json`` is rewritten after every step.

    ``SOUNDMATES_BENCH_POPULATION_RESUME=<root>`` continues a run that stopped (its data root is kept
    when a step fails): the steps ``population.json`` records are not run again."""
    result: dict = {"title": "Population: a new user and the dashboard at 1,000 and 100,000 stored users", "users": USERS}
    result.update(steps={}, rows=[], peak_rss_mb=0.0)
    resume = os.environ.get("SOUNDMATES_BENCH_POPULATION_RESUME")
    if resume:
        before = json.loads((Path(out_dir) / "population.json").read_text())
        result.update(
            {k: before[k] for k in ("steps", "rows", "train") if k in before},
            resumed_after=before.get("error") or "a stop with no error recorded (the process was killed)",
        )
    load0 = os.getloadavg()[0]

    def write() -> None:
        result["markdown"] = markdown(result, load0)
        (Path(out_dir) / "population.json").write_text(json.dumps(result, indent=2, default=str))

    root = Path(resume) if resume else Path(tempfile.mkdtemp(prefix="bench-population-"))
    try:
        _pipeline(root, result, write)
    except Exception as exc:  # the steps done stand; say which one stopped and why; the root is kept to resume
        result["error"] = f"{type(exc).__name__}: {exc} (data kept in {root} to resume)"
        write()
        raise
    shutil.rmtree(root, ignore_errors=True)
    return result


def markdown(result: dict, load0: float) -> str:
    head = (
        f"A generated world (seed {SEED}); stored users written as the ingest's canonical profiles straight "
        f"from the generator, then the real pipeline; the new user fetched live from the local server (its own "
        f"process); the model trained on the first {FIRST:,} users serves every row; 2 cores, load average "
        f"{load0:.1f} at the start.\n\n"
        "| stored users | served model | new user p50 s | new user p95 s | Find page first s | Find page warm s | Map page s |\n"
        "|---:|---|---:|---:|---:|---:|---:|\n"
    )
    rows = [
        f"| {r['stored_users']:,} | `{r['model']}` | {r['p50_s']} | {r['p95_s']} | {r['find_first_s']} | "
        f"{r['find_warm_s']} | {r['map_page_s']} |"
        for r in result.get("rows", [])
    ]
    steps = ", ".join(f"{k} {v} s" for k, v in result.get("steps", {}).items())
    tail = f"\n\nSteps: {steps}. Peak RSS of the bench process: {result.get('peak_rss_mb')} MB."
    if result.get("resumed_after"):
        tail += f" Resumed after: {result['resumed_after']}."
    if result.get("error"):
        tail += f"\n\nStopped: {result['error']}"
    return head + "\n".join(rows) + tail


if __name__ == "__main__":
    run(Path(__file__).resolve().parent / "results")
