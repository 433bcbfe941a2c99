"""The Blend page's parts: who is in the blend (session state), the result, its downloads and Save to Spotify.

Everything it shows comes from ``Recommender.blend`` (``soundmates.recommend.blend``) and the package's
exports and save (``blend_export``, ``blend_save``); this module only draws them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import streamlit as st

from soundmates.recommend.blend_models import MAX_MEMBERS, MAX_SIZE, Blend
from soundmates.recommend.models import RecommendError
from streamlit_app import blend_charts, ui

if TYPE_CHECKING:  # pragma: no cover
    from soundmates.recommend import Recommender

log = logging.getLogger("soundmates.dashboard")

MEMBERS_KEY = "sm_blend_members"  # [user id, ...] in order; the first is the person asking
RESULT_KEY = "sm_blend_result"  # the Blend made from MEMBERS_KEY, or a RecommendError
SAVED_KEY = "sm_blend_saved"  # a sentence: where the last blend was saved, or why not
BLEND_PAGE = ui.VIEWS / "blend.py"
DEFAULT_SIZE = 30


def members() -> list[str]:
    """The people in the blend being made (the last search's person first, until changed)."""
    if MEMBERS_KEY not in st.session_state:
        last = st.session_state.get(ui.RESULT_KEY)
        st.session_state[MEMBERS_KEY] = [last.user_id] if last is not None else []
    return st.session_state[MEMBERS_KEY]


def _changed() -> None:
    st.session_state.pop(RESULT_KEY, None)
    st.session_state.pop(SAVED_KEY, None)


def card_action(you: str, other: str) -> None:
    """'Blend with this person' on a match card: a blend of you and them (or them added to yours), then the page."""
    if not st.button("Blend with this person", icon=":material/queue_music:", key=f"blend_with_{other}"):
        return
    current = st.session_state.get(MEMBERS_KEY) or []
    if current[:1] != [you]:
        current = [you]
    if other not in current and len(current) < MAX_MEMBERS:
        current = [*current, other]
    st.session_state[MEMBERS_KEY] = current
    _changed()
    st.switch_page(BLEND_PAGE)


def add_member(rec: Recommender, ref: str) -> str | None:
    """Add the person ``ref`` names; a one-line reason when they cannot be added."""
    current = members()
    if not ref.strip():
        return "Paste a Spotify profile (link, spotify:user:ID or ID) to add someone."
    if len(current) >= MAX_MEMBERS:
        return f"A blend takes at most {MAX_MEMBERS} people: remove someone before adding another."
    try:
        user_id = rec.resolve(ref.strip())
    except RecommendError as exc:
        return str(exc)
    if user_id in current:
        return f"{user_id!r} is already in the blend."
    current.append(user_id)
    _changed()
    return None


def render_members(rec: Recommender) -> None:
    """The member list (you first), each with a remove button, and the form to add someone."""
    current = members()
    if not current:
        st.caption("Nobody yet: add yourself first, then the people to blend with.")
    for i, user_id in enumerate(current):
        name_col, remove_col = st.columns([5, 1], vertical_alignment="center")
        name_col.markdown(f"{i + 1}. `{user_id}`" + (" (you)" if i == 0 else ""))
        if remove_col.button("Remove", key=f"blend_remove_{user_id}", icon=":material/close:"):
            current.remove(user_id)
            _changed()
            st.rerun()
    with st.form("blend_add_form", clear_on_submit=True, border=False):
        ref_col, button_col = st.columns([4, 1.2], vertical_alignment="bottom")
        ref = ref_col.text_input("Add a person", placeholder="https://open.spotify.com/user/…", key="blend_add_ref")
        if button_col.form_submit_button("Add to the blend", width="stretch"):
            problem = add_member(rec, ref)
            if problem:
                st.warning(problem, icon=":material/person_search:")


def size_input() -> int:
    return int(st.number_input("How many tracks", min_value=1, max_value=MAX_SIZE, value=DEFAULT_SIZE, key="blend_size"))


def _caller_profile(first: str | None) -> Any:
    """The connected account's own profile when it is the one asking (it may not be stored here)."""
    from streamlit_app.connect import CONNECTED_KEY

    connected = st.session_state.get(CONNECTED_KEY)
    profile = (connected or {}).get("profile")
    return profile if profile is not None and getattr(profile, "user_id", None) == first else None


def make(rec: Recommender, size: int) -> None:
    """Make the blend of the current members under a live status box; keep it (or why not) in session state."""
    current = list(members())
    _changed()
    with st.status("Mixing your blend…", expanded=True) as status:
        try:
            made = rec.blend(
                current,
                size,
                caller_profile=_caller_profile(current[0] if current else None),
                progress=ui.StatusProgress(status),
            )
        except Exception as exc:  # shown on the page; unexpected ones also go to the server log
            if not isinstance(exc, RecommendError):
                log.exception("blend(%r) failed", current)
            st.session_state[RESULT_KEY] = exc
            status.update(label="No blend", state="error", expanded=False)
            return
        st.session_state[RESULT_KEY] = made
        status.update(label=f"Mixed {len(made.tracks)} tracks", state="complete", expanded=False)


def render_result(blend: Blend) -> None:
    """Who contributed what, how well everyone matches, the tracks with their reasons, downloads and saving."""
    names = [blend.names.get(m, m) for m in blend.members]
    st.subheader(f"Blend of {', '.join(names)}")
    st.caption(f"{len(blend.tracks)} tracks · scored with {blend.embedder}")
    for warning in blend.warnings:
        st.caption(f":material/warning: {warning}")
    shares = blend.shares()
    for col, member in zip(st.columns(len(blend.members)), blend.members):
        col.metric(
            blend.names.get(member, member),
            ui.percent(shares[member]),
            help="Share of the tracks from their library (a track several of you have counts for each).",
        )
    st.plotly_chart(blend_charts.compatibility_figure(names, blend.compatibility), key="blend_matrix", width="stretch")
    st.dataframe(
        [
            {
                "#": i,
                "Track": t.name,
                "Artists": ", ".join(t.artists),
                "Why it's here": t.reason,
                "From": ", ".join(blend.names.get(m, m) for m in t.from_),
            }
            for i, t in enumerate(blend.tracks, start=1)
        ],
        hide_index=True,
        width="stretch",
        key="blend_tracks",
    )
    _downloads(blend)
    _save_controls(blend)


def _downloads(blend: Blend) -> None:
    from soundmates.recommend import blend_export

    for col, fmt in zip(st.columns(len(blend_export.FORMATS)), blend_export.FORMATS):
        col.download_button(
            f"Download {fmt.upper()}",
            blend_export.render(blend, fmt),
            file_name=f"soundmates-blend.{fmt}",
            mime=blend_export.MEDIA_TYPES[fmt],
            icon=":material/download:",
            key=f"blend_download_{fmt}",
            width="stretch",
        )


def _save_controls(blend: Blend) -> None:
    """Save to Spotify into the connected account (a member's own only: the package refuses anyone else's)."""
    from streamlit_app.connect import CONNECTED_KEY

    connected = st.session_state.get(CONNECTED_KEY)
    if connected is None:
        st.caption(":material/info: Connect with Spotify on **Find your soundmates** to save this blend to your account.")
        return
    account = connected["account"].user_id
    if st.button(f"Save to Spotify ({account})", icon=":material/playlist_add:", key="blend_save", type="primary"):
        st.session_state[SAVED_KEY] = _save(blend, account)
    said = st.session_state.get(SAVED_KEY)
    if said is not None:
        (st.success if said[0] else st.error)(said[1])


def _save(blend: Blend, account: str) -> tuple[bool, str]:
    from soundmates.config import get_settings
    from soundmates.recommend.blend_save import save_blend
    from soundmates.spotify.connect import ConnectError, SpotifyConnect
    from soundmates.spotify.errors import SpotifyError
    from streamlit_app.connect import redirect_uri

    try:
        settings = get_settings()
        saved = save_blend(blend, SpotifyConnect(settings, redirect_uri=redirect_uri(settings)), account)
    except (RecommendError, ConnectError, SpotifyError) as exc:
        return False, f"Not saved: {exc}"
    except Exception as exc:  # one line on the page, the details in the server log
        log.exception("saving a blend to %s failed", account)
        return False, f"Not saved: {type(exc).__name__}: {exc}"
    where = f" [{saved.id}]({saved.url})" if saved.url else f" {saved.id}"
    return True, f"Saved {saved.tracks} tracks to {account}'s private playlist{where}."
