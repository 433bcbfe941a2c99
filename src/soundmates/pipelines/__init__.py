


def ingest_users(refs, settings=None, refresh=False, progress=True):
    """Profile references -> Spotify API -> canonical profiles; returns an IngestSummary (see ``pipelines.ingest``)."""
    from soundmates.pipelines.ingest import ingest_users as _ingest_users

    return _ingest_users(refs, settings=settings, refresh=refresh, progress=progress)
