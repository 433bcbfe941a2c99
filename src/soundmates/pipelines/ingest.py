"""Pipeline stage: Spotify profile references in, canonical profiles stored (see soundmates.spotify.ingest)."""

from __future__ import annotations

from collections.abc import Iterable

from soundmates.config import Settings, get_settings
from soundmates.spotify.ingest import Ingestor, IngestSummary


def ingest_users(
    refs: Iterable[str],
    settings: Settings | None = None,
    refresh: bool = False,
    progress: bool = True,
) -> IngestSummary:
    """Ingest every reference into ``settings.profiles_dir``; failures are in the summary, not raised.

    Raises only when nothing can run: ``MissingCredentials`` / ``AuthenticationFailed``.
    """
    settings = settings or get_settings()
    return Ingestor(settings).ingest_many(refs, refresh=refresh, progress=progress)
