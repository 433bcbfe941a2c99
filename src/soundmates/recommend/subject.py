"""The asking user: found in the index or the store, or fetched live, and embedded through the query side."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from soundmates.profiles import Profile
from soundmates.recommend.context import Progress, RecommendContext, query_is_candidate, say
from soundmates.recommend.models import NotEnoughData, NothingBuiltYet, RecommendError, SpotifyRefused, UnknownUser


@dataclass
class Subject:
    """The user we recommend for: the query-side vector, the profile (if any), where it came from."""

    user_id: str
    vector: np.ndarray  # query side of the served embedder, L2-normalised
    profile: Profile | None
    known: bool  # stored here (False = fetched live for this request)
    model_version: str | None
    frame: Any = None  # their ``user_features`` row (full view), when it was needed


def unit(vector) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def stored_features(ctx: RecommendContext, user_id: str):
    """The user's stored ``user_features`` row (full view), or None."""
    from soundmates.store import StoreError

    try:
        frame = ctx.store.read("user_features", keys=[user_id])
    except StoreError:
        return None
    if "view" in frame.columns:
        frame = frame[frame["view"] == "full"]
    return frame.reset_index(drop=True) if len(frame) else None


def featurize(ctx: RecommendContext, profile: Profile):
    from soundmates.features.scaler import ScalerError
    from soundmates.features.taste import Rejected
    from soundmates.pipelines.features import featurize_profile

    try:
        frame, _ = featurize_profile(profile, ctx.encoder, ctx.settings)
    except Rejected as e:
        raise NotEnoughData(profile.user_id, e.reason) from None
    except ScalerError as e:
        raise NothingBuiltYet("feature scaler", "run 'soundmates features build' first") from e
    return frame


def ingest_live(ctx: RecommendContext, user_id: str, *, store_results: bool, progress: Progress | None) -> Profile:
    """Fetch one user through the ingest stage; without consent nothing of theirs outlives the request."""
    from soundmates.spotify.errors import ApiRefused, MissingCredentials, SpotifyError, UserNotFound
    from soundmates.spotify.ingest import NoPublicPlaylists

    say(progress, f"Fetching {user_id}'s public playlists from Spotify…")
    try:
        # One ingest at a time per Recommender: the ingestor's counters and caches are not thread-safe.
        with ctx.ingest_lock:
            ing = ctx.ingestor(store_results=store_results)
            try:
                return ing.ingest_user(user_id, refresh=not store_results)
            finally:
                if not store_results:
                    ing.delete_user_data(user_id)  # the private scratch copy
    except UserNotFound as e:
        raise UnknownUser(user_id, e.reason) from None
    except NoPublicPlaylists as e:
        raise NotEnoughData(user_id, e.reason) from None
    except ApiRefused as e:
        raise SpotifyRefused(user_id, e.reason) from None
    except MissingCredentials as e:
        raise RecommendError(f"cannot ask Spotify about {user_id!r}: {e.reason}") from None
    except SpotifyError as e:
        raise RecommendError(f"Spotify could not be read for {user_id!r}: {e.reason}") from None


def query_vector(emb, frame) -> np.ndarray:
    """The query side of the served embedder (the index holds candidate-side vectors)."""
    embed = getattr(emb, "embed_query", None) or emb.embed
    return unit(np.asarray(embed(frame), dtype=np.float32)[0])


def candidate_vector(ctx: RecommendContext, subject: Subject) -> np.ndarray:
    """The candidate side of the served embedder for ``subject``: what the index stores for everyone."""
    emb = ctx.embedder(subject.model_version)
    if query_is_candidate(emb):
        return subject.vector
    frame = subject.frame
    if frame is None:
        frame = stored_features(ctx, subject.user_id)
    if frame is None:
        # Called for live-fetched subjects only (store_consented), which always carry their profile.
        assert subject.profile is not None
        frame = featurize(ctx, subject.profile)
    return unit(np.asarray(emb.embed(frame), dtype=np.float32)[0])


def subject_for(
    ctx: RecommendContext, user_id: str, *, consent: bool, progress: Progress | None, index_model: str | None
) -> Subject:
    """The asking user's query vector: reused from the index when both sides are one space, else embedded."""
    emb = ctx.embedder(index_model)
    with ctx.lock:
        cached = ctx.live.get(user_id)
    indexed = ctx.index.vector(user_id)
    if indexed is not None and query_is_candidate(emb):
        say(progress, f"Found {user_id} in the index")
        return Subject(user_id, unit(indexed), ctx.profiles.load(user_id), True, emb.version)
    if cached is not None and not consent and cached.model_version == emb.version:
        return cached
    profile = ctx.profiles.load(user_id)
    known = profile is not None or indexed is not None
    frame = stored_features(ctx, user_id) if known else None
    if frame is None:
        if profile is None:
            profile = ingest_live(ctx, user_id, store_results=consent, progress=progress)
            known = False
        say(progress, "Computing taste features…")
        frame = featurize(ctx, profile)
    say(progress, "Embedding your taste…")
    subject = Subject(user_id, query_vector(emb, frame), profile, known, emb.version, frame)
    if not known:
        ctx.remember_live(subject)
    return subject


def vector_of(ctx: RecommendContext, user_id: str, model_version: str | None) -> tuple[Profile | None, np.ndarray | None]:
    """(profile, query vector) of a user asking for details: the live one just matched, else the stored one."""
    with ctx.lock:
        live = ctx.live.get(user_id)
    if live is not None:
        return live.profile, live.vector
    profile = ctx.stored_taste(user_id)[0]
    if profile is None:
        return None, None  # never fetched from Spotify just to explain
    try:
        subject = subject_for(ctx, user_id, consent=False, progress=None, index_model=model_version)
    except RecommendError:
        return profile, None
    return profile, subject.vector
