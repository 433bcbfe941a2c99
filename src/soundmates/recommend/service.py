"""The Recommender: the recommend stage's public API, one facade over its rooms.

Rooms (each a module of ``soundmates.recommend``): ``query`` (search and explanations) with
``subject`` (the asking user, query side) and ``scores`` (served score and its percentile),
``privacy`` (consent, sticky removal, deletion), ``status`` (pipeline status, evaluation, map),
``detail`` (one match in depth). Collaborators and caches live in ``context.RecommendContext``.
"""

from __future__ import annotations

from typing import Any

from soundmates.recommend import detail, feedback, privacy, query, status, taste
from soundmates.recommend.blend_models import Blend
from soundmates.recommend.context import Progress, RecommendContext
from soundmates.recommend.models import InboxEntry, MapData, MatchDetail, PipelineStatus, RecommendResult
from soundmates.recommend.taste_models import FeedbackResult, TasteProfile

MAX_K = query.MAX_K


class Recommender(RecommendContext):
    """See ARCHITECTURE.md ("Recommend"). Collaborators may be injected (tests, benchmarks):
    ``store``, ``embedder``, ``encoder``, ``ingestor_factory(settings, user_data_dir=None)``."""

    def recommend(
        self,
        ref: str,
        k: int = 10,
        *,
        consent: bool = False,
        diversity: float = 0.0,
        progress: Progress | None = None,
    ) -> RecommendResult:
        """Top-k users closest to ``ref``'s taste (never ``ref`` themselves), with reasons.

        ``consent``: store an unknown user's profile and queue them for the pipeline (they become
        findable by others at once, via the fresh buffer; never for a removed profile). ``diversity``
        in [0, 1]: 0 = pure similarity order, higher = fewer near-copies in the list (MMR).
        ``progress(message)`` is called with a short text at each step.
        """
        return query.recommend(self, ref, k, consent=consent, diversity=diversity, progress=progress)

    def add(self, ref: str, *, restore_removed: bool = False) -> InboxEntry:
        """Consent: queue the profile in the new-users inbox; the pipeline ingests and indexes it.

        A removed profile raises RemovedByOwner unless ``restore_removed`` (ownership proven through
        Connect with Spotify, or an operator's explicit ``soundmates add REF --restore-removed``).
        """
        return privacy.add(self, ref, restore_removed=restore_removed)

    def inbox_status(self, ref: str) -> InboxEntry | None:
        return privacy.inbox_status(self, ref)

    def remove(self, ref: str) -> dict[str, Any]:
        """Tombstone in the index at once (sticky), then delete everything stored; returns what was deleted."""
        return privacy.remove(self, ref)

    def pipeline_status(self) -> PipelineStatus:
        return status.pipeline_status(self)

    def user_map(self, highlight: list[str] | None = None) -> MapData:
        """The taste map; ``highlight`` (you, your matches) stays on it when the page shows a sample."""
        return status.user_map(self, highlight)

    def feedback(self, ref: str, other_ref: str, *, up: bool) -> FeedbackResult:
        """``ref`` says whether the match ``other_ref`` fits; kept only when both are stored users."""
        return feedback.give(self, ref, other_ref, up=up)

    def votes(self, user_id: str) -> dict[str, str]:
        """``{match id: "up" | "down"}``: the feedback ``user_id`` gave."""
        return feedback.votes_of(self, user_id)

    def taste_profile(self, ref: str, *, within: float = 0.5) -> TasteProfile:
        """Top genres, artists, eras; mainstream and variety against everyone; how many people score >= ``within``."""
        return taste.taste_profile(self, ref, within=within)

    def match_detail(self, user_id: str, other_id: str) -> MatchDetail:
        return detail.match_detail(self, user_id, other_id)

    def blend(self, refs: list[str], size: int = 30, *, caller_profile=None, progress: Progress | None = None) -> Blend:
        """A shared playlist for 2 to 10 people (the first is the one asking); see ``recommend.blend``."""
        from soundmates.recommend.blend import make_blend

        return make_blend(self, refs, size, caller_profile=caller_profile, progress=progress)
