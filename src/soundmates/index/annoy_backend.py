"""Annoy (angular) as an index backend: build one version's file with calibrated parameters, open it, search it."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from soundmates.index._files import fsync_file
from soundmates.index.errors import IndexCorrupt
from soundmates.index.tuning import calibrate_search_k, choose_n_trees
from soundmates.index.versions import is_int

ANN_FILE = "users.ann"


def cosine_from_angular(distance: float) -> float:
    """Annoy's angular distance is sqrt(2 - 2 cos) of the normalised vectors."""
    return float(max(-1.0, min(1.0, 1.0 - distance * distance / 2.0)))


class AnnoySearcher:
    """One memory-mapped Annoy file of a verified version."""

    def __init__(self, path: Path, manifest: dict):
        from annoy import AnnoyIndex

        self.search_k = int(manifest["search_k"])
        self.n_trees = int(manifest["n_trees"])
        self.ann = AnnoyIndex(int(manifest["dim"]), "angular")
        try:
            self.ann.load(str(path), prefault=False)
        except OSError as e:
            raise IndexCorrupt(f"index version {manifest['version']}: {ANN_FILE} cannot be loaded ({e})") from None

    @property
    def n_items(self) -> int:
        return int(self.ann.get_n_items())

    def search(self, v: np.ndarray, want: int) -> list[tuple[int, float]]:
        """(position, cosine) of about the ``want`` nearest items, best first."""
        # search_k was calibrated for 10 results; scale it with the number asked for.
        sk = max(int(self.search_k * max(1.0, want / 10)), want * self.n_trees)
        items, dists = self.ann.get_nns_by_vector(v, want, search_k=sk, include_distances=True)
        return [(i, cosine_from_angular(d)) for i, d in zip(items, dists)]

    def vector(self, position: int) -> np.ndarray:
        return np.asarray(self.ann.get_item_vector(position), dtype=np.float32)


class AnnoyBackend:
    name = "annoy"
    metric = "angular"
    files = (ANN_FILE,)

    @staticmethod
    def check_manifest(m: dict) -> str | None:
        """Why the backend's parameters in ``m`` are unusable, or None."""
        if m.get("metric") != "angular":
            return f"metric {str(m.get('metric'))[:20]!r} is not 'angular'"
        if not is_int(m.get("n_trees"), 1) or not is_int(m.get("search_k"), 1):
            return "has no valid n_trees and search_k"
        return None

    @staticmethod
    def build(out_dir: Path, data: np.ndarray, *, n_trees: int | None, search_k: int | None, seed: int, n_jobs: int) -> dict:
        """Write ``users.ann`` for unit vectors ``data`` (row i = item i); returns the manifest's parameters."""
        from annoy import AnnoyIndex

        t0 = time.perf_counter()
        n, dim = data.shape
        nt = int(n_trees) if n_trees else choose_n_trees(n)
        ann = AnnoyIndex(dim, "angular")
        ann.set_seed(seed)
        for i in range(n):
            ann.add_item(i, data[i])
        ann.build(nt, n_jobs=n_jobs)
        build_s = time.perf_counter() - t0
        if search_k is None:
            calib = calibrate_search_k(ann, data, nt, seed=seed)
        else:
            calib = {"search_k": int(search_k), "recall_at_k": None, "calibration_queries": 0, "steps": []}
        path = out_dir / ANN_FILE
        ann.save(str(path))
        ann.unload()
        fsync_file(path)
        return {
            "metric": "angular",
            "n_trees": nt,
            "search_k": int(calib["search_k"]),
            "calibration": calib,
            "build_seconds": round(build_s, 3),
        }

    @staticmethod
    def open(vdir: Path, manifest: dict) -> AnnoySearcher:
        return AnnoySearcher(vdir / ANN_FILE, manifest)
