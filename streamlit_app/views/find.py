"""Find matches: paste a profile, get the people whose taste is closest, with reasons."""

from __future__ import annotations

import streamlit as st

from soundmates.recommend.models import ACCEPTED_REFERENCE_FORMS
from streamlit_app import connect as connect_ui
from streamlit_app import ui

st.title("Find your soundmates")
st.markdown("Paste your Spotify profile and meet the people whose music taste is closest to yours.")

# Prefill with the last search (also made on another page); widget state itself is dropped on page switch.
if "find_ref" not in st.session_state:
    st.session_state["find_ref"] = st.session_state.get(ui.REF_KEY, "")

with st.form("find_form", border=False):
    ref_col, button_col = st.columns([4, 1.2], vertical_alignment="bottom")
    ref = ref_col.text_input(
        "Your Spotify profile",
        placeholder="https://open.spotify.com/user/…",
        help="Accepted: " + "; ".join(ACCEPTED_REFERENCE_FORMS),
        key="find_ref",
    )
    submitted = button_col.form_submit_button("Find my soundmates", type="primary", width="stretch")
    with st.expander("Options"):
        k = st.slider("How many matches", min_value=1, max_value=30, value=10, key="find_k")
        diversity = st.slider(
            "Variety",
            min_value=0.0,
            max_value=1.0,
            value=0.0,
            step=0.1,
            key="find_diversity",
            help="0 = strictly the closest people; higher = matches that also differ from each other.",
        )

rec = ui.recommender()
if rec is None:
    st.stop()

rec = connect_ui.render(rec)  # the other way in: Connect with Spotify (your own account, OAuth)

if submitted:
    if not ref.strip():
        st.warning("Paste a Spotify profile first.")
        st.markdown("**Accepted forms:**\n" + "\n".join(f"- `{form}`" for form in ACCEPTED_REFERENCE_FORMS))
        st.stop()
    ui.run_search(rec, ref.strip(), k, diversity)

error = st.session_state.get(ui.ERROR_KEY)
result = st.session_state.get(ui.RESULT_KEY)
if error is not None:
    ui.show_error(error)
elif result is not None:
    who = result.display_name or result.user_id
    st.subheader(f"Soundmates of {who}")
    for warning in result.warnings:
        st.caption(f":material/warning: {warning}")
    if not result.stored and not result.known:
        st.info(
            "We fetched your profile just for this search and did not keep it. "
            "To let others find you too, add yourself on **Your data**.",
            icon=":material/front_hand:",
        )
        st.page_link(ui.VIEWS / "consent.py", label="Add me to Soundmates", icon=":material/front_hand:")
    if not result.matches:
        st.info("No one to match you with yet: the index is empty or everyone else was filtered out.")
    for rank, match in enumerate(result.matches, start=1):
        ui.render_match_card(rank, match, result, rec)
    served = f"Served by {result.embedder.name} · " if result.embedder else ""
    st.caption(f"{served}Model `{result.model_version or '?'}` · index `{result.index_version or '?'}`")
