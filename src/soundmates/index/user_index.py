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

With ``SOUNDMATES_DATA_URL`` set, ``versions/`` and ``CURRENT`` live on the object store (its
``index/`` prefix) and each host keeps copies of the versions it serves under
``settings.remote_cache_dir``; ``fresh.npz`` and the removed-users list stay in the local directory.

This module is the facade callers use; the parts: :mod:`.build` (writing a version), :mod:`.loader`
(which version is served), :mod:`.search` (answering a query), :mod:`.removal_guard` (removals
against a served version), :mod:`.fresh`, :mod:`.tombstones`, :mod:`.versions`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np

from soundmates.index.backends import backend_named, files_for
from soundmates.index.build import as_matrix, finite_time, manifest_base, select_rows, write_version
from soundmates.index.errors import IndexCorrupt, IndexNotBuilt, RemovalsUnreadable
from soundmates.index.fresh import FreshBuffer, FreshEntries, normalise
from soundmates.index.loader import Loaded, VersionLoader, verify
from soundmates.index.removal_guard import blocked_in, check_removals_kept, note_removals
from soundmates.index.search import FreshView, Hit, SearchResult, top_hits
from soundmates.index.tombstones import TombState, Tombstones
from soundmates.index.versions import VersionStore, new_version_name, sequence
from soundmates.objstore import ObjectStore

__all__ = ["Hit", "SearchResult", "UserIndex"]

log = logging.getLogger("soundmates.index")

KEEP_VERSIONS = 3


class _Serving(NamedTuple):
    """What one read serves (see ``UserIndex._serving``)."""

    loaded: Loaded | None
    tombs: TombState
    warnings: list[str]
    fresh: FreshEntries


class UserIndex:
    """Builds, serves and changes the user index under one directory (see the module docstring)."""

    def __init__(self, settings=None, *, root: Path | None = None, backend: str | None = None):
        """``backend``: what ``build`` writes (default ``SOUNDMATES_INDEX_BACKEND``, else Annoy); any version is read
        with the backend its manifest names."""
        remote = None
        if root is None:
            if settings is None:
                from soundmates.config import get_settings

                settings = get_settings()
            root = settings.index_dir
            remote = ObjectStore.for_settings(settings, "index")
        self.settings = settings
        self.root = Path(root)
        self.backend = backend_named(backend, settings)
        self.store = VersionStore(
            self.root,
            files_for,
            remote=remote,
            cache=settings.remote_cache_dir / "index" if remote is not None else None,
            poll_s=float(getattr(settings, "index_poll_s", 1.0)),
        )
        self.versions_dir = self.store.versions_dir
        self.current_path = self.store.current_path
        self.fresh = FreshBuffer(self.root / "fresh.npz")
        self.tombstones = Tombstones(self.root / "tombstones.json")
        self.fresh_threshold = int(getattr(settings, "fresh_buffer_threshold", 1000) or 1000)
        self._loader = VersionLoader(self.store)
        self._fresh_view = FreshView()
        #: What the last ``build`` of this object did: version, published, manifest.
        self.last_build: dict | None = None

    @property
    def warnings(self) -> list[str]:
        """Warnings about the version being served (e.g. fell back from a corrupt one)."""
        return self._loader.warnings

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
        read_at = finite_time(meta.pop("features_read_at", None)) or started
        ids, mat = as_matrix(user_ids, vectors)
        tombs = self.tombstones.state()  # unreadable removals: refuse to build (fail closed)
        keep_ids, data, skipped, duplicates, removed = select_rows(ids, mat, tombs, read_at)
        if not keep_ids:
            raise ValueError(
                f"nothing to index: {len(ids)} users given, {len(skipped)} with unusable vectors, {len(removed)} removed"
            )
        if skipped:
            log.warning("index build: skipped %d users with NaN or zero vectors: %s", len(skipped), skipped[:10])
        base = manifest_base(self.backend.name, meta, read_at, tombs, data, skipped, duplicates, len(removed))
        version = new_version_name()
        manifest = write_version(
            self.versions_dir,
            self.backend,
            version,
            data,
            keep_ids,
            base,
            n_trees=n_trees,
            search_k=search_k,
            seed=seed,
            n_jobs=n_jobs,
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

    # ------------------------------------------------------------------ versions
    def versions(self) -> list[str]:
        """Published version names, newest name first."""
        return self.store.names()

    def current_version_name(self) -> str | None:
        """The version ``CURRENT`` names, if it is a valid pointer to an existing version."""
        return self.store.read_current()[0]

    def verify(self, version: str) -> dict:
        """The manifest of ``version`` if it has the right shape and every file matches its checksum, else IndexCorrupt."""
        return verify(self.store, version)

    def _current(self) -> Loaded:
        """The version to serve; re-checked with three stats per call so new builds are picked up live."""
        return self._loader.current()

    def _serving(self) -> _Serving:
        """What a read serves: version (None if nothing is built), removals, warnings, one snapshot of the fresh buffer.

        Raises if serving would be unsafe. The fresh buffer is read once here (one stat) and that snapshot
        is used for the whole call, so a query sees one buffer even if it is replaced meanwhile.
        """
        tombs = self.tombstones.state()  # RemovalsUnreadable: fail closed
        try:
            loaded = self._current()
        except IndexNotBuilt:
            loaded = None
        warnings = list(self.warnings) if loaded is not None else []
        if loaded is not None:
            check_removals_kept(self.versions_dir, loaded, tombs, self.tombstones.path)
        warnings += tombs.warnings
        fresh, problem = self.fresh.snapshot()
        if problem:
            warnings.append(f"{problem}: users added since the last build appear after 'soundmates index build'")
        return _Serving(loaded, tombs, warnings, fresh)

    def manifest(self) -> dict | None:
        """Manifest of the version being served (plus live ``fresh`` and ``tombstones`` counts), or None."""
        loaded, tombs, _, fresh = self._serving()
        if loaded is None:
            return None
        m = dict(loaded.manifest)
        m["fresh"] = {"count": len(fresh), "threshold": self.fresh_threshold}
        m["tombstones"] = sum(1 for t in tombs.users.values() if t.removed)
        return m

    # ------------------------------------------------------------------ queries
    def _usable_fresh(self, serving: _Serving, dim: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Fresh entries comparable with the served index (same dimension and model), none of a removed user."""
        return self._fresh_view.usable(serving.loaded, dim, serving.tombs, serving.fresh)

    @staticmethod
    def _dim(serving: _Serving) -> int:
        return serving.loaded.dim if serving.loaded is not None else int(serving.fresh.vectors.shape[1])

    def search(self, vector, k: int = 10, exclude: Iterable[str] = ()) -> SearchResult:
        """Top-k users by cosine: Annoy ∪ fresh buffer − removed users − ``exclude``, best first."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        v = normalise(vector)
        exclude = set(exclude)
        serving = self._serving()
        loaded, tombs, warnings, fresh = serving
        if loaded is None and not len(fresh):
            raise IndexNotBuilt("no index has been built yet (run 'soundmates index build')")
        dim = self._dim(serving)
        if v.shape[0] != dim:
            raise ValueError(f"query vector has dimension {v.shape[0]}, the index holds dimension {dim}")
        fresh_ids, fresh_vecs, fresh_warn = self._usable_fresh(serving, dim)
        warnings += fresh_warn
        hits = top_hits(loaded, tombs, (fresh, fresh_ids, fresh_vecs), v, k, exclude)
        return SearchResult(loaded.version if loaded else None, hits, warnings)

    def query(self, vector, k: int = 10, exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
        """ARCHITECTURE.md contract: [(user_id, cosine)] best first."""
        return [(h.user_id, h.score) for h in self.search(vector, k, exclude).hits]

    def vector(self, user_id: str) -> np.ndarray | None:
        """The served (normalised) vector of a user: fresh buffer first, then the index; None if unknown/removed."""
        serving = self._serving()
        loaded, tombs = serving.loaded, serving.tombs
        if loaded is None and not len(serving.fresh):
            return None
        ids, vecs, _ = self._usable_fresh(serving, self._dim(serving))
        hit = np.flatnonzero(ids == user_id)
        if hit.size:
            return vecs[hit[-1]].copy()
        if loaded is not None and user_id in loaded.positions and user_id not in blocked_in(loaded, tombs):
            return loaded.searcher.vector(loaded.positions[user_id])
        return None

    def __contains__(self, user_id: str) -> bool:
        return self.vector(user_id) is not None

    def all_vectors(self, limit: int | None = None) -> tuple[list[str], np.ndarray]:
        """Every served user's vector (index ∪ fresh − removed); ``limit`` keeps an evenly spaced subset of the index."""
        serving = self._serving()
        loaded, tombs = serving.loaded, serving.tombs
        if loaded is None and not len(serving.fresh):
            return [], np.zeros((0, 0), dtype=np.float32)
        dim = self._dim(serving)
        fresh_ids, fresh_vecs, _ = self._usable_fresh(serving, dim)
        if loaded is None:
            return fresh_ids.tolist(), fresh_vecs
        hidden = blocked_in(loaded, tombs) | set(fresh_ids.tolist())
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
        # the versions this host holds (with an object store, its copies: the guard is per host, like the list)
        note_removals(self.versions_dir, [v for v in self.versions() if (self.versions_dir / v).is_dir()], len(self.tombstones))
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
        loaded, tombs, warnings, fresh = self._serving()
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
            "fresh": len(fresh),
            "fresh_threshold": self.fresh_threshold,
            "rebuild_due": self.rebuild_due(),
            "tombstones": sum(1 for t in tombs.users.values() if t.removed),
            "warnings": list(dict.fromkeys(warnings)),
        }
