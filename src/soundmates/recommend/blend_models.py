"""Result models and errors of a blend (a shared playlist for 2 to 10 people): what the CLI and the dashboard read.

Pydantic only, like ``models.py``: the dashboard imports these for its first paint.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from soundmates.recommend.models import RecommendError

MIN_MEMBERS = 2
MAX_MEMBERS = 10
MAX_SIZE = 200
MAX_PER_ARTIST = 3


class BlendError(RecommendError):
    """A blend that cannot be made as asked (too few or too many people, someone who did not consent, ...)."""

    kind = "bad_blend"


class NotConsented(BlendError):
    """A member who is not stored here: nothing is findable without consent."""

    kind = "not_consented"

    def __init__(self, user_id: str):
        self.user_id = user_id
        super().__init__(
            f"{user_id!r} has not added themselves to Soundmates, so they cannot be part of a blend: only people "
            "who consented ('soundmates add', or 'Add me' on the dashboard) can, plus yourself as the first reference"
        )


class RemovedMember(BlendError):
    kind = "removed"

    def __init__(self, user_id: str):
        self.user_id = user_id
        super().__init__(f"{user_id!r} was removed from Soundmates by its owner and cannot be part of a blend; leave them out")


class BlendTrack(BaseModel):
    id: str
    name: str
    artists: list[str] = Field(default_factory=list)
    reason: str
    # The members whose libraries this track comes from (in member order).
    from_: list[str] = Field(default_factory=list, alias="from")
    # Kept for exports (M3U's #EXTINF); not part of the --json contract.
    duration_ms: int | None = Field(default=None, exclude=True)
    artist_ids: list[str] = Field(default_factory=list, exclude=True)

    model_config = {"populate_by_name": True}


class Blend(BaseModel):
    members: list[str]
    tracks: list[BlendTrack]
    # compatibility[i][j]: the served score recommend shows member i for member j (i's query side, j's
    # candidate side); the diagonal is 1.0 by convention.
    compatibility: list[list[float]]
    embedder: str
    # For display only (not in the --json contract): member id -> display name, and notes.
    names: dict[str, str] = Field(default_factory=dict, exclude=True)
    warnings: list[str] = Field(default_factory=list, exclude=True)

    def contract(self) -> dict:
        """Exactly ``{"members", "tracks": [{"id", "name", "artists", "reason", "from"}], "compatibility", "embedder"}``."""
        return self.model_dump(mode="json", by_alias=True)

    def shares(self) -> dict[str, float]:
        """Share of the tracks each member's library contributed (a shared track counts for each of its members)."""
        n = len(self.tracks) or 1
        return {m: round(sum(m in t.from_ for t in self.tracks) / n, 4) for m in self.members}
