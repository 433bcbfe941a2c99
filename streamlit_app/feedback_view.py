"""Thumbs up / down on a match card: the vote goes to ``Recommender.feedback`` and its count is shown."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from soundmates.recommend.models import Match, RecommendError, RecommendResult

if TYPE_CHECKING:  # pragma: no cover
    from soundmates.recommend import Recommender

VOTES_KEY = "sm_votes"  # {(user_id, other_id): "up" | "down"} as stored, for this session's cards


def _votes(rec: Recommender, user_id: str) -> dict[str, str]:
    cache: dict = st.session_state.setdefault(VOTES_KEY, {})
    if user_id not in cache:
        try:
            cache[user_id] = dict(rec.votes(user_id))
        except Exception:  # noqa: BLE001 - a card without its vote state still works
            cache[user_id] = {}
    return cache[user_id]


def render(result: RecommendResult, match: Match, rec: Recommender) -> None:
    """The card's feedback row: two buttons, the stored vote, and how many votes you have given."""
    if not result.known and not result.stored:
        st.caption("Add yourself on **Your data** to tell us whether a match fits.")
        return
    votes = _votes(rec, result.user_id)
    up_col, down_col, note_col = st.columns([1, 1, 3], vertical_alignment="center")
    clicked = None
    if up_col.button("Good match", icon=":material/thumb_up:", key=f"fb_up_{match.user_id}", width="stretch"):
        clicked = True
    if down_col.button("Not for me", icon=":material/thumb_down:", key=f"fb_down_{match.user_id}", width="stretch"):
        clicked = False
    if clicked is not None:
        try:
            done = rec.feedback(result.user_id, match.user_id, up=clicked)
        except RecommendError as exc:
            note_col.warning(str(exc))
            return
        votes[match.user_id] = done.vote
    mine = votes.get(match.user_id)
    if mine is not None:
        ups = sum(1 for v in votes.values() if v == "up")
        note_col.markdown(
            f"Your vote: **{'fits' if mine == 'up' else 'does not fit'}** · "
            f"you rated {len(votes)} match{'es' if len(votes) != 1 else ''} ({ups} up)",
        )
    else:
        note_col.caption("Does this match fit your taste? Your votes teach the model.")
