"""Result models and errors of the recommend stage: the contract the CLI and the dashboard read.

Pydantic only (no numpy, no torch) so the dashboard can import these for its first paint.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

ACCEPTED_REFERENCE_FORMS = (
    "https://open.spotify.com/user/ID (with or without ?si=...)",
    "https://open.spotify.com/intl-xx/user/ID",
    "spotify:user:ID",
    "a bare Spotify user ID",
)


# --- errors ------------------------------------------------------------------
class RecommendError(Exception):
    """Base class of every error the recommend API raises on purpose; the message is meant for the user."""

    #: Short machine-readable kind, e.g. for the CLI's --json error object.
    kind = "error"


class InvalidReference(RecommendError):
    kind = "invalid_reference"

    def __init__(self, ref: str, detail: str = ""):
        self.ref = ref
        forms = "; ".join(ACCEPTED_REFERENCE_FORMS)
        why = f" ({detail})" if detail else ""
        super().__init__(f"not a Spotify profile reference: {ref!r}{why}. Accepted forms: {forms}.")


class UnknownUser(RecommendError):
    kind = "unknown_user"

    def __init__(self, user_id: str, detail: str = ""):
        self.user_id = user_id
        why = f": {detail}" if detail else ""
        super().__init__(f"no Spotify user {user_id!r} is known here or on Spotify{why}")


class NotEnoughData(RecommendError):
    kind = "not_enough_data"

    def __init__(self, user_id: str, detail: str = ""):
        self.user_id = user_id
        why = f" ({detail})" if detail else ""
        super().__init__(
            f"user {user_id!r} has too little public music to match on{why}: "
            "they need at least one public playlist with music tracks"
        )


class SpotifyRefused(RecommendError):
    kind = "spotify_refused"

    def __init__(self, user_id: str | None = None, detail: str = ""):
        self.user_id = user_id
        who = f" for {user_id!r}" if user_id else ""
        why = f" ({detail})" if detail else ""
        super().__init__(
            f"Spotify refused to share this profile{who}{why}. Since February 2026, apps in development mode "
            "can no longer read other users' profiles or playlists (GET /users/{id}/playlists answers 403), and "
            "need an owner with Premium and at most 5 allow-listed users. What to do: import your own Spotify "
            "'Download your data' export instead (see 'soundmates import-export --help'), ask the app owner to "
            "allow-list your account, or use an app with extended quota."
        )


class RemovedByOwner(RecommendError):
    """The profile was removed; only its proven owner or an explicit operator flag brings it back."""

    kind = "removed"

    def __init__(self, user_id: str, removed_at: str | None = None):
        self.user_id = user_id
        when = f" on {removed_at}" if removed_at else ""
        super().__init__(
            f"{user_id!r} was removed from Soundmates{when} and is not added back on anyone's say-so. "
            "Its owner can come back through 'Connect with Spotify' on the dashboard; an operator who has "
            f"checked with the owner can run 'soundmates add {user_id} --restore-removed' (fetched afresh, "
            "findable after the pipeline has run)."
        )


class NothingBuiltYet(RecommendError):
    kind = "nothing_built_yet"

    def __init__(self, what: str = "index", how: str = "ingest some users, build features, then run 'soundmates index build'"):
        self.what = what
        super().__init__(f"no {what} has been built yet: {how}")


# --- results -----------------------------------------------------------------
class SharedGenre(BaseModel):
    genre: str
    # Share of listening both have in this genre: min of the two sides' normalised weights.
    weight: float


class SharedArtist(BaseModel):
    id: str
    name: str
    weight: float = 0.0


class SharedTrack(BaseModel):
    id: str
    name: str
    artists: list[str] = Field(default_factory=list)


class ClosestArtist(BaseModel):
    id: str
    name: str
    similarity: float


class EmbedderInfo(BaseModel):
    """The served method: what put the vectors in the index (a trained model or a baseline)."""

    name: str  # e.g. two_tower, raw_cosine, a baseline's method name
    version: str


class Match(BaseModel):
    user_id: str
    display_name: str | None = None
    # Served score: cosine of your query-side vector and their candidate-side vector, -1..1
    # (the same number match_detail shows).
    score: float
    # Closer than this % of random (query, candidate) pairs of the current index, scored the same way.
    percentile: float | None = None
    shared_genres: list[SharedGenre] = Field(default_factory=list)
    shared_artists: list[SharedArtist] = Field(default_factory=list)
    shared_tracks: list[SharedTrack] = Field(default_factory=list)
    closest_artists: list[ClosestArtist] = Field(default_factory=list)
    era_overlap: float | None = None  # 0..1 overlap of release-year histograms; None = years unknown
    profile_url: str | None = None
    source: str = "index"  # index | fresh (added since the last build)


class RecommendResult(BaseModel):
    user_id: str
    display_name: str | None = None
    matches: list[Match] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    model_version: str | None = None
    index_version: str | None = None
    embedder: EmbedderInfo | None = None  # the served method's name and version
    known: bool = True  # False = ingested live for this request
    stored: bool = False  # True = this request stored the profile (consent)


class InboxEntry(BaseModel):
    user_id: str
    ref: str | None = None
    status: str  # pending | processing | done | failed
    reason: str | None = None
    source: str | None = None
    requested_at: str | None = None
    updated_at: str | None = None


class MethodScores(BaseModel):
    """One method's figures in an evaluation: ``{metric: value}`` and ``{metric: [lo, hi]}`` (bootstrap 95%)."""

    metrics: dict[str, float] = Field(default_factory=dict)
    ci95: dict[str, list[float]] = Field(default_factory=dict)


class Evaluation(BaseModel):
    """The model stage's evaluation of the served method against the baselines (issue 15 protocol)."""

    protocol: str | None = None
    served: str | None = None  # method name of what recommend serves
    reason: str | None = None  # why it is served (the promotion gate's words)
    users: int | None = None  # queries
    candidates: int | None = None
    methods: dict[str, MethodScores] = Field(default_factory=dict)
    run: str | None = None  # the model version whose training run produced these figures
    served_version: str | None = None  # the registry version recommend serves now
    served_base: str | None = None  # a feedback-tuned served embedder's base method (evaluated under that name)
    served_base_version: str | None = None
    dataset: str | None = None
    data_version: int | None = None  # feature-store data version the run read


class PipelineStatus(BaseModel):
    users_stored: int = 0
    model_version: str | None = None
    model_metrics: dict[str, Any] = Field(default_factory=dict)
    embedder: EmbedderInfo | None = None
    evaluation: Evaluation | None = None
    index_version: str | None = None
    index_size: int = 0
    index_built_at: str | None = None
    index_age_s: float | None = None
    index_parameters: dict[str, Any] = Field(default_factory=dict)
    fresh_buffer_size: int = 0
    rebuild_due: bool = False
    tombstones: int = 0
    inbox_counts: dict[str, int] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    # Match feedback (recommend.feedback.summary): totals and the up share among served top 10; None = no votes
    feedback: dict[str, Any] | None = None


class MapData(BaseModel):
    user_ids: list[str] = Field(default_factory=list)
    display_names: list[str | None] = Field(default_factory=list)
    x: list[float] = Field(default_factory=list)
    y: list[float] = Field(default_factory=list)
    explained_variance: list[float] = Field(default_factory=list)
    model_version: str | None = None
    families: list[str] = Field(default_factory=list)  # each user's dominant genre family (empty: no layout)
    method: str = "pca"  # umap = the pipeline's stored layout; pca = computed on the fly (no layout built)
    neighbour_preservation: float | None = None  # share of the 10 nearest in embedding space kept on the map
    pca_neighbour_preservation: float | None = None
    total_users: int = 0  # users laid out; more than len(user_ids) when the page shows a sample
    index_version: str | None = None  # the index version the layout was made of


class GenreOverlap(BaseModel):
    genre: str
    weight_user: float
    weight_other: float


class MatchDetail(BaseModel):
    user_id: str
    other_id: str
    user_display_name: str | None = None
    other_display_name: str | None = None
    score: float | None = None
    percentile: float | None = None
    genre_overlap: list[GenreOverlap] = Field(default_factory=list)  # union of both sides' top genres
    year_bins: list[str] = Field(default_factory=list)  # bin labels, e.g. "1990s" (features.schema.YEAR_BINS)
    year_hist_user: list[float] = Field(default_factory=list)
    year_hist_other: list[float] = Field(default_factory=list)
    era_overlap: float | None = None
    shared_artists: list[SharedArtist] = Field(default_factory=list)
    shared_tracks: list[SharedTrack] = Field(default_factory=list)
    closest_artists: list[ClosestArtist] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
