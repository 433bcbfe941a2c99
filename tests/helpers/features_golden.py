"""A fixed tiny world and the features computed from it, to pin feature values across rewrites.

``golden_profiles()`` = some small users of a generated world (seed 7) plus hand-built profiles
for the edge cases a generated world rarely hits (no genres, no names, odd weights, unknown
tracks, out-of-range years, one playlist, one giant playlist, nothing usable).
``snapshot(settings)`` runs ``featurize_profiles`` (unscaled rows) and ``build_features``
(scaled rows read back from the store) with the 8-dim :class:`HashModel` and returns plain
JSON-able data. ``python -m tests.helpers.features_golden`` rewrites ``tests/data/features_golden.json``
(only ever from code whose values are the reference).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from tests.helpers.encoders import HashModel

GOLDEN_PATH = Path(__file__).resolve().parents[1] / "data" / "features_golden.json"
WORLD_SEED = 7
# Small users of that world (few items each, so the file stays small): one playlist, several, skipped rows, none.
WORLD_USERS = (5, 10, 11, 12, 14, 20, 27, 29, 36)
TOP_N = 10
DIM = 8


def _world_profiles() -> list:
    from soundmates.sources.world import profile_from_specs
    from soundmates.world import catalog
    from soundmates.world import generator as g

    table = catalog.artists()
    users = [g.user_spec(WORLD_SEED, i) for i in WORLD_USERS]
    return [profile_from_specs(u, g.user_playlists(WORLD_SEED, u), table) for u in users]


def _edge_profiles() -> list:
    from soundmates.profiles import Artist, Playlist, PlaylistItem, Profile, Track

    def tr(tid, artists, year=None, pop=None, explicit=None):
        return Track(id=tid, name=f"Song {tid}", artist_ids=artists, release_year=year, popularity=pop, explicit=explicit)

    def pl(pid, rows, **kw):
        return Playlist(id=pid, name=pid, items=[PlaylistItem(track_id=t, weight=w) for t, w in rows], **kw)

    def prof(uid, playlists, tracks, artists):
        return Profile(
            user_id=uid,
            display_name=uid.title(),
            playlists=playlists,
            tracks={t.id: t for t in tracks},
            artists={a.id: a for a in artists},
        )

    arts = [
        Artist(id="a1", name="Åse Kleveland", genres=["visa", "schlager"]),
        Artist(id="a2", name="Bill Withers", genres=["soul", "funk", "visa"]),
        Artist(id="a3", name="Unknown Genres", genres=None),
        Artist(id="a4", name="", genres=["noise"]),  # a genre but no name
        Artist(id="a5", name="No Genres", genres=[]),
    ]
    tracks = [
        tr("t1", ["a1"], 1975, 40, False),
        tr("t2", ["a1", "a2"], 1999, 60, True),
        tr("t3", ["a2"], 0, None, None),  # year 0: a data error, unknown
        tr("t4", ["a3"], 9999, 10, True),
        tr("t5", ["a4", "ghost"], 2021, 90, False),  # "ghost" is credited but not in artists
        tr("t6", ["a5"], 1959, None, False),
        tr("t7", ["a2", "a1"], 2010, 70, None),
        tr("t8", ["ghost"], 2001, 50, False),  # no artist known at all
    ]
    weighted = [("t1", 1.0), ("t2", 2.5), ("t2", 0.5), ("t3", 1.0), ("nope", 1.0), ("t4", 0.0), ("t5", -1.0)]
    return [
        # several playlists, odd weights, unknown tracks, skipped rows: split by playlists
        prof(
            "edge-mixed",
            [
                pl("m1", weighted, skipped_episodes=2),
                pl("m2", [("t5", 3.0), ("t6", 1.0), ("t7", 1.0), ("t1", 1.0)], skipped_local=1),
                pl("m3", [("t7", 2.0), ("t3", 1.0), ("t2", 1.0)], skipped_null=1),
                pl("m4", []),
            ],
            tracks,
            arts,
        ),
        # one playlist: split by tracks
        prof("edge-one-playlist", [pl("o1", [(t, 1.0) for t in ("t1", "t2", "t3", "t5", "t6", "t7", "t1")])], tracks, arts),
        # one giant playlist beside a small one: split by tracks
        prof(
            "edge-giant",
            [pl("g1", [(t, 1.0) for t in ("t1", "t2", "t3", "t7") * 5]), pl("g2", [("t5", 1.0)])],
            tracks,
            arts,
        ),
        # genres unknown for every artist: missing genres, artist embedding only
        prof("edge-no-genres", [pl("n1", [("t4", 1.0), ("t4", 2.0)]), pl("n2", [("t4", 1.0)])], tracks, arts),
        # a genre but no artist name: missing artists
        prof("edge-no-names", [pl("x1", [("t5", 1.0)]), pl("x2", [("t5", 1.0), ("t5", 1.0)])], tracks, arts),
        # one usable item: no views
        prof("edge-single", [pl("s1", [("t2", 1.0), ("nope", 1.0)])], tracks, arts),
        # half of it has neither genres nor names: the other half alone is no pair
        prof("edge-lopsided", [pl("l1", [("t8", 1.0), ("t8", 1.0)]), pl("l2", [("t1", 1.0), ("t2", 1.0)])], tracks, arts),
        # rejected: no playlists; only skipped rows; music with neither genres nor names
        prof("edge-no-playlists", [], tracks, arts),
        prof("edge-podcasts", [pl("p1", [], skipped_episodes=5), pl("p2", [("nope", 1.0)])], tracks, arts),
        prof("edge-nothing-usable", [pl("u1", [("t8", 1.0), ("t8", 2.0)])], tracks, arts),
        # no year, popularity or explicit flag anywhere
        prof("edge-sparse", [pl("q1", [("t3", 1.0)]), pl("q2", [("t3", 2.0)])], tracks, arts),
        # no genres (an empty list) but a name, one item: no views
        prof("edge-name-only", [pl("e1", [("t6", 1.0)])], tracks, arts),
    ]


def golden_profiles() -> list:
    return _world_profiles() + _edge_profiles()


def _plain(v):
    """JSON-able: arrays as lists of floats, NaN as the string "nan"."""
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v.tolist()]
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, float | np.floating):
        return "nan" if math.isnan(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def _rows(rows: list[dict], drop: tuple[str, ...] = ()) -> list[dict]:
    return [{k: _plain(v) for k, v in sorted(r.items()) if k not in drop} for r in rows]


def snapshot(settings) -> dict:
    """Everything the features stage computes for the golden profiles (see the module docstring)."""
    from soundmates.features import schema as S
    from soundmates.features.encoder import TextEncoder
    from soundmates.features.taste import featurize_profiles
    from soundmates.pipelines.features import build_features
    from soundmates.profiles import ProfileRepository
    from soundmates.store import get_store

    profiles = golden_profiles()
    batch = featurize_profiles(profiles, TextEncoder(settings, model=HashModel(DIM)), top_n=TOP_N, views=True, seed=0)
    repo = ProfileRepository(settings.profiles_dir)
    for p in profiles:
        repo.save(p)
    summary = build_features(settings, encoder=TextEncoder(settings, model=HashModel(DIM)))
    store = get_store(settings)
    stored = store.read(S.USER_FEATURES).sort_values(["user_id", "view"])
    stored_rows = [{c: stored[c].iloc[i] for c in stored.columns} for i in range(len(stored))]
    for r in stored_rows:
        for c, v in r.items():
            if isinstance(v, np.ndarray) and v.dtype == object:
                r[c] = [str(x) for x in v]
    profiles_stored = store.read(S.USER_PROFILES).sort_values("user_id")
    profile_rows = [{c: profiles_stored[c].iloc[i] for c in profiles_stored.columns} for i in range(len(profiles_stored))]
    return {
        "featurize": {
            # the unscaled combined vector; every other column is checked as stored, below
            "feature_rows": [{k: _plain(r[k]) for k in ("user_id", "view", "combined")} for r in batch.feature_rows],
            "profile_rows": [r["user_id"] for r in batch.profile_rows],
            "rejected": batch.rejected,
            "no_views": batch.no_views,
        },
        "build": {
            "updated": summary["updated"],
            "rejected": sorted(summary["rejected"], key=lambda r: r["user_id"]),
            "without_views": summary["without_views"],
            "user_features": _rows(stored_rows),
            "user_profiles": _rows(profile_rows, drop=("updated_at",)),
        },
    }


def assert_matches(actual, expected, path: str = "") -> None:
    """Exact for ints, strings and structure; floats ``np.allclose(rtol=1e-6)`` (NaN equals NaN)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and sorted(actual) == sorted(expected), f"{path}: keys {sorted(actual)}"
        for k in expected:
            assert_matches(actual[k], expected[k], f"{path}.{k}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{path}: length {len(actual)} != {len(expected)}"
        if expected and all(isinstance(x, float | str) for x in expected) and any(isinstance(x, float) for x in expected):
            a = np.array([math.nan if x == "nan" else x for x in actual], dtype=np.float64)
            e = np.array([math.nan if x == "nan" else x for x in expected], dtype=np.float64)
            assert np.allclose(a, e, rtol=1e-6, equal_nan=True), f"{path}: max abs diff {np.nanmax(np.abs(a - e))}"
        else:
            for i, (a, e) in enumerate(zip(actual, expected)):
                assert_matches(a, e, f"{path}[{i}]")
    elif isinstance(expected, float):
        assert isinstance(actual, float) and np.allclose(actual, expected, rtol=1e-6), f"{path}: {actual} != {expected}"
    else:
        assert type(actual) is type(expected) and actual == expected, f"{path}: {actual!r} != {expected!r}"


if __name__ == "__main__":  # rewrite the golden file from the current code
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SOUNDMATES_DATA_DIR"] = tmp
        from soundmates.config import get_settings, reset_settings

        reset_settings()
        data = snapshot(get_settings())
    GOLDEN_PATH.write_text(json.dumps(data, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN_PATH} ({GOLDEN_PATH.stat().st_size:,} bytes)")
