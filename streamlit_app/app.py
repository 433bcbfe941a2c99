"""Soundmates dashboard entry point: ``streamlit run streamlit_app/app.py``.

Pages live in ``streamlit_app/views/`` and are wired with ``st.navigation``;
every page calls only the recommend API (``soundmates.recommend``).
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run` puts this folder on sys.path, not the repository root; the pages import
# `streamlit_app.*` as a package so that helper names never clash with other modules.
_REPO_ROOT = str(Path(__file__).resolve().parents[1])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

import streamlit as st  # noqa: E402

from soundmates.logs import configure_logging  # noqa: E402

configure_logging()  # one line per handled failure on stderr, tracebacks only with SOUNDMATES_DEBUG=1

from streamlit_app import ui  # noqa: E402

VIEWS = ui.VIEWS

st.set_page_config(page_title="Soundmates", page_icon=":material/headphones:", layout="wide")

pages = st.navigation(
    [
        st.Page(VIEWS / "find.py", title="Find your soundmates", icon=":material/headphones:", default=True),
        st.Page(VIEWS / "blend.py", title="Blend", icon=":material/queue_music:"),
        st.Page(VIEWS / "map.py", title="Taste map", icon=":material/scatter_plot:"),
        st.Page(VIEWS / "taste.py", title="Your taste", icon=":material/equalizer:"),
        st.Page(VIEWS / "consent.py", title="Your data", icon=":material/front_hand:"),
        st.Page(VIEWS / "pipeline.py", title="Pipeline", icon=":material/settings:"),
    ]
)

with st.sidebar:
    st.markdown("### :material/headphones: Soundmates")
    st.caption("People whose music taste is closest to yours, from public Spotify profiles.")
    if st.button("Reload model and index", help="Pick up a model or index the pipeline built since this page loaded."):
        ui.reload_recommender()
    from soundmates.config import get_settings

    st.caption(f"Data: `{get_settings().data_dir}`")

# Spotify's OAuth redirect lands on the app's root URL (?code=&state=): finish connecting first.
from streamlit_app import connect as connect_ui  # noqa: E402

connect_ui.handle_redirect()

pages.run()
