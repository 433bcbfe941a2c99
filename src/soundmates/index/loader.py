"""Which version a reader serves: verified and mapped once, re-checked by three stats per call, damaged versions skipped.

(On an object store the two stats of ``CURRENT`` and the versions folder are the remote pointer's ETag,
re-read at most every ``poll_s``: see :class:`~soundmates.index.versions.VersionStore`.)

A version whose manifest has the wrong shape or whose files do not match their checksums is never
opened by its backend: the newest older valid version is served, with a warning; if none is valid
the error says so and what to run.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from soundmates.index._files import stat_key
from soundmates.index.backends import BACKENDS, DEFAULT_BACKEND
from soundmates.index.build import IDS_FILE, PAIRS_FILE
from soundmates.index.errors import IndexCorrupt, IndexNotBuilt
from soundmates.index.versions import VersionStore

log = logging.getLogger("soundmates.index")


@dataclass
class Loaded:
    """One opened version: its manifest, the backend's searcher, ids, and what readers cache about it."""

    version: str
    manifest: dict
    searcher: Any
    ids: list[str]
    positions: dict[str, int]
    pair_sims: np.ndarray
    ann_path: Path
    ann_key: tuple | None
    blocked: tuple = (None, frozenset())  # (tombstone state it was computed for, blocked ids)
    removals_seen: tuple = (None, None, 0)  # (path of REMOVALS_SEEN_FILE, its stat key, its count)
    native: dict = field(default_factory=dict)  # in-place state of a backend with native updates

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def read_at(self) -> float | None:
        """When the indexed features were read; None (older manifests) = before every removal."""
        return self.manifest.get("features_read_at")


def one_line(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def backend_of(manifest: dict):
    return BACKENDS[str(manifest.get("backend") or DEFAULT_BACKEND)]


def verify(store: VersionStore, version: str) -> dict:
    """The manifest of ``version`` if it has the right shape and every file matches its checksum, else IndexCorrupt."""
    manifest = store.verify(version)
    why = backend_of(manifest).check_manifest(manifest)
    if why:
        raise IndexCorrupt(f"index version {version}: manifest {why}")
    return manifest


def open_version(store: VersionStore, version: str) -> Loaded:
    """Verify, then open ``version`` (IndexCorrupt naming what is wrong)."""
    manifest = verify(store, version)  # before the backend touches the file: a corrupt one could crash it
    vdir = store.versions_dir / version
    try:
        ids = json.loads((vdir / IDS_FILE).read_bytes().decode("utf-8"))
        pair_sims = np.load(vdir / PAIRS_FILE, allow_pickle=False)
    except (OSError, ValueError, UnicodeDecodeError, EOFError) as e:
        raise IndexCorrupt(f"index version {version}: {one_line(str(e), 120)}") from None
    if not isinstance(ids, list) or not all(isinstance(u, str) for u in ids) or len(set(ids)) != len(ids):
        raise IndexCorrupt(f"index version {version}: {IDS_FILE} is not a list of distinct user ids")
    if pair_sims.ndim != 1 or pair_sims.dtype.kind != "f":
        raise IndexCorrupt(f"index version {version}: {PAIRS_FILE} is not a 1-D float array")
    backend = backend_of(manifest)
    searcher = backend.open(vdir, manifest)
    if searcher.n_items != len(ids) or len(ids) != manifest["count"]:
        raise IndexCorrupt(
            f"index version {version}: {searcher.n_items} vectors, {len(ids)} ids, manifest says {manifest['count']}"
        )
    ann_path = vdir / backend.files[0]
    return Loaded(version, manifest, searcher, ids, {u: i for i, u in enumerate(ids)}, pair_sims, ann_path, stat_key(ann_path))


class VersionLoader:
    """The version to serve, kept open between calls; ``warnings`` say why it is not the one ``CURRENT`` names."""

    def __init__(self, store: VersionStore):
        self.store = store
        self._lock = threading.Lock()
        self._loaded: Loaded | None = None
        self._key: tuple | None = None
        #: Warnings about the version being served (e.g. fell back from a corrupt one).
        self.warnings: list[str] = []

    def _stat(self) -> tuple:
        return self.store.change_key()

    def _still_valid(self, loaded: Loaded | None, key: tuple) -> TypeGuard[Loaded]:
        return loaded is not None and key == self._key and stat_key(loaded.ann_path) == loaded.ann_key

    def current(self) -> Loaded:
        """The version to serve; re-checked with three stats per call so new builds are picked up live."""
        if self._still_valid(self._loaded, self._stat()):
            return self._loaded
        with self._lock:
            key = self._stat()
            if self._still_valid(self._loaded, key):
                return self._loaded
            chosen, warnings = self._choose()
            for w in warnings:
                log.info("%s", w)  # reported to the person by the caller (see _choose)
            self._loaded, self._key, self.warnings = chosen, key, warnings
            return chosen

    def _choose(self) -> tuple[Loaded, list[str]]:
        """The newest valid version in publish order (IndexNotBuilt / IndexCorrupt if none), and the warnings."""
        loaded = self._loaded
        target, order, warnings, bad = self.store.candidates()
        if not order:
            if bad:
                raise IndexCorrupt(one_line(f"no valid index version ({'; '.join(bad.values())}): run 'soundmates index build'"))
            raise IndexNotBuilt("no index has been built yet (run 'soundmates index build')")
        chosen, problems = None, []
        for version in order:
            if loaded is not None and version == loaded.version and stat_key(loaded.ann_path) == loaded.ann_key:
                chosen = loaded  # already verified and mapped
                break
            try:
                chosen = open_version(self.store, version)
                break
            except IndexCorrupt as e:
                # INFO, not WARNING: the problem is reported once, through ``self.warnings``, by
                # whoever serves (the CLI prints it as ``warning: ...``); both printed it twice.
                log.info("%s", e)
                problems.append(str(e))
        if chosen is None:
            raise IndexCorrupt(one_line(f"no valid index version ({'; '.join(problems)}): run 'soundmates index build'"))
        if target is not None and chosen.version != target:
            warnings.append(
                one_line(
                    f"{problems[0]}: index version {target} is corrupt or incomplete, serving previous version {chosen.version}"
                )
            )
        elif problems:
            warnings.append(one_line(f"skipped damaged versions ({'; '.join(problems)}); serving {chosen.version}"))
        return chosen, warnings
