"""The index backends by name (``annoy``, ``voyager``) and which one a build uses (``SOUNDMATES_INDEX_BACKEND``)."""

from __future__ import annotations

import os

from soundmates.index.annoy_backend import AnnoyBackend
from soundmates.index.voyager_backend import VoyagerBackend

BACKENDS: dict[str, type[AnnoyBackend] | type[VoyagerBackend]] = {"annoy": AnnoyBackend, "voyager": VoyagerBackend}
DEFAULT_BACKEND = "annoy"
COMMON_FILES = ("ids.json", "pair_sims.npy")


def backend_named(name: str | None, settings=None):
    """The backend ``name``, else ``settings.index_backend``, else ``$SOUNDMATES_INDEX_BACKEND``, else Annoy."""
    chosen = name or getattr(settings, "index_backend", None) or os.environ.get("SOUNDMATES_INDEX_BACKEND") or DEFAULT_BACKEND
    key = str(chosen).strip().lower()
    if key not in BACKENDS:
        raise ValueError(f"unknown index backend {chosen!r}: choose one of {', '.join(BACKENDS)}")
    return BACKENDS[key]


def files_for(manifest: dict) -> tuple[str, ...] | None:
    """The files a version of this manifest's backend holds (a manifest without ``backend`` is Annoy's)."""
    backend = BACKENDS.get(str(manifest.get("backend") or DEFAULT_BACKEND))
    return None if backend is None else backend.files + COMMON_FILES
