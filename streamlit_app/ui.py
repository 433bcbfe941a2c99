"""What every page shares: the cached Recommender, error messages, match cards and their charts.

No business logic lives here: every number shown comes from ``soundmates.recommend``.
"""

from __future__ import annotations

import logging
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from soundmates.recommend.models import (
    ACCEPTED_REFERENCE_FORMS,
    InvalidReference,
    Match,
    NotEnoughData,
    NothingBuiltYet,
    RecommendError,
    RecommendResult,
    RemovedByOwner,
    SpotifyRefused,
    UnknownUser,
)
from streamlit_app import charts

if TYPE_CHECKING:  # pragma: no cover
    from soundmates.recommend import Recommender

log = logging.getLogger("soundmates.dashboard")
VIEWS = Path(__file__).resolve().parent / "views"  # the page scripts, by absolute path (any entry script works)

# Session-state keys shared by the pages (the map highlights the last search's matches).
REF_KEY = "sm_ref"  # the last profile reference the user submitted
RESULT_KEY = "sm_result"  # RecommendResult of the last successful search
ERROR_KEY = "sm_error"  # RecommendError of the last failed search
DETAILS_KEY = "sm_details"  # {(user_id, other_id): MatchDetail | RecommendError}, fetched on demand

BUILD_HINT = (
    "Build it with `make run` (everything, on the embedded defaults) or step by step: "
    "`soundmates ingest ...`, `soundmates features build`, then `soundmates index build`."
)


def _data_dir() -> str:
    from soundmates.config import get_settings

    return str(get_settings().data_dir)


@st.cache_resource(show_spinner="Loading the model and the index…")
def _load_recommender(data_dir: str) -> Recommender:
    # data_dir is the cache key: a dashboard pointed at another SOUNDMATES_DATA_DIR gets its own instance.
    from soundmates.config import get_settings
    from soundmates.recommend import Recommender

    return Recommender(get_settings())


def recommender() -> Recommender | None:
    """The process-wide Recommender (model and index stay loaded across reruns), or None after a shown error."""
    try:
        return _load_recommender(_data_dir())
    except RecommendError as exc:
        show_error(exc)
        return None


def reload_recommender() -> None:
    """Forget the loaded model and index, e.g. after the pipeline built a new version."""
    _load_recommender.clear()
    st.session_state.pop(DETAILS_KEY, None)


def show_error(exc: Exception) -> None:
    """One clear message per kind of error, with what to do next."""
    if isinstance(exc, InvalidReference):
        st.error(f"That doesn't look like a Spotify profile: `{exc.ref}`", icon=":material/link_off:")
        st.markdown("**Accepted forms:**\n" + "\n".join(f"- `{form}`" for form in ACCEPTED_REFERENCE_FORMS))
    elif isinstance(exc, UnknownUser):
        st.warning(f"We couldn't find that profile. {exc}", icon=":material/person_search:")
    elif isinstance(exc, NotEnoughData):
        st.warning(str(exc), icon=":material/music_off:")
    elif isinstance(exc, SpotifyRefused):
        st.error("Spotify refused to share this profile (development-mode restriction).", icon=":material/block:")
        st.markdown(str(exc))
    elif isinstance(exc, RemovedByOwner):
        st.info(str(exc), icon=":material/person_off:")
    elif isinstance(exc, NothingBuiltYet):
        st.info(f"Nothing to match against yet: {exc}.\n\n{BUILD_HINT}", icon=":material/construction:")
    elif isinstance(exc, RecommendError):
        st.error(str(exc))
    else:  # an unexpected failure: say so plainly rather than showing a stack trace to visitors
        st.error(f"Something went wrong: {type(exc).__name__}: {exc}")


class StatusProgress:
    """Adapter from the Recommender's ``progress`` callback to a live ``st.status`` box."""

    def __init__(self, status: Any):
        self.status = status
        self.steps: list[str] = []

    def __call__(self, message: Any = "", *args: Any, **kwargs: Any) -> None:
        text = str(message)
        if not text or (self.steps and self.steps[-1] == text):
            return
        self.steps.append(text)
        self.status.update(label=text)
        self.status.write(text)


def with_interval(value: float | None, interval: list[float] | None) -> str:
    """``0.812 [0.79, 0.83]``: a metric with its bootstrap 95% interval, ``–`` when not measured."""
    if value is None:
        return "–"
    return f"{value:.3f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")


def evaluation_caption(evaluation: Any) -> str:
    """Under what conditions the evaluation's figures were measured."""
    parts = [
        f"protocol: {evaluation.protocol}" if evaluation.protocol else None,
        f"{evaluation.users:,} held-out query users" if evaluation.users else None,
        f"ranked against {evaluation.candidates:,} candidates" if evaluation.candidates else None,
        f"run: model `{evaluation.run}`" if getattr(evaluation, "run", None) else None,
        f"dataset {evaluation.dataset}" if getattr(evaluation, "dataset", None) else None,
        f"feature data version {evaluation.data_version}" if getattr(evaluation, "data_version", None) is not None else None,
    ]
    said = "; ".join(p for p in parts if p)
    return (
        "From the model stage's evaluation" + (f" ({said})" if said else "") + ". Brackets: bootstrap 95% interval over queries."
    )


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def match_name(match: Match) -> str:
    return match.display_name or match.user_id


def spotify_profile_url(match: Match) -> str:
    return match.profile_url or f"https://open.spotify.com/user/{match.user_id}"


def _chips(items: list[str], colour: str) -> str:
    # Streamlit's markdown badges; brackets in names would end the badge early.
    return " ".join(f":{colour}-badge[{it.replace('[', '(').replace(']', ')')}]" for it in items)


def render_match_card(rank: int, match: Match, result: RecommendResult, rec: Recommender) -> None:
    with st.container(border=True, key=f"match_card_{rank}"):
        left, right = st.columns([2, 3], gap="medium")
        with left:
            st.markdown(f"#### {rank}. {match_name(match)}")
            st.caption(
                f"Spotify user `{match.user_id}`" + (" · new since the last index build" if match.source == "fresh" else "")
            )
            score_col, pct_col = st.columns(2)
            score_col.metric(
                "Match score",
                f"{match.score:.2f}",
                help="Cosine of your taste embedding (query side) and theirs (as indexed), −1 … 1.",
            )
            if match.percentile is not None:
                pct_col.metric(
                    "Closer than",
                    f"{match.percentile:.0f}%",
                    help="Share of random pairs of users in the current index whose match score, computed "
                    "the same way, is lower than yours. A top match among thousands of users is "
                    "expected to read in the high 90s.",
                )
            if match.era_overlap is not None:
                st.progress(min(max(match.era_overlap, 0.0), 1.0), text=f"Era overlap {percent(match.era_overlap)}")
            st.link_button("Open their Spotify profile ↗", spotify_profile_url(match))
            from streamlit_app import blend_view

            blend_view.card_action(result.user_id, match.user_id)
        with right:
            if match.shared_genres:
                st.markdown("**Shared genres** " + _chips([g.genre for g in match.shared_genres[:8]], "green"))
            if match.shared_artists:
                st.markdown("**Shared artists** " + _chips([a.name for a in match.shared_artists[:8]], "violet"))
            if match.shared_tracks:
                lines = [f"- {t.name}" + (f" — {', '.join(t.artists)}" if t.artists else "") for t in match.shared_tracks[:5]]
                more = len(match.shared_tracks) - 5
                st.markdown(
                    f"**Tracks you both have** ({len(match.shared_tracks)})\n"
                    + "\n".join(lines)
                    + (f"\n- … and {more} more" if more > 0 else "")
                )
            if not (match.shared_genres or match.shared_artists or match.shared_tracks):
                st.markdown("_No genres, artists or tracks in common: your tastes meet in sound, not in names._")
        from streamlit_app import feedback_view

        feedback_view.render(result, match, rec)
        if st.toggle("Why this match?", key=f"why_{match.user_id}"):
            render_match_detail(result, match, rec)


def _detail(rec: Recommender, user_id: str, other_id: str) -> Any:
    cache: dict = st.session_state.setdefault(DETAILS_KEY, {})
    key = (user_id, other_id)
    if key not in cache:
        try:
            cache[key] = rec.match_detail(user_id, other_id)
        except Exception as exc:  # one broken explanation must not take the other cards down
            if not isinstance(exc, RecommendError):
                log.exception("match_detail(%r, %r) failed", user_id, other_id)
            cache[key] = exc
    return cache[key]


def render_match_detail(result: RecommendResult, match: Match, rec: Recommender) -> None:
    detail = _detail(rec, result.user_id, match.user_id)
    if isinstance(detail, Exception):
        show_error(detail)
        return
    you, them = "You", match_name(match)
    for warning in detail.warnings:
        st.caption(f":material/warning: {warning}")
    genres_tab, eras_tab, artists_tab = st.tabs(["Genres", "Eras", "Their artists closest to you"])
    with genres_tab:
        if detail.genre_overlap:
            st.plotly_chart(
                charts.genre_overlap_figure(
                    [g.genre for g in detail.genre_overlap],
                    [g.weight_user for g in detail.genre_overlap],
                    [g.weight_other for g in detail.genre_overlap],
                    you=you,
                    them=them,
                ),
                key=f"genres_{match.user_id}",
                width="stretch",
            )
        else:
            st.caption("No genres known for these profiles (Spotify often leaves them out).")
    with eras_tab:
        if detail.year_bins and any(detail.year_hist_user) and any(detail.year_hist_other):
            st.plotly_chart(
                charts.era_overlap_figure(
                    [str(b) for b in detail.year_bins],
                    detail.year_hist_user,
                    detail.year_hist_other,
                    you=you,
                    them=them,
                ),
                key=f"eras_{match.user_id}",
                width="stretch",
            )
        else:
            st.caption("Release years are unknown for one of you.")
    with artists_tab:
        if detail.closest_artists:
            st.plotly_chart(
                charts.closest_artists_figure(
                    [a.name for a in detail.closest_artists],
                    [a.similarity for a in detail.closest_artists],
                    them=them,
                ),
                key=f"artists_{match.user_id}",
                width="stretch",
            )
        else:
            st.caption("No artist of theirs could be compared with your taste.")


def run_search(rec: Recommender, ref: str, k: int, diversity: float) -> None:
    """Ask for matches under a live status box; keep the outcome in session state for the other pages."""
    st.session_state[REF_KEY] = ref
    st.session_state.pop(RESULT_KEY, None)
    st.session_state.pop(ERROR_KEY, None)
    st.session_state.pop(DETAILS_KEY, None)
    with st.status(f"Looking for the soundmates of `{ref}`…", expanded=True) as status:
        progress = StatusProgress(status)
        try:
            result = rec.recommend(ref, k=k, diversity=diversity, progress=progress)
        except Exception as exc:  # shown on the page; unexpected ones also go to the server log
            if not isinstance(exc, RecommendError):
                log.exception("recommend(%r) failed", ref)
            st.session_state[ERROR_KEY] = exc
            status.update(label="No matches", state="error", expanded=False)
            return
        st.session_state[RESULT_KEY] = result
        done = f"Found {len(result.matches)} soundmates" + ("" if result.known else " (profile fetched live)")
        status.update(label=done, state="complete", expanded=False)


def describe_removal(removed: dict) -> str:
    """A readable line from what ``Recommender.remove`` reports having deleted."""
    parts = []
    for key, value in removed.items():
        if isinstance(value, bool):
            if value:
                parts.append(key.replace("_", " "))
        elif isinstance(value, (int, float)) and value:
            parts.append(f"{key.replace('_', ' ')}: {value}")
    return ("Deleted: " + ", ".join(parts) + ".") if parts else "Nothing was stored about this profile."


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def when_text(iso: str | None) -> str:
    """'2026-11-28 14:38 UTC' from an ISO timestamp; the input unchanged when it is not one."""
    from datetime import datetime

    if not iso:
        return "–"
    try:
        ts = datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        return str(iso)
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC)
    return ts.strftime("%Y-%m-%d %H:%M UTC")
