"""The local Spotify world: catalog, determinism, mess at plausible rates, ground truth."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from soundmates.world import catalog
from soundmates.world.generator import (
    ROW_TRACK,
    SHOWCASE,
    USER_BLOCK,
    World,
    WorldError,
    album_by_n,
    catalog_arrays,
    describe_user,
    find_users,
    generate_world,
    taste_vector,
    track_by_n,
    user_spec,
)
from soundmates.world.groundtruth import load_taste, true_neighbours
from soundmates.world.ids import is_base62_id, make_id, parse_id
from tests.fixtures.spotify import world_user_ids

REPO = Path(__file__).resolve().parents[1]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def world_300(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world300")
    generate_world(out, 300, 11)
    return out


# --- catalog -------------------------------------------------------------------------------------
def test_catalog_holds_the_real_data():
    g = catalog.genres()
    a = catalog.artists()
    assert len(g.names) == 6291 and g.coords.shape == (6291, 2)
    assert len(a.names) == 27621
    no_genres = sum(1 for gs in a.genres if not gs) / len(a.names)
    assert 0.30 < no_genres < 0.40  # the real data: ~34.5% of artists have no genre
    i = a.names.index("Marisa Monte")
    assert "mpb" in a.genres[i]


def test_artist_genre_table_normalises_names():
    table = catalog.artist_genre_table()
    assert "mpb" in table[catalog.normalise_artist_name("  MARISA   Monte ")]
    assert any(v == [] for v in table.values())  # artists known to have no genres map to []


def test_communities_come_from_the_genre_map():
    comm = catalog.communities()
    g = catalog.genres()
    # Nearby genres on the map share a community far more often than random pairs do.
    rng = np.random.default_rng(0)
    idx = rng.choice(len(g.names), 400, replace=False)
    d = np.linalg.norm(g.coords[idx, None] - g.coords[None, :], axis=2)
    d[np.arange(400), idx] = np.inf
    nearest = d.argmin(1)
    same_near = np.mean(comm.genre_community[idx] == comm.genre_community[nearest])
    same_random = np.mean(comm.genre_community[idx] == comm.genre_community[rng.permutation(idx)])
    assert same_near > 0.8 and same_random < 0.2
    assert all(len(m) > 100 for m in comm.members)


def test_ids_are_base62_roundtrip_and_kind_checked():
    for n in (0, 1, 12345, 10**9):
        tid = make_id("track", n)
        assert is_base62_id(tid)
        assert parse_id("track", tid) == n
        assert parse_id("artist", tid) is None  # an id of another kind is not accepted
    assert parse_id("track", "not-an-id") is None
    assert len({make_id("artist", n) for n in range(2000)}) == 2000


def test_albums_and_tracks_have_dates_in_all_precisions_and_explicit_flags():
    arr = catalog_arrays()
    precisions = Counter(arr.album_precision.tolist())
    assert set(precisions) == {0, 1, 2} and precisions[2] > precisions[0] > precisions[1] > 0
    assert 0.03 < arr.track_explicit.mean() < 0.4
    # Walk a few real tracks: dates parse as the precision says, ids decode back.
    seen = set()
    for a in range(0, 27000, 997):
        album = album_by_n(a * 8)
        fmt = {"year": r"^\d{4}$", "month": r"^\d{4}-\d\d$", "day": r"^\d{4}-\d\d-\d\d$"}[album.release_date_precision]
        assert re.match(fmt, album.release_date), album
        t = track_by_n(a * 8 * 32)
        assert t is not None and t.artist == a and parse_id("track", t.id) == t.n
        seen.add(album.release_date_precision)
    assert seen == {"year", "month", "day"} or len(seen) >= 2
    # Slots past an artist's albums / an album's tracks do not exist.
    a = int(np.flatnonzero(np.diff(arr.album_start) < 8)[0])
    assert album_by_n(a * 8 + 7) is None and track_by_n((a * 8 + 7) * 32) is None
    assert track_by_n(a * 8 * 32 + 31) is None or album_by_n(a * 8).total_tracks == 32


# --- generation ----------------------------------------------------------------------------------
def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_world(a, 120, 5)
    generate_world(b, 120, 5)
    generate_world(c, 120, 6)
    for name in ("users.txt", "world.json", "truth/taste.npy", "truth/scalars.npy"):
        assert _digest(a / name) == _digest(b / name), name
    assert _digest(a / "users.txt") != _digest(c / "users.txt")
    # Playlists are derived, not stored: equal too.
    wa, wb = World(a), World(b)
    for i in (0, 3, 50, 119):
        pa, pb = wa.playlists(i), wb.playlists(i)
        assert [p.id for p in pa] == [p.id for p in pb]
        assert all(np.array_equal(x.values, y.values) for x, y in zip(pa, pb))
    assert not list(a.glob("**/*.tmp*"))  # temporary files renamed away


def test_lazy_user_derivation_matches_the_bulk_files(tmp_path):
    """The server derives one user at a time; generate writes blocks: both must agree."""
    n = USER_BLOCK + 37  # spans two blocks, the second one partial
    generate_world(tmp_path, n, 9)
    ids, taste = load_taste(tmp_path)
    for i in (0, 5, USER_BLOCK - 1, USER_BLOCK, n - 1):
        spec = user_spec(9, i)
        assert spec.id == ids[i]
        assert np.allclose(taste_vector(spec.taste), taste[i], atol=1e-6)
        assert abs(spec.taste.weights.sum() - 1) < 1e-9 and len(set(spec.taste.communities)) == len(spec.taste.communities)


def test_world_json_and_users_file(small_world):
    meta = json.loads((small_world / "world.json").read_text())
    assert meta["seed"] == 7 and meta["users"] == 60
    ids = world_user_ids(small_world)
    assert len(ids) == 60 == len(set(ids))
    assert all(i.strip() == i and i for i in ids)


def test_user_ids_include_every_odd_form(world_300):
    ids = world_user_ids(world_300)
    assert len(set(ids)) == len(ids) == 300
    kinds = Counter()
    for u in ids:
        if re.fullmatch(r"[a-z0-9]{25}", u):
            kinds["alnum25"] += 1
        elif u.isdigit():
            kinds["numeric"] += 1
        elif not u.isascii():
            kinds["nonascii"] += 1
        for ch in "._#+":
            if ch in u:
                kinds[ch] += 1
    assert kinds["alnum25"] > 150  # most ids are the modern 25-char form
    for kind in ("numeric", "nonascii", ".", "_", "#", "+"):
        assert kinds[kind] >= 1, kind


def test_mess_is_present_at_plausible_rates(world_300):
    world = World(world_300)
    infos = [describe_user(world, u) for u in world.user_ids]
    n = len(infos)
    no_playlists = sum(1 for d in infos if d["playlists"] == 0) / n
    assert 0.02 < no_playlists < 0.15
    playlists = [p for d in infos for p in d["playlist_detail"]]
    empty = sum(1 for p in playlists if p["items"] == 0) / len(playlists)
    assert 0.01 < empty < 0.10
    rows = sum(p["items"] for p in playlists)
    for key, low, high in (("episodes", 0.002, 0.08), ("local", 0.0005, 0.03), ("null", 0.0001, 0.01)):
        rate = sum(p[key] for p in playlists) / rows
        assert low < rate < high, (key, rate)
    huge = [d for d in infos if d["max_playlist_items"] >= 2000]
    assert 1 <= len(huge) <= 6  # a few huge playlists, not many
    assert any(d["playlists"] > 50 for d in infos)  # more than one page of playlists
    assert any(d["display_name"] is None for d in infos)
    assert any(d["display_name"] and not d["display_name"].isascii() for d in infos)
    names = [p["name"] for p in playlists]
    assert any(not s.isascii() for s in names)


def test_showcase_users_and_describe_counts(small_world):
    world = World(small_world)
    ids = world.user_ids
    assert describe_user(world, ids[SHOWCASE["no_public_playlists"]])["playlists"] == 0
    assert describe_user(world, ids[SHOWCASE["huge_playlist"]])["max_playlist_items"] >= 2000
    assert describe_user(world, ids[SHOWCASE["many_playlists"]])["playlists"] > 50
    assert describe_user(world, ids[SHOWCASE["empty_playlist"]])["empty_playlists"] >= 1
    d = describe_user(world, ids[SHOWCASE["episodes_local_null"]])
    assert d["episodes"] > 0 and d["local"] > 0 and d["null"] > 0
    assert d["items"] == d["tracks"] + d["episodes"] + d["local"] + d["null"]
    assert d["distinct_tracks"] <= d["tracks"]
    found = find_users(world, lambda x: x["episodes"] > 0, limit=2)
    assert ids[SHOWCASE["episodes_local_null"]] in find_users(world, lambda x: x["episodes"] > 0)
    assert len(found) == 2
    with pytest.raises(KeyError, match="no user"):
        describe_user(world, "nobody-here")


def test_generate_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="users must be"):
        generate_world(tmp_path, 0, 1)
    with pytest.raises(ValueError, match="seed must be"):
        generate_world(tmp_path, 10, -1)
    with pytest.raises(WorldError, match="world.json is missing"):
        World(tmp_path / "nothing")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "world.json").write_text("{not json")
    with pytest.raises(WorldError, match="malformed"):
        World(bad)


def test_regenerating_keeps_a_complete_world(tmp_path):
    generate_world(tmp_path, 40, 1)
    before = _digest(tmp_path / "users.txt")
    generate_world(tmp_path, 40, 1)
    assert _digest(tmp_path / "users.txt") == before
    generate_world(tmp_path, 55, 2)
    assert len(world_user_ids(tmp_path)) == 55 and World(tmp_path).n_users == 55


# --- taste and ground truth ----------------------------------------------------------------------
def test_ground_truth_neighbours(world_300):
    ids, taste = load_taste(world_300)
    assert len(ids) == 300 and taste.shape[0] == 300 and taste.dtype == np.float32
    subset = ids[::2]
    nb = true_neighbours(world_300, subset, 5)
    assert set(nb) == set(subset)
    sub = set(subset)
    for u, ns in nb.items():
        assert len(ns) == 5 and u not in ns and set(ns) <= sub
    # Against brute force on the hidden vectors.
    v = taste[::2] / np.linalg.norm(taste[::2], axis=1, keepdims=True)
    sims = v @ v.T
    np.fill_diagonal(sims, -np.inf)
    for r in (0, 7, 33):
        expect = [subset[j] for j in np.argsort(-sims[r], kind="stable")[:5]]
        assert nb[subset[r]] == expect
    with pytest.raises(KeyError, match="not in this world"):
        true_neighbours(world_300, ["nobody", subset[0]], 3)
    with pytest.raises(ValueError):
        true_neighbours(world_300, subset, 0)


def test_taste_neighbours_share_music(world_300):
    """The point of the world: users close in hidden taste have overlapping playlists."""
    world = World(world_300)
    ids = world.user_ids[:150]

    def artists(u: str) -> set[int]:
        out: set[int] = set()
        for pl in world.playlists(world.user_index(u)):
            out.update((pl.values[pl.kinds == ROW_TRACK] // (8 * 32)).tolist())
        return out

    bags = {u: artists(u) for u in ids}
    ids = [u for u in ids if bags[u]]
    nb = true_neighbours(world_300, ids, 3)
    rng = np.random.default_rng(1)

    def jac(a, b):
        return len(a & b) / max(1, len(a | b))

    near = np.mean([jac(bags[u], bags[v]) for u in ids for v in nb[u]])
    rand = np.mean([jac(bags[u], bags[v]) for u in ids for v in rng.choice(ids, 3)])
    assert near > 3 * rand


# --- CLI -----------------------------------------------------------------------------------------
def test_cli_generate_json_and_describe(tmp_path):
    out = tmp_path / "w"
    cmd = [
        sys.executable,
        "-m",
        "soundmates.cli.main",
        "world",
        "generate",
        "--users",
        "50",
        "--seed",
        "3",
        "--out",
        str(out),
        "--json",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["users"] == 50 and summary["seed"] == 3
    assert len(world_user_ids(out)) == 50
    uid = world_user_ids(out)[4]
    res = subprocess.run(
        [sys.executable, "-m", "soundmates.cli.main", "world", "describe", uid, "--world", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["user_id"] == uid
    res = subprocess.run(
        [sys.executable, "-m", "soundmates.cli.main", "world", "generate", "--users", "0", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode != 0 and "--users must be" in res.stderr
