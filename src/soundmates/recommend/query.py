"""recommend(): search the index for the asking user and explain each match with the served score."""

from __future__ import annotations

import numpy as np

from soundmates.recommend import explain as X
from soundmates.recommend import scores
from soundmates.recommend.context import Progress, RecommendContext, embedder_info, say
from soundmates.recommend.models import Match, NothingBuiltYet, RecommendResult
from soundmates.recommend.subject import Subject, subject_for

MAX_K = 100


def _profile_url(user_id: str) -> str:
    from soundmates.spotify.refs import profile_url

    return profile_url(user_id)


def _check(k: int, diversity: float) -> None:
    if not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ValueError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
    if not 0.0 <= float(diversity) <= 1.0:
        raise ValueError(f"diversity must be between 0 and 1, got {diversity!r}")


def index_manifest(ctx: RecommendContext) -> dict | None:
    """The served index's manifest; NothingBuiltYet when there is nothing to search."""
    from soundmates.index import IndexCorrupt

    try:
        manifest = ctx.index.manifest()
    except IndexCorrupt as e:
        hint = "" if "soundmates index build" in str(e) else "; run 'soundmates index build'"
        raise NothingBuiltYet("usable index", f"{e}{hint}") from None
    if manifest is None and len(ctx.index.fresh) == 0:
        raise NothingBuiltYet()
    return manifest


def _search(ctx: RecommendContext, subject: Subject, k: int, diversity: float):
    """Hits rescored exactly (the score match_detail shows), best first; diversity reorders (MMR)."""
    from soundmates.index import IndexNotBuilt

    want = k if diversity == 0 else min(MAX_K * 3, max(3 * k, k + 20))
    try:
        found = ctx.index.search(subject.vector, want, exclude={subject.user_id})
    except IndexNotBuilt:
        raise NothingBuiltYet() from None
    except ValueError as e:  # dimension mismatch: the index was built by another model
        raise NothingBuiltYet("index for the current model", f"{e}; run 'soundmates index build'") from None
    scored = []
    for h in found.hits:
        cand = ctx.index.vector(h.user_id)
        score = scores.served_score(subject.vector, cand) if cand is not None else round(h.score, 4)
        scored.append((h, score, cand if cand is not None else subject.vector))
    scored.sort(key=lambda t: (-t[1], t[0].user_id))
    if diversity > 0 and len(scored) > 1:
        order = X.mmr_order(
            [h.user_id for h, _, _ in scored],
            [s for _, s, _ in scored],
            np.vstack([v for _, _, v in scored]),
            k,
            float(diversity),
        )
        scored = [scored[i] for i in order]
    return found, [(h, s) for h, s, _ in scored[:k]]


def _explain(ctx: RecommendContext, subject: Subject, hits, pct, warnings: list[str]) -> list[Match]:
    """One Match per hit, with its reasons from both stored profiles."""
    you = ctx.stored_taste(subject.user_id)[1] if subject.known else None
    if you is None and subject.profile is not None:
        you = X.taste_of(subject.profile)
    if you is not None:
        warnings += X.thin_profile_warnings(you)
    else:
        warnings.append("your stored profile is missing: matches come without reasons")
    text_vectors = ctx.text_vectors()
    matches, missing = [], 0
    for h, score in hits:
        prof, them = ctx.stored_taste(h.user_id)
        m = Match(
            user_id=h.user_id,
            display_name=prof.display_name if prof else None,
            score=score,
            percentile=pct(score),
            profile_url=_profile_url(h.user_id),
            source=h.source,
        )
        if prof is None:
            missing += 1
        elif you is not None:
            m.shared_genres = X.shared_genres(you, them)
            m.shared_artists = X.shared_artists(you, them)
            m.shared_tracks = X.shared_tracks(you, them)
            m.closest_artists = X.closest_artists(you, them, text_vectors)
            m.era_overlap = X.era_overlap(you, them)
        matches.append(m)
    if missing:
        warnings.append(f"{missing} match(es) have no stored profile: shown without reasons")
    if not matches:
        warnings.append("no other users to match with yet")
    return matches


def recommend(
    ctx: RecommendContext,
    ref: str,
    k: int = 10,
    *,
    consent: bool = False,
    diversity: float = 0.0,
    progress: Progress | None = None,
) -> RecommendResult:
    """Top-k users closest to ``ref``'s taste (never ``ref`` themselves), with reasons; see Recommender.recommend."""
    from soundmates.model.embedder import candidate_version
    from soundmates.recommend import privacy

    _check(k, diversity)
    user_id = ctx.resolve(ref)
    manifest = index_manifest(ctx)
    index_model = (manifest or {}).get("model_version")
    warnings: list[str] = []
    if consent and ctx.index.is_removed(user_id):
        # Removed by its owner: matched like anyone not stored, and nothing of theirs is written.
        consent = False
        warnings.append(privacy.REMOVED_NOT_STORED.format(user_id=user_id))
    subject = subject_for(ctx, user_id, consent=consent, progress=progress, index_model=index_model)
    if subject.model_version and index_model and candidate_version(ctx.embedder(subject.model_version)) != index_model:
        warnings.append(
            f"your profile was embedded by model {subject.model_version}, the index was built with "
            f"{index_model}: matches may be off until 'soundmates index build' runs"
        )
    stored = False
    if consent and not subject.known:
        stored = privacy.store_consented(ctx, subject, ref, warnings)
    n_users = (manifest or {}).get("count", 0) + len(ctx.index.fresh)
    say(progress, f"Searching {n_users:,} users…")
    found, hits = _search(ctx, subject, k, diversity)
    warnings += found.warnings
    say(progress, f"Explaining {len(hits)} matches…")
    emb = ctx.embedder(subject.model_version)
    matches = _explain(ctx, subject, hits, lambda s: scores.percentile(ctx, emb, found.version, s), warnings)
    return RecommendResult(
        user_id=user_id,
        display_name=subject.profile.display_name if subject.profile else None,
        matches=matches,
        warnings=list(dict.fromkeys(warnings)),
        model_version=subject.model_version or index_model,
        index_version=found.version,
        embedder=embedder_info(emb),
        known=subject.known,
        stored=stored,
    )
