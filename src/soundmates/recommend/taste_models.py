"""Result models of feedback and of a person's taste profile (pydantic only, for the dashboard's first paint)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from soundmates.recommend.models import RecommendError


class FeedbackNotAllowed(RecommendError):
    """Feedback from, or about, someone whose profile is not stored with their consent."""

    kind = "feedback_not_allowed"


class FeedbackResult(BaseModel):
    user_id: str
    other_id: str
    vote: str  # up | down
    updated_at: float
    # The votes this user has given, after this one: {"up": n, "down": n}
    yours: dict[str, int] = Field(default_factory=dict)
    # Every vote stored: {"up": n, "down": n, "voters": n}
    everyone: dict[str, int] = Field(default_factory=dict)


class Ranked(BaseModel):
    name: str
    share: float  # share of the profile, 0..1
    id: str | None = None


class Percentile(BaseModel):
    """Your value against everyone's: ``percentile`` = share of stored users with a lower value (0..100)."""

    value: float | None = None
    population_median: float | None = None
    percentile: float | None = None
    users_compared: int = 0


class TasteProfile(BaseModel):
    user_id: str
    display_name: str | None = None
    top_genres: list[Ranked] = Field(default_factory=list)
    top_artists: list[Ranked] = Field(default_factory=list)
    eras: list[Ranked] = Field(default_factory=list)  # release-year bins, share of tracks
    # Mean Spotify popularity (0..100) of your tracks vs everyone's.
    mainstream: Percentile = Field(default_factory=Percentile)
    # Shannon entropy (bits) of your genre weights vs everyone's.
    variety: Percentile = Field(default_factory=Percentile)
    # How many served users score at least ``within`` with you (served score, the one match cards show).
    within: float = 0.5
    people_within: int | None = None
    people_compared: int | None = None
    family: str | None = None  # your dominant genre family (the map's colour)
    embedder: str | None = None
    warnings: list[str] = Field(default_factory=list)
