"""Dashboard latency: what a visitor waits for, cold vs warm, known vs live profile.

A 60-user world (seed 7) is served by the local Spotify server; 30 users are ingested,
featurised and indexed by the real pipeline. Then, in one process, side by side:

- the recommend API alone (``Recommender.recommend``) vs the same search through the Find page
  (``streamlit.testing`` AppTest: script run, cards, widgets) — the dashboard's own overhead;
- the first search after start (cold: Recommender, index and embedder load) vs later searches
  (warm: ``st.cache_resource`` keeps them) — what the cache saves;
- a profile fetched live from the (local) Spotify API, first and second one;
- the map and pipeline pages.

    python -m bench.run_all --only dashboard
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
N_WORLD, N_STORED, SEED, REPEAT = 60, 30, 7, 5
APP = REPO_ROOT / "streamlit_app" / "app.py"


def _search(at, ref: str):
    at.text_input(key="find_ref").input(ref)
    next(b for b in at.button if b.label == "Find my soundmates").click()
    at.run()
    if at.exception or at.error:
        raise RuntimeError(f"search for {ref!r} failed: {[e.value for e in at.exception] or [e.value for e in at.error]}")
    return at


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(out_dir: Path) -> dict:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from soundmates.config import Settings, reset_settings
    from soundmates.pipelines import build_features, build_index, ingest_users
    from soundmates.profiles import ProfileRepository
    from soundmates.world.generator import generate_world
    from soundmates.world.server import SpotifyServer

    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        world_dir, data_dir = Path(tmp, "world"), Path(tmp, "data")
        generate_world(world_dir, N_WORLD, SEED)
        ids = Path(world_dir, "users.txt").read_text(encoding="utf-8").splitlines()
        stored, unknown = ids[:N_STORED], ids[N_STORED:]
        with SpotifyServer(world_dir, port=0, mode="full") as server:
            env = {
                "SOUNDMATES_DATA_DIR": str(data_dir),
                "SOUNDMATES_SPOTIFY_API_URL": server.api_url,
                "SOUNDMATES_SPOTIFY_TOKEN_URL": server.token_url,
                "SPOTIPY_CLIENT_ID": "bench",
                "SPOTIPY_CLIENT_SECRET": "bench",
                "SOUNDMATES_AIRFLOW_URL": "http://127.0.0.1:9",  # nothing listens: the page's quick 'not reachable'
            }
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            reset_settings()
            try:
                settings = Settings()
                t0 = time.perf_counter()
                ingest_users(stored, settings=settings, progress=False)
                build_features(settings=settings)
                build_index(settings=settings, progress=False)
                setup_s = time.perf_counter() - t0
                kept = set(ProfileRepository(settings.profiles_dir).user_ids())
                me = next(u for u in stored if u in kept)  # a user the pipeline accepted

                # The Find page first, as after a server start: the first search pays imports and loads.
                st.cache_resource.clear()
                at = AppTest.from_file(str(APP), default_timeout=300)
                at.run()
                page_cold = _timed(lambda: _search(at, me))
                page_warm = [_timed(lambda: _search(at, me)) for _ in range(REPEAT)]

                # The API alone: a fresh Recommender per call is what every rerun would cost without
                # st.cache_resource (index, embedder and store loaded again); then the same object warm.
                from soundmates.recommend import Recommender

                api_fresh = [_timed(lambda: Recommender(Settings()).recommend(me, k=10)) for _ in range(3)]
                rec = Recommender(Settings())
                rec.recommend(me, k=10)
                api_warm = [_timed(lambda: rec.recommend(me, k=10)) for _ in range(REPEAT)]

                live_first = _timed(lambda: _search(at, f"spotify:user:{unknown[0]}"))
                live_second = _timed(lambda: _search(at, f"spotify:user:{unknown[1]}"))
                _search(at, me)
                map_s = _timed(lambda: at.switch_page("views/map.py").run())
                pipeline_s = _timed(lambda: at.switch_page("views/pipeline.py").run())
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
                reset_settings()
                st.cache_resource.clear()

    api_w, page_w = statistics.median(api_warm), statistics.median(page_warm)
    api_f = statistics.median(api_fresh)
    rows = [
        ("Find page, first search after start (imports, index, embedder)", page_cold),
        (f"Find page, warm search (median of {REPEAT})", page_w),
        ("recommend API, fresh Recommender per call (= no st.cache_resource; median of 3)", api_f),
        (f"recommend API, same Recommender (median of {REPEAT})", api_w),
        ("Find page, first live-fetched profile", live_first),
        ("Find page, second live-fetched profile", live_second),
        ("Taste map page (PCA of all users)", map_s),
        ("Pipeline page (Airflow not reachable)", pipeline_s),
    ]
    table = "\n".join(f"| {name} | {sec * 1000:,.0f} |" for name, sec in rows)
    markdown = (
        f"World: {N_WORLD} generated users, {N_STORED} ingested, featurised and indexed by the real pipeline "
        f"(setup {setup_s:.0f} s). AppTest runs the real pages in-process; times are wall-clock on a shared machine.\n\n"
        "| step | ms |\n|---|---:|\n" + table + "\n\n"
        f"Keeping one Recommender (`st.cache_resource`) makes each search **{api_f / api_w:.1f}×** faster than "
        f"building one per rerun; the first search after start is {page_cold / page_w:.1f}× a warm one. "
        f"The page adds **{(page_w - api_w) * 1000:,.0f} ms** over the API call (script run, 10 cards)."
    )
    return {
        "title": "Dashboard latency (Streamlit pages over the recommend API)",
        "markdown": markdown,
        "setup_s": round(setup_s, 2),
        "api_fresh_recommender_s": [round(v, 4) for v in api_fresh],
        "api_warm_s": [round(v, 4) for v in api_warm],
        "page_cold_s": round(page_cold, 4),
        "page_warm_s": [round(v, 4) for v in page_warm],
        "live_first_s": round(live_first, 4),
        "live_second_s": round(live_second, 4),
        "map_page_s": round(map_s, 4),
        "pipeline_page_s": round(pipeline_s, 4),
        "page_cold_over_warm": round(page_cold / page_w, 2),
        "fresh_over_cached_api": round(api_f / api_w, 2),
    }
