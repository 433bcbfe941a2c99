"""Damaged index states, each through the real CLI: ``soundmates recommend`` and ``soundmates index status``.

One small world (18 stored users, real features and store, two published index versions, one
removed user, one fresh user) is built once; every case copies it, damages the index directory
the way a crash, a full disk or a careless operator would, and runs both commands. Each case
asserts the exit code, the one-line message or warning, that no traceback escaped, which version
answered, that the removed user never comes back, and that the index directory is byte-identical
afterwards (both commands only read).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from soundmates.profiles import (
    Artist,
    Playlist,
    PlaylistItem,
    Profile,
    ProfileRepository,
    Track,
)
from tests.helpers.encoders import HashModel

GENRES = {
    "rock": ["indie rock", "post-punk", "shoegaze"],
    "jazz": ["bebop", "cool jazz", "hard bop"],
    "electro": ["techno", "house", "ambient"],
}
REMOVED, FRESH, ASKER = "rock3", "fresh-fan", "rock2"


def make_profile(uid: str, community: str, seed: int) -> Profile:
    rng = np.random.default_rng(seed)
    artists = {
        f"{community}-a{a}": Artist(id=f"{community}-a{a}", name=f"{community} {a}", genres=[GENRES[community][a % 3]])
        for a in range(6)
    }
    tracks = {
        f"{aid}-t{t}": Track(id=f"{aid}-t{t}", name=f"{aid} song {t}", artist_ids=[aid], release_year=1990 + t)
        for aid in artists
        for t in range(4)
    }
    pool = sorted(tracks)
    playlists = [
        Playlist(
            id=f"{uid}-p{p}", name=f"{uid} {p}", items=[PlaylistItem(track_id=str(t)) for t in rng.choice(pool, 8, replace=False)]
        )
        for p in range(4)
    ]
    used = {i.track_id for pl in playlists for i in pl.items}
    return Profile(
        user_id=uid, display_name=uid.title(), playlists=playlists, tracks={t: tracks[t] for t in used}, artists=artists
    )


@pytest.fixture(scope="module", params=["annoy", "voyager"])
def template(tmp_path_factory, request):
    """Data dir: 18 users, features, index versions v1 < v2 (CURRENT), REMOVED tombstoned, FRESH in the buffer."""
    from soundmates.config import Settings
    from soundmates.features.encoder import TextEncoder
    from soundmates.index import UserIndex
    from soundmates.pipelines.features import build_features
    from soundmates.pipelines.index import build_index

    settings = Settings(data_dir=tmp_path_factory.mktemp("damage_world"))
    repo = ProfileRepository(settings.profiles_dir)
    for ci, c in enumerate(GENRES):
        for i in range(6):
            repo.save(make_profile(f"{c}{i}", c, ci * 10 + i))
    assert not build_features(settings, encoder=TextEncoder(settings, model=HashModel(16)))["rejected"]
    v1 = build_index(settings, progress=False, backend=request.param)["version"]
    v2 = build_index(settings, progress=False, backend=request.param)["version"]
    index = UserIndex(settings, backend=request.param)
    assert index.current_version_name() == v2 and index.versions() == [v2, v1]
    index.remove(REMOVED)
    index.add_fresh(FRESH, index.vector("rock1") + 0.05)
    return settings.data_dir, v1, v2, index.backend


@pytest.fixture
def world(settings, template, monkeypatch):
    from soundmates.features.encoder import TextEncoder
    from soundmates.recommend import Recommender, service

    src, v1, v2, backend = template
    shutil.copytree(src, settings.data_dir, dirs_exist_ok=True)
    # Rebuilds in these cases ('soundmates index build', build_index) use the template's backend too.
    monkeypatch.setenv("SOUNDMATES_INDEX_BACKEND", backend.name)
    encoder = TextEncoder(settings, model=HashModel(16))
    monkeypatch.setattr(service, "Recommender", lambda: Recommender(settings, encoder=encoder))
    return {
        "index": settings.index_dir,
        "v1": v1,
        "v2": v2,
        "file": backend.files[0],
        "param": "search_k" if backend.name == "annoy" else "ef",
    }


def snapshot(root: Path) -> dict:
    """Every entry under ``root``: kind and, for files, a hash of the bytes (permission changes included)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = os.lstat(p)
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir", st.st_mode)
            else:
                try:
                    out[rel] = ("file", st.st_mode, hashlib.sha256(p.read_bytes()).hexdigest())
                except PermissionError:
                    out[rel] = ("file", st.st_mode, None)
    return out


def run_cli(*args: str):
    from soundmates.cli.main import app

    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    return result


# ---------------------------------------------------------------- damage
def ann(w, v="v2"):
    return w["index"] / "versions" / w[v] / w["file"]


def manifest_path(w, v="v2"):
    return w["index"] / "versions" / w[v] / "manifest.json"


def rewrite_manifest(w, change, v="v2"):
    m = json.loads(manifest_path(w, v).read_text())
    manifest_path(w, v).write_text(json.dumps(change(m)))


def put_current(w, data: bytes):
    (w["index"] / "CURRENT").write_bytes(data)


def replace_with_dir(path: Path):
    path.unlink()
    path.mkdir()
    (path / "junk").write_text("x")


def truncate(path: Path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip(path: Path):
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))


def tamper_tombstone_id(path: Path):
    """Valid JSON, plausible content, but the removed user's id is altered: only the checksum can tell."""
    path.write_text(path.read_text().replace(REMOVED, "rock9"))


def bad_fresh_shapes(w):
    np.savez(
        w["index"] / "fresh.npz",
        ids=np.array(["a", "b"]),
        vectors=np.ones((1, 3), np.float32),
        added_at=np.zeros(2),
        model_versions=np.array(["", ""]),
    )


def remove_both_tombstone_copies(w):
    (w["index"] / "tombstones.json").unlink()
    (w["index"] / "tombstones.backup.json").unlink()


TOMB, BACKUP = "tombstones.json", "tombstones.backup.json"

# name -> (damage(w), expected): "v1"/"v2" = served by that version with a warning containing the
# phrase; "refuse" = exit 1 with a one-line error containing the phrase.
CASES = {
    "current_binary": (lambda w: put_current(w, b"\x00\xff\xfe\x89PNG\r\n"), ("v2", "binary")),
    "current_directory": (lambda w: replace_with_dir(w["index"] / "CURRENT"), ("v2", "directory")),
    "current_empty": (lambda w: put_current(w, b""), ("v2", "CURRENT is empty")),
    "current_whitespace": (lambda w: put_current(w, b" \n\n"), ("v2", "CURRENT is empty")),
    "current_dotdot": (lambda w: put_current(w, b"../../../etc\n"), ("v2", "not a version name")),
    "current_tmp_dir": (lambda w: put_current(w, b".tmp-" + w["v2"].encode()), ("v2", "not a version name")),
    "current_missing_version": (lambda w: put_current(w, b"20990101T000000000000Z-abcdef\n"), ("v2", "does not exist")),
    "current_deleted": (lambda w: (w["index"] / "CURRENT").unlink(), ("v2", "CURRENT is missing")),
    "current_huge": (lambda w: put_current(w, b"a" * 1_000_000), ("v2", "not a version name")),
    "current_names_older_dir_of_files": (lambda w: put_current(w, w["v2"].encode() + b"\njunk"), ("v2", "not a version name")),
    "manifest_is_a_list": (lambda w: manifest_path(w).write_text("[1, 2, 3]"), ("v1", "not a JSON object")),
    "manifest_without_dim": (lambda w: rewrite_manifest(w, lambda m: {k: v for k, v in m.items() if k != "dim"}), ("v1", "dim")),
    "manifest_dim_is_text": (lambda w: rewrite_manifest(w, lambda m: {**m, "dim": "64"}), ("v1", "dim")),
    "manifest_count_bool": (lambda w: rewrite_manifest(w, lambda m: {**m, "count": True}), ("v1", "count")),
    "manifest_files_escape": (
        lambda w: rewrite_manifest(w, lambda m: {**m, "files": {"../../CURRENT": {"sha256": "0" * 64, "bytes": 1}}}),
        ("v1", "files"),
    ),
    "manifest_search_k_negative": (lambda w: rewrite_manifest(w, lambda m: {**m, w["param"]: -5}), ("v1", "has no valid")),
    "manifest_other_version": (lambda w: rewrite_manifest(w, lambda m: {**m, "version": w["v1"]}), ("v1", "names version")),
    "manifest_binary": (lambda w: manifest_path(w).write_bytes(b"\x00\x9f\x92\x96garbage"), ("v1", "unreadable")),
    "manifest_deeply_nested": (lambda w: manifest_path(w).write_text("[" * 100_000 + "]" * 100_000), ("v1", "manifest")),
    "manifest_missing": (lambda w: manifest_path(w).unlink(), ("v1", "manifest missing")),
    "manifest_directory": (lambda w: replace_with_dir(manifest_path(w)), ("v1", "manifest")),
    "ann_truncated": (lambda w: truncate(ann(w)), ("v1", "truncated or corrupt")),
    "ann_bit_flip": (lambda w: flip(ann(w)), ("v1", "checksum")),
    "ann_zeroed": (lambda w: ann(w).write_bytes(b"\0" * ann(w).stat().st_size), ("v1", "checksum")),
    "ann_missing": (lambda w: ann(w).unlink(), ("v1", "{ann} missing")),
    "ann_directory": (lambda w: replace_with_dir(ann(w)), ("v1", "{ann}")),
    "ids_missing": (lambda w: (ann(w).parent / "ids.json").unlink(), ("v1", "ids.json missing")),
    "ids_garbled": (lambda w: flip(ann(w).parent / "ids.json"), ("v1", "ids.json")),
    "pairs_missing": (lambda w: (ann(w).parent / "pair_sims.npy").unlink(), ("v1", "pair_sims.npy missing")),
    "version_dir_emptied": (lambda w: [p.unlink() for p in list(ann(w).parent.iterdir())], ("v1", "manifest missing")),
    "current_empty_and_newest_corrupt": (lambda w: (put_current(w, b""), truncate(ann(w))), ("v1", "")),
    "stray_dirs_ignored": (
        lambda w: ((w["index"] / "versions" / "evil").mkdir(), (w["index"] / "versions" / ".tmp-x").mkdir()),
        ("v2", None),
    ),
    "every_version_corrupt": (lambda w: (truncate(ann(w)), truncate(ann(w, "v1"))), ("refuse", "no valid index version")),
    "every_manifest_garbage_current_binary": (
        lambda w: (manifest_path(w).write_text("{"), manifest_path(w, "v1").write_text("null"), put_current(w, b"\xff")),
        ("refuse", "no valid index version"),
    ),
    "versions_is_a_file": (
        lambda w: (shutil.rmtree(w["index"] / "versions"), (w["index"] / "versions").write_text("x")),
        ("refuse", "is not a directory"),
    ),
    "tombstones_garbled": (lambda w: truncate(w["index"] / TOMB), ("v2", "read from tombstones.backup.json")),
    "tombstones_id_tampered": (lambda w: tamper_tombstone_id(w["index"] / TOMB), ("v2", "checksum")),
    "tombstones_directory": (lambda w: replace_with_dir(w["index"] / TOMB), ("v2", "cannot be read")),
    "tombstones_missing": (lambda w: (w["index"] / TOMB).unlink(), ("v2", "tombstones.json is missing")),
    "tombstones_backup_garbled": (lambda w: flip(w["index"] / BACKUP), ("v2", "read from tombstones.json")),
    "tombstones_both_garbled": (
        lambda w: (truncate(w["index"] / TOMB), tamper_tombstone_id(w["index"] / BACKUP)),
        ("refuse", "removed-users list cannot be read"),
    ),
    "tombstones_both_missing": (remove_both_tombstone_copies, ("refuse", "removals were lost")),
    "tombstones_list_backup_missing": (
        lambda w: ((w["index"] / TOMB).write_text("[]"), (w["index"] / BACKUP).unlink()),
        ("refuse", "removed-users list cannot be read"),
    ),
    "fresh_garbage": (lambda w: (w["index"] / "fresh.npz").write_bytes(b"PK\x03\x04 not a zip"), ("v2", "fresh.npz is damaged")),
    "fresh_truncated": (lambda w: truncate(w["index"] / "fresh.npz"), ("v2", "fresh.npz is damaged")),
    "fresh_directory": (lambda w: replace_with_dir(w["index"] / "fresh.npz"), ("v2", "fresh.npz is damaged")),
    "fresh_wrong_shapes": (bad_fresh_shapes, ("v2", "fresh.npz is damaged")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_damaged_index_state_through_the_cli(world, case):
    damage, (outcome, phrase) = CASES[case]
    phrase = phrase.format(ann=world["file"]) if phrase else phrase
    damage(world)
    before = snapshot(world["index"])

    rec = run_cli("recommend", ASKER, "--k", "17", "--json")
    status = run_cli("index", "status")

    assert snapshot(world["index"]) == before, "a read-only command changed the index directory"
    status_err = [line for line in status.stderr.splitlines() if line.strip()]
    if outcome == "refuse":
        assert rec.exit_code == 1, rec.output
        err = json.loads(rec.stdout)["error"]
        assert "\n" not in err and phrase in err, err
        assert status.exit_code == 1 and status.stdout == ""
        assert len(status_err) == 1 and status_err[0].startswith("error: ") and phrase in status_err[0], status_err
        return
    assert rec.exit_code == 0, rec.output
    data = json.loads(rec.stdout)
    served = [m["user_id"] for m in data["matches"]]
    assert data["index_version"] == world[outcome]
    assert REMOVED not in served and ASKER not in served
    assert (FRESH in served) == (not case.startswith("fresh")), served
    assert status.exit_code == 0 and f"index {world[outcome]}" in status.stdout
    assert all(line.startswith("warning: ") for line in status_err), status_err
    if phrase is None:
        assert data["warnings"] == [] or all("fresh" not in w and "corrupt" not in w for w in data["warnings"])
        assert status_err == []
    else:
        assert any(phrase in w for w in data["warnings"]), data["warnings"]
        assert any(phrase in line for line in status_err), status_err
        assert "nothing" not in status.stdout and "no index built" not in status.stdout


def test_corpus_size():
    assert len(CASES) >= 20


def test_nothing_built_says_how_to_build(settings, monkeypatch):
    from soundmates.recommend import Recommender, service

    monkeypatch.setattr(service, "Recommender", lambda: Recommender(settings))
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    (settings.index_dir / "CURRENT").write_bytes(b"")  # an empty pointer and no version: truly nothing built
    rec = run_cli("recommend", ASKER)
    assert rec.exit_code == 1 and "soundmates index build" in rec.stderr and len(rec.stderr.strip().splitlines()) == 1
    status = run_cli("index", "status")
    assert status.exit_code == 0 and "no index built yet: run 'soundmates index build'" in status.stdout


def test_build_repairs_damaged_pointer_and_removals(world, settings):
    """The next build moves a CURRENT directory aside (never deletes it), publishes, and rewrites a damaged copy."""
    replace_with_dir(world["index"] / "CURRENT")
    truncate(world["index"] / TOMB)
    out = run_cli("index", "build", "--json")
    assert out.exit_code == 0, out.output
    built = json.loads(out.stdout)
    assert built["published"] and built["count"] == 17 and built["removed_excluded"] == 1
    assert (world["index"] / "CURRENT").read_text().strip() == built["version"]
    assert list(world["index"].glob("CURRENT.damaged-*/junk"))
    st = run_cli("index", "status")
    assert st.exit_code == 0 and st.stderr.strip() == "", st.stderr


def test_build_refuses_when_removals_unreadable(world):
    truncate(world["index"] / TOMB)
    truncate(world["index"] / BACKUP)
    before = snapshot(world["index"])
    out = run_cli("index", "build")
    assert out.exit_code == 1 and "removed-users list cannot be read" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert snapshot(world["index"]) == before


def test_build_between_tombstone_and_data_deletion_keeps_user_out(world, settings):
    """remove() tombstones first and deletes data after: a build reading the store in between indexes old data."""
    from soundmates.index import UserIndex
    from soundmates.pipelines.index import build_index

    index = UserIndex(settings)
    index.remove("jazz1")  # the store still holds jazz1's features: the deletion has not run yet
    summary = build_index(settings, progress=False)
    assert summary["published"] and summary["count"] == 16 and summary["removed_excluded"] == 2
    rec = run_cli("recommend", "jazz2", "--k", "17", "--json")
    served = [m["user_id"] for m in json.loads(rec.stdout)["matches"]]
    assert "jazz1" not in served and REMOVED not in served and len(served) == 16


def test_build_backend_option(world):
    bad = run_cli("index", "build", "--backend", "faiss")
    assert bad.exit_code == 2 and "unknown index backend 'faiss'" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    for backend in ("voyager", "annoy"):
        out = run_cli("index", "build", "--backend", backend, "--json")
        assert out.exit_code == 0, out.output
        assert json.loads(out.stdout)["backend"] == backend
        st = json.loads(run_cli("index", "status", "--json").stdout)
        assert st["backend"] == backend and st["count"] == 17
        rec = json.loads(run_cli("recommend", ASKER, "--k", "17", "--json").stdout)
        served = [m["user_id"] for m in rec["matches"]]
        assert REMOVED not in served and FRESH in served and len(served) == 17


def test_index_status_in_a_real_process(world, settings):
    """The installed entry point, in its own process, on two damaged states: a warning, then a one-line refusal."""
    import subprocess
    import sys

    env = {**os.environ, "SOUNDMATES_DATA_DIR": str(settings.data_dir)}

    def status(*extra):
        return subprocess.run(
            [sys.executable, "-m", "soundmates.cli.main", "index", "status", *extra],
            check=False,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    put_current(world, b"\x00\xff\xfe")
    out = status()
    assert out.returncode == 0 and f"index {world['v2']}" in out.stdout and "Traceback" not in out.stderr
    # (The same text may also appear as a log record: how logs reach stderr is the CLI's logging setup.)
    assert (
        "warning: CURRENT holds binary data, not a version name: serving the newest valid version instead"
        in out.stderr.splitlines()
    )
    truncate(world["index"] / TOMB)
    truncate(world["index"] / BACKUP)
    before = snapshot(world["index"])
    out = status()
    assert out.returncode == 1 and out.stdout == "" and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "removed-users list cannot be read" in out.stderr
    out = status("--json")
    assert out.returncode == 1 and json.loads(out.stdout)["kind"] == "removals_unreadable"
    assert snapshot(world["index"]) == before
