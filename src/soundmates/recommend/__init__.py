"""Recommendations with reasons: what the CLI and the dashboard call.

    from soundmates.recommend import Recommender, RecommendError
    r = Recommender()
    result = r.recommend("https://open.spotify.com/user/ID", k=10)

The result models and errors are plain pydantic (importable at no cost); ``Recommender``
is imported on first use, and it imports torch/annoy/the store only inside its methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from soundmates.recommend.models import (
    ACCEPTED_REFERENCE_FORMS,
    ClosestArtist,
    EmbedderInfo,
    Evaluation,
    GenreOverlap,
    InboxEntry,
    InvalidReference,
    MapData,
    Match,
    MatchDetail,
    MethodScores,
    NotEnoughData,
    NothingBuiltYet,
    PipelineStatus,
    RecommendError,
    RecommendResult,
    RemovedByOwner,
    SharedArtist,
    SharedGenre,
    SharedTrack,
    SpotifyRefused,
    UnknownUser,
)

if TYPE_CHECKING:  # pragma: no cover
    from soundmates.recommend.service import Recommender

__all__ = [
    "ACCEPTED_REFERENCE_FORMS",
    "ClosestArtist",
    "EmbedderInfo",
    "Evaluation",
    "GenreOverlap",
    "InboxEntry",
    "InvalidReference",
    "MapData",
    "Match",
    "MatchDetail",
    "MethodScores",
    "NotEnoughData",
    "NothingBuiltYet",
    "PipelineStatus",
    "RecommendError",
    "RecommendResult",
    "Recommender",
    "RemovedByOwner",
    "SharedArtist",
    "SharedGenre",
    "SharedTrack",
    "SpotifyRefused",
    "UnknownUser",
]


def __getattr__(name: str):
    # Lazy so that importing the models (dashboard first paint, CLI --help) stays cheap.
    if name == "Recommender":
        from soundmates.recommend.service import Recommender

        return Recommender
    raise AttributeError(f"module 'soundmates.recommend' has no attribute {name!r}")
