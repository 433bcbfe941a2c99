"""The user index: Annoy (angular) versions published atomically, plus fresh users and tombstones.

Layout under ``settings.index_dir``::

    CURRENT                      name of the published version (replaced with os.replace)
    versions/<version>/          users.ann, ids.json, pair_sims.npy, manifest.json (sha256 of each file)
    fresh.npz                    users added since the last build (exact search)
    tombstones.json              removed users, hidden from every query and every later build

A build writes a whole version directory aside (``versions/.tmp-*``), fsyncs it, renames it into
place, then swaps ``CURRENT``. Readers memory-map the Annoy file and check ``CURRENT`` (one stat)
on every query, so a new version is picked up without a restart. A version whose files do not
match their checksums is never loaded: the newest older valid version is served, with a warning.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from soundmates.index._files import atomic_write_bytes, fsync_dir, fsync_file, sha256_file, stat_key
from soundmates.index.fresh import FreshBuffer, normalise
from soundmates.index.tombstones import Tombstones
from soundmates.index.tuning import calibrate_search_k, choose_n_trees

log = logging.getLogger("soundmates.index")

ANN_FILE = "users.ann"
IDS_FILE = "ids.json"
PAIRS_FILE = "pair_sims.npy"
MANIFEST_FILE = "manifest.json"
PAIR_SAMPLE = 20_000
KEEP_VERSIONS = 3
STALE_TMP_S = 3600.0


class IndexNotBuilt(RuntimeError):
    """No index version has been published (and the fresh buffer is empty)."""


class IndexCorrupt(RuntimeError):
    """A version's files are missing, truncated or do not match their manifest checksums."""


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
    annoy: Any
    ids: list[str]
    positions: dict[str, int]
    pair_sims: np.ndarray
    ann_path: Path
    ann_key: tuple | None

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])


def cosine_from_angular(distance: float) -> float:
    """Annoy's angular distance is sqrt(2 - 2 cos) of the normalised vectors."""
    return float(max(-1.0, min(1.0, 1.0 - distance * distance / 2.0)))


def _new_version_name() -> str:
    # Sortable by build time; the random suffix keeps two builds in the same microsecond apart.
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


class UserIndex:
    def __init__(self, settings=None, *, root: Path | None = None):
        if root is None:
            if settings is None:
                from soundmates.config import get_settings

                settings = get_settings()
            root = settings.index_dir
        self.settings = settings
        self.root = Path(root)
        self.versions_dir = self.root / "versions"
        self.current_path = self.root / "CURRENT"
        self.fresh = FreshBuffer(self.root / "fresh.npz")
        self.tombstones = Tombstones(self.root / "tombstones.json")
        self.fresh_threshold = int(getattr(settings, "fresh_buffer_threshold", 1000) or 1000)
        self._build_lock = FileLock(str(self.root / ".build.lock"))
        self._load_lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._current_key: tuple | None = None
        #: Warnings about the version being served (e.g. fell back from a corrupt one).
        self.warnings: list[str] = []

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
        """Build and publish a new version from ``vectors[i]`` = embedding of ``user_ids[i]``; returns its name.

        Tombstoned users are left out; rows with NaN/zero vectors are skipped and listed in the
        manifest (one bad user does not fail the build). ``search_k`` None = calibrated by measurement.
        """
        from annoy import AnnoyIndex

        started = time.time()
        t0 = time.perf_counter()
        meta = dict(meta or {})
        ids = [str(u) for u in user_ids]
        mat = np.asarray(vectors, dtype=np.float32)
        if mat.ndim != 2:
            raise ValueError(f"vectors must be a 2-D array (users x dim), got shape {mat.shape}")
        if mat.shape[0] != len(ids):
            raise ValueError(f"{len(ids)} user ids but {mat.shape[0]} vectors")
        if mat.shape[1] == 0:
            raise ValueError("vectors have dimension 0")

        norms = np.linalg.norm(mat, axis=1)
        finite = np.all(np.isfinite(mat), axis=1) & np.isfinite(norms)
        good = finite & (norms > 0) & np.array([bool(u) for u in ids], dtype=bool)
        skipped = [u for u, g in zip(ids, good) if not g]
        dead = self.tombstones.ids()
        # Keep the last row of a duplicated id (the newest embedding), drop tombstoned users.
        last_row: dict[str, int] = {}
        for i, (u, g) in enumerate(zip(ids, good)):
            if g and u not in dead:
                last_row[u] = i
        duplicates = int(good.sum()) - len(last_row) - sum(1 for u, g in zip(ids, good) if g and u in dead)
        rows = np.fromiter(last_row.values(), dtype=np.int64, count=len(last_row))
        keep_ids = list(last_row.keys())
        if not keep_ids:
            raise ValueError(
                f"nothing to index: {len(ids)} users given, {len(skipped)} with unusable vectors, "
                f"{len(dead & set(ids))} removed"
            )
        if skipped:
            log.warning("index build: skipped %d users with NaN or zero vectors: %s", len(skipped), skipped[:10])
        data = mat[rows] / norms[rows, None]
        n, dim = data.shape

        nt = int(n_trees) if n_trees else choose_n_trees(n)
        version = _new_version_name()
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        tmp_dir = self.versions_dir / f".tmp-{version}"
        tmp_dir.mkdir()
        try:
            ann = AnnoyIndex(dim, "angular")
            ann.set_seed(seed)
            for i in range(n):
                ann.add_item(i, data[i])
            ann.build(nt, n_jobs=n_jobs)
            t_built = time.perf_counter()
            if search_k is None:
                calib = calibrate_search_k(ann, data, nt, seed=seed)
            else:
                calib = {"search_k": int(search_k), "recall_at_k": None, "calibration_queries": 0, "steps": []}
            ann_path = tmp_dir / ANN_FILE
            ann.save(str(ann_path))
            ann.unload()
            fsync_file(ann_path)

            (tmp_dir / IDS_FILE).write_text(json.dumps(keep_ids, ensure_ascii=False), encoding="utf-8")
            fsync_file(tmp_dir / IDS_FILE)
            pair_sims = self._sample_pair_similarities(data, seed)
            with open(tmp_dir / PAIRS_FILE, "wb") as f:
                np.save(f, pair_sims)
                f.flush()
                os.fsync(f.fileno())

            files = {
                name: {"sha256": sha256_file(tmp_dir / name), "bytes": (tmp_dir / name).stat().st_size}
                for name in (ANN_FILE, IDS_FILE, PAIRS_FILE)
            }
            manifest = {
                "version": version,
                "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "model_version": meta.pop("model_version", None),
                "feature_data_version": meta.pop("feature_data_version", None),
                "count": n,
                "dim": dim,
                "metric": "angular",
                "n_trees": nt,
                "search_k": int(calib["search_k"]),
                "calibration": calib,
                "checksum": files[ANN_FILE]["sha256"],
                "files": files,
                "skipped": skipped[:100],
                "n_skipped": len(skipped),
                "n_duplicates": duplicates,
                "build_seconds": round(t_built - t0, 3),
                "total_seconds": round(time.perf_counter() - t0, 3),
                "meta": meta,
            }
            (tmp_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
            fsync_file(tmp_dir / MANIFEST_FILE)
            fsync_dir(tmp_dir)
            final_dir = self.versions_dir / version
            os.replace(tmp_dir, final_dir)
            fsync_dir(self.versions_dir)
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise

        with self._build_lock:
            atomic_write_bytes(self.current_path, (version + "\n").encode())
            # Users now in the index leave the fresh buffer, unless re-added while this build ran.
            self.fresh.discard(keep_ids, added_before=started)
            self._prune(keep_versions, version)
        log.info("index %s published: %d users, dim %d, n_trees %d, search_k %d", version, n, dim, nt, manifest["search_k"])
        return version

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

    def _prune(self, keep: int, current: str) -> None:
        versions = self.versions()
        for v in versions[max(keep, 2) :]:
            if v != current:
                shutil.rmtree(self.versions_dir / v, ignore_errors=True)
        now = time.time()
        for tmp in self.versions_dir.glob(".tmp-*"):
            try:
                if now - tmp.stat().st_mtime > STALE_TMP_S:  # a crashed build's leftovers
                    shutil.rmtree(tmp, ignore_errors=True)
            except FileNotFoundError:
                pass

    # ------------------------------------------------------------------ versions
    def versions(self) -> list[str]:
        """Published version names, newest first."""
        if not self.versions_dir.exists():
            return []
        return sorted((p.name for p in self.versions_dir.iterdir() if p.is_dir() and not p.name.startswith(".")), reverse=True)

    def current_version_name(self) -> str | None:
        try:
            return self.current_path.read_text().strip() or None
        except FileNotFoundError:
            return None

    def verify(self, version: str) -> dict:
        """The manifest of ``version`` if every file matches its checksum, else IndexCorrupt."""
        vdir = self.versions_dir / version
        try:
            manifest = json.loads((vdir / MANIFEST_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise IndexCorrupt(f"index version {version}: manifest missing") from e
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise IndexCorrupt(f"index version {version}: manifest unreadable ({e})") from e
        files = manifest.get("files")
        if not isinstance(files, dict) or ANN_FILE not in files:
            raise IndexCorrupt(f"index version {version}: manifest lists no files")
        for name, info in files.items():
            path = vdir / name
            if not path.exists():
                raise IndexCorrupt(f"index version {version}: {name} missing")
            size = path.stat().st_size
            if size != info.get("bytes"):
                raise IndexCorrupt(f"index version {version}: {name} has {size} bytes, manifest says {info.get('bytes')}")
            if sha256_file(path) != info.get("sha256"):
                raise IndexCorrupt(f"index version {version}: {name} does not match its checksum")
        return manifest

    def _open(self, version: str) -> _Loaded:
        from annoy import AnnoyIndex

        manifest = self.verify(version)  # before Annoy touches the file: a corrupt one could crash it
        vdir = self.versions_dir / version
        ann_path = vdir / ANN_FILE
        ann_key = stat_key(ann_path)
        ann = AnnoyIndex(int(manifest["dim"]), "angular")
        ann.load(str(ann_path), prefault=False)
        ids = json.loads((vdir / IDS_FILE).read_text(encoding="utf-8"))
        if ann.get_n_items() != len(ids) or len(ids) != manifest["count"]:
            raise IndexCorrupt(
                f"index version {version}: {ann.get_n_items()} vectors, {len(ids)} ids, manifest says {manifest['count']}"
            )
        pair_sims = np.load(vdir / PAIRS_FILE, allow_pickle=False)
        return _Loaded(version, manifest, ann, ids, {u: i for i, u in enumerate(ids)}, pair_sims, ann_path, ann_key)

    def _current(self) -> _Loaded:
        """The version to serve; re-checked with two stats per call so new builds are picked up live."""
        key = stat_key(self.current_path)
        loaded = self._loaded
        if loaded is not None and key == self._current_key and stat_key(loaded.ann_path) == loaded.ann_key:
            return loaded
        with self._load_lock:
            loaded = self._loaded
            key = stat_key(self.current_path)
            if loaded is not None and key == self._current_key and stat_key(loaded.ann_path) == loaded.ann_key:
                return loaded
            target = self.current_version_name()
            if target is None:
                raise IndexNotBuilt("no index has been built yet (run 'soundmates index build')")
            older = [v for v in self.versions() if v < target]
            warnings: list[str] = []
            for version in [target, *older]:
                if loaded is not None and version == loaded.version and stat_key(loaded.ann_path) == loaded.ann_key:
                    chosen = loaded  # already verified and mapped
                    break
                try:
                    chosen = self._open(version)
                    break
                except IndexCorrupt as e:
                    msg = f"{e}; serving an older version" if version == target else str(e)
                    log.warning("%s", msg)
                    warnings.append(msg)
            else:
                raise IndexCorrupt("; ".join(warnings) or "no index version could be loaded")
            if chosen.version != target:
                msg = f"index version {target} is corrupt or incomplete: serving previous version {chosen.version}"
                log.warning("%s", msg)
                warnings.append(msg)
            self._loaded = chosen
            self._current_key = key
            self.warnings = warnings
            return chosen

    def manifest(self) -> dict | None:
        """Manifest of the version being served (plus live ``fresh`` and ``tombstones`` counts), or None."""
        try:
            m = dict(self._current().manifest)
        except IndexNotBuilt:
            return None
        m["fresh"] = {"count": len(self.fresh), "threshold": self.fresh_threshold}
        m["tombstones"] = len(self.tombstones)
        return m

    # ------------------------------------------------------------------ queries
    def _usable_fresh(self, loaded: _Loaded | None, dim: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Fresh entries comparable with the served index (same dimension and model)."""
        e = self.fresh.entries()
        if not len(e):
            return e.ids, e.vectors.reshape(0, dim), []
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
        return e.ids[ok], e.vectors[ok], warnings

    def _back_since_removal(self) -> set[str]:
        """Removed users with a fresh vector added after their removal (new data): served again."""
        dead = self.tombstones.all()
        if not dead:
            return set()
        e = self.fresh.entries()
        return {u for u, t in zip(e.ids.tolist(), e.added_at.tolist())
                if u in dead and t > (self.tombstones.removed_at(u) or math.inf)}

    def is_removed(self, user_id: str) -> bool:
        """True while ``user_id`` is tombstoned and no vector from data read since has been added."""
        return user_id in self.tombstones and user_id not in self._back_since_removal()

    def search(self, vector, k: int = 10, exclude: Iterable[str] = ()) -> SearchResult:
        """Top-k users by cosine: Annoy ∪ fresh buffer − tombstones − ``exclude``, best first."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        v = normalise(vector)
        exclude = set(exclude)
        # Annoy's vectors of a removed user predate the removal: always hidden. A fresh vector added
        # after the removal (new data through the pipeline) is served.
        dead = self.tombstones.ids()
        hidden = exclude | (dead - self._back_since_removal())
        try:
            loaded = self._current()
        except IndexNotBuilt:
            if not len(self.fresh):
                raise
            loaded = None
        warnings = list(self.warnings) if loaded is not None else []
        dim = loaded.dim if loaded is not None else self.fresh.entries().vectors.shape[1]
        if v.shape[0] != dim:
            raise ValueError(f"query vector has dimension {v.shape[0]}, the index holds dimension {dim}")

        fresh_ids, fresh_vecs, fresh_warn = self._usable_fresh(loaded, dim)
        warnings += fresh_warn
        best: dict[str, Hit] = {}
        if fresh_ids.size:
            sims = fresh_vecs @ v
            for u, s in zip(fresh_ids.tolist(), sims.tolist()):
                if u not in hidden:
                    best[u] = Hit(u, float(max(-1.0, min(1.0, s))), "fresh")
        if loaded is not None:
            # A fresh entry replaces the user's indexed vector (re-added with a newer profile).
            shadowed = hidden | dead | set(fresh_ids.tolist())
            count = int(loaded.manifest["count"])
            # Ask Annoy for exactly as many extra results as indexed users will be filtered out.
            n_shadowed = sum(1 for u in shadowed if u in loaded.positions)
            want = min(count, k + n_shadowed)
            while True:
                # search_k was calibrated for 10 results; scale it with the number asked for.
                sk = max(int(loaded.manifest["search_k"] * max(1.0, want / 10)), want * int(loaded.manifest["n_trees"]))
                items, dists = loaded.annoy.get_nns_by_vector(v, want, search_k=sk, include_distances=True)
                got = [(loaded.ids[i], d) for i, d in zip(items, dists) if loaded.ids[i] not in shadowed]
                if len(got) >= k or want >= count:
                    break
                want = min(count, want * 2)
            for u, d in got:
                best.setdefault(u, Hit(u, cosine_from_angular(d), "index"))
        hits = sorted(best.values(), key=lambda h: (-h.score, h.user_id))[:k]
        return SearchResult(loaded.version if loaded else None, hits, warnings)

    def query(self, vector, k: int = 10, exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
        """ARCHITECTURE.md contract: [(user_id, cosine)] best first."""
        return [(h.user_id, h.score) for h in self.search(vector, k, exclude).hits]

    def vector(self, user_id: str) -> np.ndarray | None:
        """The stored (normalised) vector of a user: fresh buffer first, then the index; None if unknown/removed."""
        if self.is_removed(user_id):
            return None
        removed = user_id in self.tombstones  # and back since, through the fresh buffer only
        try:
            loaded = self._current()
        except IndexNotBuilt:
            loaded = None
        dim = loaded.dim if loaded is not None else None
        if dim is not None:
            ids, vecs, _ = self._usable_fresh(loaded, dim)
            hit = np.flatnonzero(ids == user_id)
            if hit.size:
                return vecs[hit[-1]].copy()
        else:
            fv = self.fresh.vector(user_id)
            if fv is not None:
                return fv.copy()
        if loaded is not None and user_id in loaded.positions and not removed:
            return np.asarray(loaded.annoy.get_item_vector(loaded.positions[user_id]), dtype=np.float32)
        return None

    def __contains__(self, user_id: str) -> bool:
        return self.vector(user_id) is not None

    def all_vectors(self, limit: int | None = None) -> tuple[list[str], np.ndarray]:
        """Every live user's vector (index ∪ fresh − tombstones); ``limit`` keeps an evenly spaced subset."""
        dead = self.tombstones.ids()
        back = self._back_since_removal()
        try:
            loaded = self._current()
        except IndexNotBuilt:
            loaded = None
        if loaded is None:
            e = self.fresh.entries()
            keep = [i for i, u in enumerate(e.ids.tolist()) if u not in dead or u in back]
            return [str(e.ids[i]) for i in keep], e.vectors[keep]
        fresh_ids, fresh_vecs, _ = self._usable_fresh(loaded, loaded.dim)
        fresh_set = set(fresh_ids.tolist())
        positions = [i for i, u in enumerate(loaded.ids) if u not in dead and u not in fresh_set]
        if limit is not None and len(positions) > limit:
            positions = [positions[int(j)] for j in np.linspace(0, len(positions) - 1, limit)]
        ids = [loaded.ids[i] for i in positions]
        vecs = np.array([loaded.annoy.get_item_vector(i) for i in positions], dtype=np.float32).reshape(-1, loaded.dim)
        fkeep = [i for i, u in enumerate(fresh_ids.tolist()) if u not in dead or u in back]
        return ids + [str(fresh_ids[i]) for i in fkeep], np.vstack([vecs, fresh_vecs[fkeep]])

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
    def add_fresh(self, user_id: str, vector, model_version: str | None = None) -> None:
        """Make ``user_id`` findable now (exact search beside Annoy) until the next build includes them."""
        v = normalise(vector)
        try:
            loaded = self._current()
        except IndexNotBuilt:
            loaded = None
        if loaded is not None and v.shape[0] != loaded.dim:
            raise ValueError(
                f"vector for {user_id!r} has dimension {v.shape[0]}, index {loaded.version} holds {loaded.dim}"
            )
        if model_version is None and loaded is not None:
            model_version = loaded.manifest.get("model_version") or ""
        self.fresh.add(user_id, v, model_version or "")

    def remove(self, user_id: str) -> bool:
        """Hide ``user_id`` from every query at once and from later builds; True if newly removed."""
        added = self.tombstones.add(user_id)
        self.fresh.discard([user_id])
        return added

    def restore(self, user_id: str) -> bool:
        """Lift a removal (the user consented again)."""
        return self.tombstones.discard(user_id)

    # ------------------------------------------------------------------ status
    def rebuild_due(self) -> bool:
        """True once the fresh buffer holds ``settings.fresh_buffer_threshold`` users (or nothing is built)."""
        if self.current_version_name() is None:
            return len(self.fresh) > 0
        return len(self.fresh) >= self.fresh_threshold

    def status(self) -> dict:
        m = self.manifest()
        age = None
        if m and m.get("built_at"):
            age = (datetime.now(timezone.utc) - datetime.fromisoformat(m["built_at"])).total_seconds()
        return {
            "version": m["version"] if m else None,
            "count": m["count"] if m else 0,
            "dim": m["dim"] if m else None,
            "built_at": m.get("built_at") if m else None,
            "age_s": round(age, 1) if age is not None else None,
            "model_version": m.get("model_version") if m else None,
            "feature_data_version": m.get("feature_data_version") if m else None,
            "parameters": {"n_trees": m["n_trees"], "search_k": m["search_k"], "metric": m["metric"],
                           "calibrated_recall_at_10": m["calibration"].get("recall_at_k")} if m else {},
            "fresh": len(self.fresh),
            "fresh_threshold": self.fresh_threshold,
            "rebuild_due": self.rebuild_due(),
            "tombstones": len(self.tombstones),
            "warnings": list(self.warnings),
        }
