"""The user index: ANN versions published atomically, plus fresh users and sticky removals.

Layout under ``settings.index_dir``::

    CURRENT                      name of the published version (replaced with os.replace, validated on read)
    versions/<version>/          the backend's file (users.ann), ids.json, pair_sims.npy, manifest.json
    fresh.npz                    users added since the last build (exact search)
    tombstones.json (+ backup)   removed users and when; they block every vector made from older data

A build writes a whole version directory aside (``versions/.tmp-*``), fsyncs it, renames it into
place, then, under the build lock, points ``CURRENT`` at it unless ``CURRENT`` already names a
version of newer data. Readers check ``CURRENT`` and the versions directory (two stats) on every
query, so a new version is picked up without a restart. A version whose manifest has the wrong
shape or whose files do not match their checksums is never loaded: the newest older valid version
is served, with a warning; if none is valid the error says so and what to run.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from soundmates.atomic import commit_directory
from soundmates.index._files import atomic_write_bytes, sha256_file, stat_key
from soundmates.index.backends import (
    BACKENDS,
    COMMON_FILES,
    DEFAULT_BACKEND,
    backend_named,
    files_for,
)
from soundmates.index.errors import IndexCorrupt, IndexNotBuilt, RemovalsUnreadable
from soundmates.index.fresh import FreshBuffer, normalise
from soundmates.index.tombstones import TombState, Tombstones
from soundmates.index.versions import VersionStore, is_int, new_version_name, sequence

log = logging.getLogger("soundmates.index")

IDS_FILE, PAIRS_FILE = COMMON_FILES
PAIR_SAMPLE = 20_000
# Written into every version directory by remove(): how many removals existed. If both copies of the
# removed-users list disappear, this is what tells "removals were lost" from "nobody was ever removed".
REMOVALS_SEEN_FILE = "removals_seen.json"
KEEP_VERSIONS = 3


@dataclass(frozen=True)
class Hit:
    user_id: str
    score: float  # cosine similarity
    source: str  # "index" or "fresh"


@dataclass
class SearchResult:
    version: str | None  # the index version that answered (None = fresh buffer only)
    hits: list[Hit]
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Loaded:
    version: str
    manifest: dict
    searcher: Any
    ids: list[str]
    positions: dict[str, int]
    pair_sims: np.ndarray
    ann_path: Path
    ann_key: tuple | None
    blocked: tuple = (None, frozenset())  # (tombstone state it was computed for, blocked ids)
    removals_seen: tuple = (None, 0)  # (stat key of REMOVALS_SEEN_FILE, its count)
    native: dict = field(default_factory=dict)  # in-place state of a backend with native updates

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def read_at(self) -> float | None:
        """When the indexed features were read; None (older manifests) = before every removal."""
        return self.manifest.get("features_read_at")


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _finite_time(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _select_rows(ids: list[str], mat: np.ndarray, tombs: TombState, read_at: float):
    """Rows to index: usable vectors, the last row of a duplicated id, no user removed before ``read_at``."""
    norms = np.linalg.norm(mat, axis=1)
    good = np.all(np.isfinite(mat), axis=1) & np.isfinite(norms) & (norms > 0) & np.array([bool(u) for u in ids], dtype=bool)
    skipped = [u for u, g in zip(ids, good) if not g]
    last_row: dict[str, int] = {}
    removed_rows = 0
    removed: set[str] = set()
    for i, (u, g) in enumerate(zip(ids, good)):
        if not g:
            continue
        t = tombs.users.get(u)
        if t is not None and t.blocks(read_at):
            removed.add(u)
            removed_rows += 1
            continue
        last_row[u] = i
    duplicates = int(good.sum()) - len(last_row) - removed_rows
    rows = np.fromiter(last_row.values(), dtype=np.int64, count=len(last_row))
    data = mat[rows] / norms[rows, None] if len(rows) else np.zeros((0, mat.shape[1]), np.float32)
    return list(last_row), data.astype(np.float32), skipped, duplicates, removed


def _backend_of(manifest: dict):
    return BACKENDS[str(manifest.get("backend") or DEFAULT_BACKEND)]


class UserIndex:
    def __init__(self, settings=None, *, root: Path | None = None, backend: str | None = None):
        """``backend``: what ``build`` writes (default ``SOUNDMATES_INDEX_BACKEND``, else Annoy); any version is read
        with the backend its manifest names."""
        if root is None:
            if settings is None:
                from soundmates.config import get_settings

                settings = get_settings()
            root = settings.index_dir
        self.settings = settings
        self.root = Path(root)
        self.backend = backend_named(backend, settings)
        self.store = VersionStore(self.root, files_for)
        self.versions_dir = self.store.versions_dir
        self.current_path = self.store.current_path
        self.fresh = FreshBuffer(self.root / "fresh.npz")
        self.tombstones = Tombstones(self.root / "tombstones.json")
        self.fresh_threshold = int(getattr(settings, "fresh_buffer_threshold", 1000) or 1000)
        self._load_lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._current_key: tuple | None = None
        #: Warnings about the version being served (e.g. fell back from a corrupt one).
        self.warnings: list[str] = []
        #: What the last ``build`` of this object did: version, published, manifest.
        self.last_build: dict | None = None
        self._fresh_memo: tuple | None = None

    # ------------------------------------------------------------------ build
    def build(
        self,
        user_ids: Sequence[str],
        vectors,
        meta: dict | None = None,
        *,
        n_trees: int | None = None,
        search_k: int | None = None,
        n_jobs: int = -1,
        seed: int = 0,
        keep_versions: int = KEEP_VERSIONS,
    ) -> str:
        """Build a new version from ``vectors[i]`` = embedding of ``user_ids[i]`` and publish it; returns its name.

        ``meta["features_read_at"]`` (epoch s, default: now) says when the features were read: users
        removed before then are left out, and the version is published only if no version of newer
        data is. Rows with NaN/zero vectors are skipped and listed (one bad user does not fail the
        build). ``search_k`` None = calibrated by measurement. ``self.last_build`` says what happened.
        """
        started = time.time()
        t0 = time.perf_counter()
        meta = dict(meta or {})
        read_at = _finite_time(meta.pop("features_read_at", None)) or started
        ids = [str(u) for u in user_ids]
        mat = np.asarray(vectors, dtype=np.float32)
        if mat.ndim != 2:
            raise ValueError(f"vectors must be a 2-D array (users x dim), got shape {mat.shape}")
        if mat.shape[0] != len(ids):
            raise ValueError(f"{len(ids)} user ids but {mat.shape[0]} vectors")
        if mat.shape[1] == 0:
            raise ValueError("vectors have dimension 0")
        tombs = self.tombstones.state()  # unreadable removals: refuse to build (fail closed)
        keep_ids, data, skipped, duplicates, removed = _select_rows(ids, mat, tombs, read_at)
        if not keep_ids:
            raise ValueError(
                f"nothing to index: {len(ids)} users given, {len(skipped)} with unusable vectors, {len(removed)} removed"
            )
        if skipped:
            log.warning("index build: skipped %d users with NaN or zero vectors: %s", len(skipped), skipped[:10])
        base = {
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "backend": self.backend.name,
            "model_version": meta.pop("model_version", None),
            "feature_data_version": meta.pop("feature_data_version", None),
            "features_read_at": read_at,
            "tombstones_count": len(tombs.users),
            "count": len(keep_ids),
            "dim": int(data.shape[1]),
            "skipped": skipped[:100],
            "n_skipped": len(skipped),
            "n_removed": len(removed),
            "n_duplicates": duplicates,
            "meta": meta,
        }
        version = new_version_name()
        manifest = self._write_version(
            version, data, keep_ids, base, n_trees=n_trees, search_k=search_k, seed=seed, n_jobs=n_jobs
        )
        manifest["total_seconds"] = round(time.perf_counter() - t0, 3)
        published = self._publish(version, manifest, keep_ids, min(started, read_at), keep_versions)
        self.last_build = {
            "version": version,
            "published": published,
            "manifest": manifest,
            "current": self.store.read_current()[0],
        }
        return version

    def _publish(self, version: str, manifest: dict, keep_ids: list[str], indexed_before: float, keep: int) -> bool:
        with self.store.lock:
            published = self.store.publish(version, sequence(manifest))
            if published:
                # Users now in the index leave the fresh buffer, unless re-added after the features were read.
                self.fresh.discard(keep_ids, added_before=indexed_before)
            self.store.prune(keep, version if published else self.store.read_current()[0])
        try:
            self.tombstones.repair()  # one damaged copy: rewrite it from the other
        except (RemovalsUnreadable, OSError) as e:
            log.warning("could not repair the removed-users list: %s", e)
        if published:
            log.info("index %s published: %d users, dim %d (%s)", version, manifest["count"], manifest["dim"], self.backend.name)
        else:
            log.warning("index %s built from older data than the published version: not published", version)
        return published

    def _write_version(self, version: str, data: np.ndarray, ids: list[str], base: dict, **opts) -> dict:
        """Write the version directory aside, fsync it, rename it into place; returns its manifest."""
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        tmp_dir = self.versions_dir / f".tmp-{version}"
        tmp_dir.mkdir()
        try:
            params = self.backend.build(tmp_dir, data, **opts)
            (tmp_dir / IDS_FILE).write_text(json.dumps(ids, ensure_ascii=False), encoding="utf-8")
            with open(tmp_dir / PAIRS_FILE, "wb") as f:
                np.save(f, self._sample_pair_similarities(data, int(opts.get("seed", 0))))
            files = {
                name: {"sha256": sha256_file(tmp_dir / name), "bytes": (tmp_dir / name).stat().st_size}
                for name in self.backend.files + COMMON_FILES
            }
            manifest = {"version": version, **base, **params, "files": files, "checksum": files[self.backend.files[0]]["sha256"]}
            (tmp_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
            commit_directory(tmp_dir, self.versions_dir / version)  # fsyncs every file, then renames
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise
        return manifest

    @staticmethod
    def _sample_pair_similarities(data: np.ndarray, seed: int) -> np.ndarray:
        """Cosine of random distinct pairs: the reference distribution for "closer than X% of pairs"."""
        n = data.shape[0]
        if n < 2:
            return np.zeros(0, dtype=np.float32)
        rng = np.random.default_rng(seed + 1)
        m = min(PAIR_SAMPLE, n * (n - 1) // 2 * 2)
        i = rng.integers(0, n, m)
        j = (i + rng.integers(1, n, m)) % n  # never i itself
        sims = np.einsum("ij,ij->i", data[i], data[j]).astype(np.float32)
        return np.sort(np.clip(sims, -1.0, 1.0))

    # ------------------------------------------------------------------ versions
    def versions(self) -> list[str]:
        """Published version names, newest name first."""
        return self.store.names()

    def current_version_name(self) -> str | None:
        """The version ``CURRENT`` names, if it is a valid pointer to an existing version."""
        return self.store.read_current()[0]

    def verify(self, version: str) -> dict:
        """The manifest of ``version`` if it has the right shape and every file matches its checksum, else IndexCorrupt."""
        manifest = self.store.verify(version)
        why = _backend_of(manifest).check_manifest(manifest)
        if why:
            raise IndexCorrupt(f"index version {version}: manifest {why}")
        return manifest

    def _open(self, version: str) -> _Loaded:
        manifest = self.verify(version)  # before the backend touches the file: a corrupt one could crash it
        vdir = self.versions_dir / version
        try:
            ids = json.loads((vdir / IDS_FILE).read_bytes().decode("utf-8"))
            pair_sims = np.load(vdir / PAIRS_FILE, allow_pickle=False)
        except (OSError, ValueError, UnicodeDecodeError, EOFError) as e:
            raise IndexCorrupt(f"index version {version}: {_one_line(str(e), 120)}") from None
        if not isinstance(ids, list) or not all(isinstance(u, str) for u in ids) or len(set(ids)) != len(ids):
            raise IndexCorrupt(f"index version {version}: {IDS_FILE} is not a list of distinct user ids")
        if pair_sims.ndim != 1 or pair_sims.dtype.kind != "f":
            raise IndexCorrupt(f"index version {version}: {PAIRS_FILE} is not a 1-D float array")
        backend = _backend_of(manifest)
        searcher = backend.open(vdir, manifest)
        if searcher.n_items != len(ids) or len(ids) != manifest["count"]:
            raise IndexCorrupt(
                f"index version {version}: {searcher.n_items} vectors, {len(ids)} ids, manifest says {manifest['count']}"
            )
        ann_path = vdir / backend.files[0]
        return _Loaded(
            version, manifest, searcher, ids, {u: i for i, u in enumerate(ids)}, pair_sims, ann_path, stat_key(ann_path)
        )

    def _fresh_enough(self, loaded: _Loaded | None, key: tuple) -> TypeGuard[_Loaded]:
        return loaded is not None and key == self._current_key and stat_key(loaded.ann_path) == loaded.ann_key

    def _current(self) -> _Loaded:
        """The version to serve; re-checked with three stats per call so new builds are picked up live."""
        key = (stat_key(self.current_path), stat_key(self.versions_dir))
        if self._fresh_enough(self._loaded, key):
            return self._loaded
        with self._load_lock:
            key = (stat_key(self.current_path), stat_key(self.versions_dir))
            loaded = self._loaded
            if self._fresh_enough(loaded, key):
                return loaded
            target, order, warnings, bad = self.store.candidates()
            if not order:
                if bad:
                    raise IndexCorrupt(
                        _one_line(f"no valid index version ({'; '.join(bad.values())}): run 'soundmates index build'")
                    )
                raise IndexNotBuilt("no index has been built yet (run 'soundmates index build')")
            chosen, problems = None, []
            for version in order:
                if loaded is not None and version == loaded.version and stat_key(loaded.ann_path) == loaded.ann_key:
                    chosen = loaded  # already verified and mapped
                    break
                try:
                    chosen = self._open(version)
                    break
                except IndexCorrupt as e:
                    # INFO, not WARNING: the problem is reported once, through ``self.warnings``, by
                    # whoever serves (the CLI prints it as ``warning: ...``); both printed it twice.
                    log.info("%s", e)
                    problems.append(str(e))
            if chosen is None:
                raise IndexCorrupt(_one_line(f"no valid index version ({'; '.join(problems)}): run 'soundmates index build'"))
            if target is not None and chosen.version != target:
                warnings.append(
                    _one_line(
                        f"{problems[0]}: index version {target} is corrupt or incomplete, "
                        f"serving previous version {chosen.version}"
                    )
                )
            elif problems:
                warnings.append(_one_line(f"skipped damaged versions ({'; '.join(problems)}); serving {chosen.version}"))
            for w in warnings:
                log.info("%s", w)  # reported to the person by the caller (see above)
            self._loaded, self._current_key, self.warnings = chosen, key, warnings
            return chosen

    def _serving(self) -> tuple[_Loaded | None, TombState, list[str]]:
        """(version to serve or None if nothing is built, removals, warnings); raises if serving would be unsafe."""
        tombs = self.tombstones.state()  # RemovalsUnreadable: fail closed
        try:
            loaded = self._current()
        except IndexNotBuilt:
            loaded = None
        warnings = list(self.warnings) if loaded is not None else []
        if loaded is not None:
            built_with = max(self._removals_seen(loaded), loaded.manifest.get("tombstones_count") or 0)
            if is_int(built_with) and built_with > len(tombs.users):
                raise RemovalsUnreadable(
                    f"the removed-users list holds {len(tombs.users)} removals but index version {loaded.version} "
                    f"was built when it held {built_with}: removals were lost, so nothing is served; restore "
                    f"{self.tombstones.path} from a backup copy"
                )
        warnings += tombs.warnings
        if self.fresh.problem:
            warnings.append(f"{self.fresh.problem}: users added since the last build appear after 'soundmates index build'")
        return loaded, tombs, warnings

    def _removals_seen(self, loaded: _Loaded) -> int:
        """How many removals existed when this version last saw one (0 if never, or if the note is unreadable)."""
        path = self.versions_dir / loaded.version / REMOVALS_SEEN_FILE
        key = stat_key(path)
        if key is None or key == loaded.removals_seen[0]:
            return loaded.removals_seen[1] if key is not None else 0
        try:
            n = json.loads(path.read_bytes()).get("count")
        except (OSError, ValueError, AttributeError):
            n = 0
        loaded.removals_seen = (key, n if is_int(n) else 0)
        return loaded.removals_seen[1]

    def _note_removals(self, count: int) -> None:
        for version in self.versions():
            try:
                atomic_write_bytes(self.versions_dir / version / REMOVALS_SEEN_FILE, json.dumps({"count": count}).encode())
            except OSError as e:  # the removal itself is recorded; this is only the guard against losing it
                log.warning("could not note removals in index version %s: %s", version, e)

    def _blocked_in(self, loaded: _Loaded, tombs: TombState) -> frozenset[str]:
        """Indexed users whose indexed vector comes from data read before their removal (or their comeback)."""
        state, ids = loaded.blocked
        if state is not tombs:
            ids = frozenset(u for u, t in tombs.users.items() if u in loaded.positions and t.blocks(loaded.read_at))
            loaded.blocked = (tombs, ids)
        return ids

    def manifest(self) -> dict | None:
        """Manifest of the version being served (plus live ``fresh`` and ``tombstones`` counts), or None."""
        loaded, tombs, _ = self._serving()
        if loaded is None:
            return None
        m = dict(loaded.manifest)
        m["fresh"] = {"count": len(self.fresh), "threshold": self.fresh_threshold}
        m["tombstones"] = sum(1 for t in tombs.users.values() if t.removed)
        return m

    # ------------------------------------------------------------------ queries
    def _usable_fresh(self, loaded: _Loaded | None, dim: int, tombs: TombState) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Fresh entries comparable with the served index (same dimension and model), none of a removed user."""
        e = self.fresh.entries()
        if not len(e):
            return e.ids, e.vectors.reshape(0, dim), []
        key = (e, tombs, loaded.version if loaded is not None else None, dim)
        cached = self._fresh_memo
        if cached is not None and cached[0][0] is e and cached[0][1] is tombs and cached[0][2:] == key[2:]:
            return cached[1]
        ok = np.ones(len(e), dtype=bool)
        warnings = []
        if e.vectors.shape[1] != dim:
            ok[:] = False
        elif loaded is not None and loaded.manifest.get("model_version"):
            ok &= (e.model_versions == "") | (e.model_versions == loaded.manifest["model_version"])
        if not ok.all():
            warnings.append(
                f"{int((~ok).sum())} fresh users were embedded by another model than index "
                f"{loaded.version if loaded else '-'}: they appear after the next 'soundmates index build'"
            )
        if tombs.users:
            for i, (u, at) in enumerate(zip(e.ids.tolist(), e.added_at.tolist())):
                t = tombs.users.get(u)
                if t is not None and t.blocks(at):
                    ok[i] = False
        result = (e.ids[ok], e.vectors[ok].reshape(-1, dim), warnings)
        self._fresh_memo = (key, result)  # recomputed only when the buffer, the removals or the version change
        return result

    def _dim(self, loaded: _Loaded | None) -> int:
        return loaded.dim if loaded is not None else int(self.fresh.entries().vectors.shape[1])

    def search(self, vector, k: int = 10, exclude: Iterable[str] = ()) -> SearchResult:
        """Top-k users by cosine: Annoy ∪ fresh buffer − removed users − ``exclude``, best first."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        v = normalise(vector)
        exclude = set(exclude)
        loaded, tombs, warnings = self._serving()
        if loaded is None and not len(self.fresh):
            raise IndexNotBuilt("no index has been built yet (run 'soundmates index build')")
        dim = self._dim(loaded)
        if v.shape[0] != dim:
            raise ValueError(f"query vector has dimension {v.shape[0]}, the index holds dimension {dim}")
        fresh_ids, fresh_vecs, fresh_warn = self._usable_fresh(loaded, dim, tombs)
        warnings += fresh_warn
        best: dict[str, Hit] = {}
        for u, s in zip(fresh_ids.tolist(), (fresh_vecs @ v).tolist() if fresh_ids.size else []):
            if u not in exclude:
                best[u] = Hit(u, float(max(-1.0, min(1.0, s))), "fresh")
        if loaded is not None and getattr(loaded.searcher, "native_updates", False):
            best = {u: Hit(u, s, src) for u, s, src in self._search_native(loaded, tombs, fresh_ids, fresh_vecs, v, k, exclude)}
        elif loaded is not None:
            # A fresh entry replaces the user's indexed vector (re-added with a newer profile).
            shadowed = exclude | self._blocked_in(loaded, tombs) | set(fresh_ids.tolist())
            for u, s in self._search_index(loaded, v, k, shadowed):
                best.setdefault(u, Hit(u, s, "index"))
        hits = sorted(best.values(), key=lambda h: (-h.score, h.user_id))[:k]
        return SearchResult(loaded.version if loaded else None, hits, warnings)

    @staticmethod
    def _search_index(loaded: _Loaded, v: np.ndarray, k: int, shadowed: set[str]) -> list[tuple[str, float]]:
        count = int(loaded.manifest["count"])
        # Ask for exactly as many extra results as indexed users will be filtered out.
        want = min(count, k + sum(1 for u in shadowed if u in loaded.positions))
        while True:
            got = [(loaded.ids[i], s) for i, s in loaded.searcher.search(v, want) if loaded.ids[i] not in shadowed]
            if len(got) >= k or want >= count:
                return got
            want = min(count, want * 2)

    def _sync_native(self, loaded: _Loaded, tombs: TombState, fresh_ids: np.ndarray, fresh_vecs: np.ndarray) -> None:
        """Apply removals as native deletes and fresh users as in-place adds (once per change of either file)."""
        st, entries, searcher = loaded.native, self.fresh.entries(), loaded.searcher
        if st.get("tombs") is tombs and st.get("fresh") is entries:
            return
        fresh_pos, pos_user = st.setdefault("fresh_pos", {}), st.setdefault("pos_user", {})
        wanted = dict(zip(fresh_ids.tolist(), fresh_vecs))
        for u, (pos, vec) in list(fresh_pos.items()):
            if u not in wanted or not np.array_equal(wanted[u], vec):
                searcher.delete(pos)
                del fresh_pos[u], pos_user[pos]
        for u, vec in wanted.items():
            if u not in fresh_pos:
                pos = searcher.add(vec)
                fresh_pos[u], pos_user[pos] = (pos, vec.copy()), u
        # Indexed vectors hidden: removed users, and users whose fresh entry replaces theirs.
        hide = {loaded.positions[u] for u in self._blocked_in(loaded, tombs) | set(wanted) if u in loaded.positions}
        deleted = st.get("deleted", set())
        for pos in hide - deleted:
            searcher.delete(pos)
        for pos in deleted - hide:
            searcher.undelete(pos)
        st.update(deleted=hide, tombs=tombs, fresh=entries)

    def _search_native(self, loaded: _Loaded, tombs, fresh_ids, fresh_vecs, v, k, exclude) -> list[tuple[str, float, str]]:
        """One graph search of an index that holds the fresh users and has the removed ones deleted."""
        lock = loaded.native.setdefault("lock", threading.Lock())
        with lock:
            self._sync_native(loaded, tombs, fresh_ids, fresh_vecs)
            pos_user, n = loaded.native["pos_user"], loaded.searcher.n_items
            want = k + len(exclude)
            while True:
                raw = loaded.searcher.search(v, want)
                got = [(loaded.ids[p], s, "index") if p < n else (pos_user[p], s, "fresh") for p, s in raw]
                got = [g for g in got if g[0] not in exclude]
                if len(got) >= k or len(raw) < want:
                    return got
                want *= 2

    def query(self, vector, k: int = 10, exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
        """ARCHITECTURE.md contract: [(user_id, cosine)] best first."""
        return [(h.user_id, h.score) for h in self.search(vector, k, exclude).hits]

    def vector(self, user_id: str) -> np.ndarray | None:
        """The served (normalised) vector of a user: fresh buffer first, then the index; None if unknown/removed."""
        loaded, tombs, _ = self._serving()
        if loaded is None and not len(self.fresh):
            return None
        ids, vecs, _ = self._usable_fresh(loaded, self._dim(loaded), tombs)
        hit = np.flatnonzero(ids == user_id)
        if hit.size:
            return vecs[hit[-1]].copy()
        if loaded is not None and user_id in loaded.positions and user_id not in self._blocked_in(loaded, tombs):
            return loaded.searcher.vector(loaded.positions[user_id])
        return None

    def __contains__(self, user_id: str) -> bool:
        return self.vector(user_id) is not None

    def all_vectors(self, limit: int | None = None) -> tuple[list[str], np.ndarray]:
        """Every served user's vector (index ∪ fresh − removed); ``limit`` keeps an evenly spaced subset of the index."""
        loaded, tombs, _ = self._serving()
        if loaded is None and not len(self.fresh):
            return [], np.zeros((0, 0), dtype=np.float32)
        dim = self._dim(loaded)
        fresh_ids, fresh_vecs, _ = self._usable_fresh(loaded, dim, tombs)
        if loaded is None:
            return fresh_ids.tolist(), fresh_vecs
        hidden = self._blocked_in(loaded, tombs) | set(fresh_ids.tolist())
        positions = [i for i, u in enumerate(loaded.ids) if u not in hidden]
        if limit is not None and len(positions) > limit:
            positions = [positions[int(j)] for j in np.linspace(0, len(positions) - 1, limit)]
        vecs = np.array([loaded.searcher.vector(i) for i in positions], dtype=np.float32).reshape(-1, dim)
        return [loaded.ids[i] for i in positions] + fresh_ids.tolist(), np.vstack([vecs, fresh_vecs])

    def percentile(self, score: float) -> float | None:
        """% of sampled user pairs less similar than ``score`` ("closer than X% of pairs")."""
        try:
            sims = self._current().pair_sims
        except IndexNotBuilt:
            return None
        if sims.size == 0:
            return None
        return round(100.0 * float(np.searchsorted(sims, score, side="left")) / sims.size, 1)

    # ------------------------------------------------------------------ changes
    def add_fresh(self, user_id: str, vector, model_version: str | None = None, *, read_at: float | None = None) -> bool:
        """Make ``user_id`` findable now from this (new) vector, until the next build includes them.

        After a removal this is how a user comes back: the vector is served, and so are vectors of
        later builds from data read after this moment; older vectors of the user stay blocked.
        ``read_at`` (epoch s): when the data behind ``vector`` was read; a vector read before the
        user's removal is not added (returns False), so a caller racing a removal cannot revive old data.
        """
        v = normalise(vector)
        try:
            loaded = self._current()
        except (IndexNotBuilt, IndexCorrupt):
            loaded = None
        if loaded is not None and v.shape[0] != loaded.dim:
            raise ValueError(f"vector for {user_id!r} has dimension {v.shape[0]}, index {loaded.version} holds {loaded.dim}")
        if model_version is None and loaded is not None:
            model_version = loaded.manifest.get("model_version") or ""
        at = time.time()
        tomb = self.tombstones.records().get(user_id)  # unreadable removals raise: never revive blindly
        if tomb is not None and tomb.removed:
            if read_at is not None and not read_at >= tomb.removed_at:
                log.warning("not adding %r: its vector comes from data read before the removal", user_id)
                return False
            self.tombstones.revive(user_id, at)
        self.fresh.add(user_id, v, model_version or "", at=at)
        return True

    def remove(self, user_id: str) -> bool:
        """Hide ``user_id`` from every query at once and block every vector of theirs from data read until now.

        True if the user was not already removed.
        """
        added = self.tombstones.add(user_id)
        self.fresh.discard([user_id])
        self._note_removals(len(self.tombstones))
        return added

    def is_removed(self, user_id: str) -> bool:
        """True if ``user_id`` was removed and no newer vector has been added since."""
        return self.tombstones.is_removed(user_id)

    def blocked_ids(self, user_ids: Iterable[str], data_time: float) -> set[str]:
        """Which of ``user_ids`` must not be indexed from data read at ``data_time``."""
        users = self.tombstones.records()
        return {u for u in user_ids if u in users and users[u].blocks(data_time)}

    # ------------------------------------------------------------------ status
    def rebuild_due(self) -> bool:
        """True once the fresh buffer holds ``settings.fresh_buffer_threshold`` users (or nothing is built)."""
        if self.current_version_name() is None and not self.versions():
            return len(self.fresh) > 0
        return len(self.fresh) >= self.fresh_threshold

    def status(self) -> dict:
        """What is served (IndexCorrupt if nothing valid can be, RemovalsUnreadable if removals cannot be read)."""
        loaded, tombs, warnings = self._serving()
        m = loaded.manifest if loaded is not None else None
        age = None
        if m and m.get("built_at"):
            built = datetime.fromisoformat(m["built_at"])
            if built.tzinfo is None:
                built = built.replace(tzinfo=UTC)
            age = (datetime.now(UTC) - built).total_seconds()
        calib = (m or {}).get("calibration") or {}
        return {
            "version": m["version"] if m else None,
            "backend": (m.get("backend") or "annoy") if m else None,
            "count": m["count"] if m else 0,
            "dim": m["dim"] if m else None,
            "built_at": m.get("built_at") if m else None,
            "age_s": round(age, 1) if age is not None else None,
            "model_version": m.get("model_version") if m else None,
            "feature_data_version": m.get("feature_data_version") if m else None,
            "features_read_at": m.get("features_read_at") if m else None,
            "parameters": {
                **{k: m[k] for k in ("metric", "n_trees", "search_k", "M", "ef") if k in m},
                "calibrated_recall_at_10": calib.get("recall_at_k"),
            }
            if m
            else {},
            "fresh": len(self.fresh),
            "fresh_threshold": self.fresh_threshold,
            "rebuild_due": self.rebuild_due(),
            "tombstones": sum(1 for t in tombs.users.values() if t.removed),
            "warnings": list(dict.fromkeys(warnings)),
        }
