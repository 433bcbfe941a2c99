"""Feedback on matches: a consented user's thumbs up or down, stored, counted, and removed with them."""

from __future__ import annotations

from soundmates.recommend.context import RecommendContext
from soundmates.recommend.taste_models import FeedbackNotAllowed, FeedbackResult

NOT_STORED = (
    "{who} is not stored on Soundmates, so no feedback can be kept {role}: "
    "add the profile first ('soundmates add {user_id}' or the dashboard's 'Your data'), then vote again"
)


def _check_consented(ctx: RecommendContext, user_id: str, role: str) -> None:
    """Consent = the user is findable (indexed or in the fresh buffer, not removed): only their votes are kept."""
    if ctx.index.is_removed(user_id) or user_id not in ctx.index:
        raise FeedbackNotAllowed(NOT_STORED.format(who=user_id, role=role, user_id=user_id))


def give(ctx: RecommendContext, ref: str, other_ref: str, *, up: bool) -> FeedbackResult:
    """Store ``ref``'s vote on the match ``other_ref`` (latest vote wins); both must be stored users."""
    from soundmates.store.feedback import DOWN, UP, feedback_store

    user_id, other_id = ctx.resolve(ref), ctx.resolve(other_ref)
    if user_id == other_id:
        raise FeedbackNotAllowed(f"{user_id} cannot rate themselves: give feedback on one of your matches")
    _check_consented(ctx, user_id, "from them")
    _check_consented(ctx, other_id, "about them")
    store = feedback_store(ctx.settings)
    vote = store.record(user_id, other_id, UP if up else DOWN)
    return FeedbackResult(
        user_id=user_id,
        other_id=other_id,
        vote="up" if vote.vote == UP else "down",
        updated_at=vote.updated_at,
        yours={k: v for k, v in store.counts(user_id).items() if k != "voters"},
        everyone=store.counts(),
    )


def votes_of(ctx: RecommendContext, user_id: str) -> dict[str, str]:
    """``{match id: "up" | "down"}`` of the votes ``user_id`` gave (the dashboard marks its cards)."""
    from soundmates.store.feedback import UP, feedback_store

    return {v.other_id: "up" if v.vote == UP else "down" for v in feedback_store(ctx.settings).votes(user_id)}


def delete_user(ctx: RecommendContext, user_id: str) -> int:
    """Removal: every vote given by or about ``user_id``."""
    from soundmates.store.feedback import feedback_store

    return feedback_store(ctx.settings).delete_users([user_id])


MAX_VOTERS = 500  # voters whose served top 10 is recomputed for the metric (a status page stays fast)


def summary(ctx: RecommendContext, k: int = 10) -> dict | None:
    """The feedback metric of what is served now; None when nobody voted.

    ``up_share_served@10``: among the votes on matches that are in their voter's current top ``k``
    (the served index, the voter's own vector), the share that are up; ``served_votes`` says how
    many votes that is. Plus the totals (``up``, ``down``, ``voters``).
    """
    from soundmates.store.feedback import UP, training_pairs

    positives, negatives = training_pairs(ctx.settings)
    if not positives and not negatives:
        return None
    by_voter: dict[str, dict[str, int]] = {}
    for (u, v), vote in [(p, UP) for p in positives] + [(n, -UP) for n in negatives]:
        by_voter.setdefault(u, {})[v] = vote
    served_up = served = 0
    for u in sorted(by_voter)[:MAX_VOTERS]:
        vector = ctx.index.vector(u)
        if vector is None:
            continue
        top = {other for other, _ in ctx.index.query(vector, k, exclude=(u,))}
        voted = [vote for other, vote in by_voter[u].items() if other in top]
        served += len(voted)
        served_up += sum(1 for vote in voted if vote == UP)
    return {
        "up": len(positives),
        "down": len(negatives),
        "voters": len(by_voter),
        "served_votes": served,
        "up_share_served@10": round(served_up / served, 4) if served else None,
    }
