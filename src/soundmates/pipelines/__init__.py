def process_inbox(settings=None, limit=None) -> dict:
    """New-users inbox -> ingest -> features -> embed -> fresh buffer (see ``pipelines.new_users``)."""
    from soundmates.pipelines.new_users import process_inbox as _process_inbox

    return _process_inbox(settings=settings, limit=limit)


def build_features(settings=None, user_ids=None, force=False, **kwargs) -> dict:
    """Profiles -> taste features -> feature store, incremental (see ``pipelines.features``)."""
    from soundmates.pipelines.features import build_features as _build_features

    return _build_features(settings=settings, user_ids=user_ids, force=force, **kwargs)


def ingest_users(refs, settings=None, refresh=False, progress=True):
    """Profile references -> Spotify API -> canonical profiles; returns an IngestSummary (see ``pipelines.ingest``)."""
    from soundmates.pipelines.ingest import ingest_users as _ingest_users

    return _ingest_users(refs, settings=settings, refresh=refresh, progress=progress)


def build_index(settings=None, **kwargs) -> dict:
    """Stored features -> current model's embeddings -> new Annoy index version (see ``pipelines.index``)."""
    from soundmates.pipelines.index import build_index as _build_index

    return _build_index(settings=settings, **kwargs)


def train_model(settings=None, **hp) -> dict:
    """Feature store -> two-tower model -> registry, promoted only if not worse (see ``pipelines.model``)."""
    from soundmates.pipelines.model import train_model as _train_model

    return _train_model(settings=settings, **hp)


def evaluate_model(settings=None, dataset="world", **kwargs) -> dict:
    """Model vs baselines on held-out users of a generated world or HetRec (see ``pipelines.model``)."""
    from soundmates.pipelines.model import evaluate_model as _evaluate_model

    return _evaluate_model(settings=settings, dataset=dataset, **kwargs)
