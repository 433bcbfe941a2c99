"""Connect with Spotify on the dashboard: the button, the redirect handling, the consent step.

The logic is in :mod:`soundmates.spotify.connect`; this module only draws it. Spotify redirects to
the dashboard's own URL (``SOUNDMATES_DASHBOARD_URL`` + ``/``, a loopback literal such as
``http://127.0.0.1:8501/``: register it in the Spotify app) with ``?code=&state=``. That opens a new
Streamlit session, which is why the PKCE verifier waits on disk under the state, not in session state.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import streamlit as st

if TYPE_CHECKING:  # pragma: no cover
    from soundmates.recommend import Recommender

log = logging.getLogger("soundmates.dashboard")

CONNECTED_KEY = "sm_connected"  # {"account", "profile", "summary"} of the account connected in this session
CONNECT_ERROR_KEY = "sm_connect_error"  # why the last connection failed (a sentence)
CONNECT_URL_KEY = "sm_connect_url"  # (authorize URL, monotonic time made): one pending authorization per session
CONNECT_SEARCHED_KEY = "sm_connect_searched"  # the user id whose matches were already looked up once
CONNECT_STORED_KEY = "sm_connect_stored"  # the inbox entry after "Add me"

EXPLANATION = (
    "Reads your own playlists, top tracks and artists after you log in; works even where Spotify now "
    "refuses to share profiles (apps in development mode). Nothing is kept unless you click **Add me**."
)


def _settings():
    from soundmates.config import get_settings

    return get_settings()


def redirect_uri(settings=None) -> str:
    settings = settings or _settings()
    return settings.dashboard_url.rstrip("/") + "/"


def _flow():
    from soundmates.spotify.connect import SpotifyConnect

    settings = _settings()
    return SpotifyConnect(settings, redirect_uri=redirect_uri(settings))


def handle_redirect() -> None:
    """On app load: finish a connection if Spotify just redirected here (``?code=&state=`` or ``?error=&state=``)."""
    params = st.query_params
    if "state" not in params or not ("code" in params or "error" in params):
        return
    code, state, error = params.get("code"), params.get("state"), params.get("error")
    st.query_params.clear()  # the code works once: a rerun must not present it again
    from soundmates.spotify.connect import ConnectError, fetch_profile
    from soundmates.spotify.errors import SpotifyError

    st.session_state.pop(CONNECT_ERROR_KEY, None)
    try:
        flow = _flow()
        with st.spinner("Connecting with Spotify and reading your playlists…"):
            account = flow.finish(code=code, state=state, error=error)
            profile, summary = fetch_profile(flow.client(account.user_id), flow.settings)
    except (ConnectError, SpotifyError) as exc:
        st.session_state[CONNECT_ERROR_KEY] = str(exc)
        return
    except Exception as exc:  # shown, not a stack trace; the server log keeps the details
        log.exception("connect with Spotify failed")
        st.session_state[CONNECT_ERROR_KEY] = f"{type(exc).__name__}: {exc}"
        return
    st.session_state[CONNECTED_KEY] = {"account": account, "profile": profile, "summary": summary}
    st.session_state.pop(CONNECT_SEARCHED_KEY, None)
    st.session_state.pop(CONNECT_STORED_KEY, None)


def _authorize_url() -> str | None:
    from soundmates.spotify.connect import PENDING_TTL_S, ConnectError

    made = st.session_state.get(CONNECT_URL_KEY)
    if made is not None and time.monotonic() - made[1] < PENDING_TTL_S - 60:
        return made[0]
    try:
        url, _state = _flow().start()
    except ConnectError as exc:
        st.caption(f":material/info: Connect with Spotify is not available here: {exc}")
        return None
    st.session_state[CONNECT_URL_KEY] = (url, time.monotonic())
    return url


def _search(rec: Recommender, connected: dict[str, Any], k: int) -> None:
    from soundmates.recommend.connected import connected_recommender
    from streamlit_app import ui

    profile = connected["profile"]
    st.session_state[ui.REF_KEY] = profile.user_id
    for key in (ui.RESULT_KEY, ui.ERROR_KEY, ui.DETAILS_KEY):
        st.session_state.pop(key, None)
    with st.status("Looking for your soundmates…", expanded=True) as status:
        try:
            # Kept for this session: it knows the connected profile, so "Why this match?" can explain.
            own = connected_recommender(profile, share_with=rec)
            connected["recommender"] = own
            result = own.recommend(profile.user_id, k=k, progress=ui.StatusProgress(status))
        except Exception as exc:
            from soundmates.recommend import RecommendError

            if not isinstance(exc, RecommendError):
                log.exception("recommend for a connected account failed")
            st.session_state[ui.ERROR_KEY] = exc
            status.update(label="No matches", state="error", expanded=False)
            return
        st.session_state[ui.RESULT_KEY] = result
        status.update(label=f"Found {len(result.matches)} soundmates", state="complete", expanded=False)


def render(rec: Recommender) -> Recommender:
    """The "Connect with Spotify" control, or the connected account with its matches and the Add me button.

    Returns the Recommender the page should explain the shown matches with: the connected account's own
    when the result on the page is theirs (it knows their unstored profile), else ``rec``.
    """
    error = st.session_state.get(CONNECT_ERROR_KEY)
    connected = st.session_state.get(CONNECTED_KEY)
    with st.container(border=True, key="connect_panel"):
        if error:
            st.error(f"Could not connect with Spotify: {error}", icon=":material/link_off:")
        if connected is None:
            st.markdown("**Or connect with Spotify.** " + EXPLANATION)
            url = _authorize_url()
            if url:
                st.link_button("Connect with Spotify", url, icon=":material/login:")
            return rec
        account, summary = connected["account"], connected["summary"]
        st.markdown(
            f":material/check_circle: Connected as **{account.display_name or account.user_id}** "
            f"(`{account.user_id}`): {summary.tracks} tracks by {summary.artists} artists from "
            f"{summary.playlists_read} playlists, {summary.top_tracks} top tracks, {summary.top_artists} top artists."
        )
        if summary.playlists_not_readable:
            st.caption(
                f"{summary.playlists_not_readable} playlist(s) you follow but do not own were skipped: "
                "Spotify shares only your own and collaborative playlists with apps in development mode."
            )
        left, right = st.columns(2)
        again = left.button("Find soundmates for my account", key="connect_search")
        stored = st.session_state.get(CONNECT_STORED_KEY)
        if stored is None and right.button("Add me (store my profile)", key="connect_add", type="primary"):
            from soundmates.recommend.connected import store_connected

            try:
                stored = store_connected(connected["profile"], rec.settings, recommender=rec)
                st.session_state[CONNECT_STORED_KEY] = stored
            except Exception as exc:
                log.exception("storing a connected profile failed")
                st.error(f"Could not add you: {exc}")
        if stored is not None:
            right.success(
                f"Added: your profile is queued ({getattr(stored, 'status', 'pending')}); the pipeline "
                "makes you findable on its next run.",
                icon=":material/front_hand:",
            )
    if again or st.session_state.get(CONNECT_SEARCHED_KEY) != account.user_id:
        st.session_state[CONNECT_SEARCHED_KEY] = account.user_id
        _search(rec, connected, int(st.session_state.get("find_k", 10)))
    from streamlit_app import ui

    result = st.session_state.get(ui.RESULT_KEY)
    own = connected.get("recommender")
    if own is not None and result is not None and getattr(result, "user_id", None) == account.user_id:
        return own
    return rec
