"""Your taste: top genres, artists and eras, how mainstream and varied you are, and how many people are near."""

from __future__ import annotations

import streamlit as st

from soundmates.recommend.models import ACCEPTED_REFERENCE_FORMS, RecommendError
from streamlit_app import taste_charts, ui

PROFILE_KEY = "sm_taste_profile"  # (ref, within) -> TasteProfile of the last request

st.title("Your taste")
st.markdown("What you listen to, and where that sits among everyone on Soundmates.")

if "taste_ref" not in st.session_state:
    st.session_state["taste_ref"] = st.session_state.get(ui.REF_KEY, "")
with st.form("taste_form", border=False):
    ref_col, within_col, button_col = st.columns([4, 2, 1.2], vertical_alignment="bottom")
    ref = ref_col.text_input(
        "Your Spotify profile",
        placeholder="https://open.spotify.com/user/…",
        help="Accepted: " + "; ".join(ACCEPTED_REFERENCE_FORMS),
        key="taste_ref",
    )
    within = within_col.slider(
        "Count people scoring at least",
        min_value=0.0,
        max_value=1.0,
        value=0.1,
        step=0.05,
        key="taste_within",
        help="The match score of a card (cosine of taste embeddings).",
    )
    submitted = button_col.form_submit_button("Show my taste", type="primary", width="stretch")

rec = ui.recommender()
if rec is None:
    st.stop()

if submitted:
    if not ref.strip():
        st.warning("Paste a Spotify profile first.")
        st.stop()
    st.session_state[ui.REF_KEY] = ref.strip()
    with st.spinner("Reading your taste…"):
        try:
            st.session_state[PROFILE_KEY] = rec.taste_profile(ref.strip(), within=within)
        except RecommendError as exc:
            st.session_state.pop(PROFILE_KEY, None)
            ui.show_error(exc)
            st.stop()

profile = st.session_state.get(PROFILE_KEY)
if profile is None:
    st.caption("Paste your profile to see your taste.")
    st.stop()

st.subheader(f"Taste of {profile.display_name or profile.user_id}")
for warning in profile.warnings:
    st.caption(f":material/warning: {warning}")
main_col, mainstream_col, variety_col, near_col = st.columns(4)
main_col.metric("Main genre family", profile.family or "–")
mainstream_col.metric(
    "More mainstream than",
    f"{profile.mainstream.percentile:.0f}%" if profile.mainstream.percentile is not None else "–",
    help=f"Mean Spotify popularity of your tracks: {profile.mainstream.value} "
    f"(median of {profile.mainstream.users_compared:,} users: {profile.mainstream.population_median}).",
)
variety_col.metric(
    "More varied than",
    f"{profile.variety.percentile:.0f}%" if profile.variety.percentile is not None else "–",
    help=f"Entropy of your genres: {profile.variety.value} bits "
    f"(median of {profile.variety.users_compared:,} users: {profile.variety.population_median}).",
)
near_col.metric(
    f"People ≥ {profile.within:.2f}",
    f"{profile.people_within:,}" if profile.people_within is not None else "–",
    help=f"Of {profile.people_compared or 0:,} people on Soundmates, how many score at least {profile.within:.2f} with you.",
)
if profile.mainstream.percentile is not None:
    st.caption(
        f"Your tracks are more popular than those of {profile.mainstream.percentile:.0f}% of "
        f"{profile.mainstream.users_compared:,} listeners; your genres more varied than "
        f"{profile.variety.percentile or 0:.0f}%."
    )
genres_col, artists_col = st.columns(2)
with genres_col:
    if profile.top_genres:
        st.plotly_chart(
            taste_charts.shares_figure(
                "Your top genres", [g.name for g in profile.top_genres], [g.share for g in profile.top_genres]
            ),
            key="taste_genres",
            width="stretch",
        )
    else:
        st.caption("No genres known for your artists.")
with artists_col:
    if profile.top_artists:
        st.plotly_chart(
            taste_charts.shares_figure(
                "Your top artists",
                [a.name for a in profile.top_artists],
                [a.share for a in profile.top_artists],
                colour="#7B61FF",
            ),
            key="taste_artists",
            width="stretch",
        )
if any(e.share for e in profile.eras):
    st.plotly_chart(
        taste_charts.eras_figure([e.name for e in profile.eras], [e.share for e in profile.eras]),
        key="taste_eras",
        width="stretch",
    )
st.caption(f"Served by `{profile.embedder or '?'}`.")
