"""make_blend(): a shared playlist for 2 to 10 people, with their pairwise match scores from the served embedder.

Who may be in a blend: the first reference is the person asking (stored here, fetched live like
``recommend`` does, or their Connect-with-Spotify profile); everyone else must be stored here, i.e. have
consented, and not be removed. Nothing of a live-fetched person is kept. The rules of the mix are in
:mod:`blend_mix`; the scores are recommend's (query side of one against the candidate side of the other).
"""

from __future__ import annotations

import numpy as np

from soundmates.profiles import Profile
from soundmates.recommend import blend_mix, scores
from soundmates.recommend import explain as X
from soundmates.recommend.blend_models import MAX_MEMBERS, MAX_SIZE, MIN_MEMBERS, Blend, BlendError, NotConsented, RemovedMember
from soundmates.recommend.context import Progress, RecommendContext, embedder_info, say
from soundmates.recommend.subject import Subject, candidate_vector, featurize, query_vector, subject_for


def _member_ids(ctx: RecommendContext, refs: list[str], size: int) -> list[str]:
    if not MIN_MEMBERS <= len(refs) <= MAX_MEMBERS:
        raise BlendError(
            f"a blend takes {MIN_MEMBERS} to {MAX_MEMBERS} people, got {len(refs)}: give that many profile references"
        )
    if not isinstance(size, int) or not 1 <= size <= MAX_SIZE:
        raise BlendError(f"the blend size must be an integer from 1 to {MAX_SIZE}, got {size!r}")
    ids = [ctx.resolve(r) for r in refs]
    dup = next((u for i, u in enumerate(ids) if u in ids[:i]), None)
    if dup is not None:
        raise BlendError(f"{dup!r} is given twice: name each person once")
    return ids


def _subject(ctx: RecommendContext, user_id: str, caller: bool, caller_profile: Profile | None, index_model, progress):
    """(profile, query-side Subject) of one member, with the consent rule of the module docstring."""
    if ctx.index.is_removed(user_id) and not caller:
        raise RemovedMember(user_id)
    stored = ctx.stored_taste(user_id)[0]
    if stored is None and not caller:
        raise NotConsented(user_id)
    if stored is None and caller_profile is not None:
        if caller_profile.user_id != user_id:
            raise BlendError(f"the connected profile is {caller_profile.user_id!r}, not {user_id!r}")
        emb = ctx.embedder(index_model)
        frame = featurize(ctx, caller_profile)
        return caller_profile, Subject(user_id, query_vector(emb, frame), caller_profile, False, emb.version, frame)
    subject = subject_for(ctx, user_id, consent=False, progress=progress, index_model=index_model)
    profile = stored or subject.profile
    if profile is None:
        raise NotConsented(user_id)
    return profile, subject


def _compatibility(ctx: RecommendContext, subjects: list[Subject]) -> list[list[float]]:
    """compat[i][j] = the score recommend shows i for j (i's query side, j's indexed candidate side)."""
    cands = []
    for s in subjects:
        indexed = ctx.index.vector(s.user_id) if s.known else None
        cands.append(np.asarray(indexed if indexed is not None else candidate_vector(ctx, s), dtype=np.float32))
    n = len(subjects)
    out = [[1.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            if i != j and subjects[i].vector.shape == cands[j].shape:
                out[i][j] = scores.served_score(subjects[i].vector, cands[j])
            elif i != j:
                out[i][j] = 0.0
    return out


def make_blend(
    ctx: RecommendContext,
    refs: list[str],
    size: int = 30,
    *,
    caller_profile: Profile | None = None,
    progress: Progress | None = None,
) -> Blend:
    """A shared playlist of ``size`` tracks for the people of ``refs`` (the first one is the person asking)."""
    from soundmates.recommend.query import index_manifest

    ids = _member_ids(ctx, list(refs), size)
    manifest = index_manifest(ctx)
    index_model = (manifest or {}).get("model_version")
    profiles, subjects = [], []
    for i, uid in enumerate(ids):
        say(progress, f"Reading {uid}'s taste…")
        prof, subj = _subject(ctx, uid, i == 0, caller_profile, index_model, progress)
        profiles.append(prof)
        subjects.append(subj)
    say(progress, "Scoring how well everyone matches…")
    compat = _compatibility(ctx, subjects)
    members = [blend_mix.member_from(uid, p.display_name or uid, X.taste_of(p)) for uid, p in zip(ids, profiles)]
    say(progress, "Mixing the playlist…")
    tracks = blend_mix.compose(members, compat, size)
    blend = Blend(
        members=ids,
        tracks=tracks,
        compatibility=compat,
        embedder=embedder_info(ctx.embedder(subjects[0].model_version)).name,
        names={m.user_id: m.name for m in members},
    )
    if len(tracks) < size:
        blend.warnings.append(f"only {len(tracks)} of {size} tracks: the libraries hold no more that fit the rules")
    low = [blend.names[m] for m, s in blend.shares().items() if tracks and s < 0.3]
    if low:
        blend.warnings.append(f"{_join(low)} contribute less than 30%: their libraries ran out of tracks that fit")
    return blend


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
