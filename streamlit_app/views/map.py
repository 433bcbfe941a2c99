"""Taste map: every stored user in two dimensions, you and your matches highlighted."""

from __future__ import annotations

import streamlit as st

from soundmates.recommend.models import RecommendError
from streamlit_app import charts, ui

st.title("Taste map")
st.markdown("Everyone on Soundmates, placed by taste: people close together listen alike.")

rec = ui.recommender()
if rec is None:
    st.stop()


try:
    data = rec.user_map()
except RecommendError as exc:
    ui.show_error(exc)
    st.stop()

if not data.user_ids:
    st.info(f"No users stored yet. {ui.BUILD_HINT}")
    st.stop()

result = st.session_state.get(ui.RESULT_KEY)
you = result.user_id if result is not None else None
matches = [m.user_id for m in result.matches] if result is not None else []
st.plotly_chart(
    charts.user_map_figure(data.user_ids, data.display_names, data.x, data.y, you=you, matches=matches),
    key="user_map",
    width="stretch",
)
notes = [f"{len(data.user_ids):,} users"]
if data.explained_variance:
    notes.append("PCA, variance explained " + " + ".join(f"{v:.0%}" for v in data.explained_variance[:2]))
if data.model_version:
    notes.append(f"model `{data.model_version}`")
st.caption(" · ".join(notes))
if result is None:
    st.caption("Search for your profile on **Find your soundmates** to see yourself and your matches here.")
elif you not in set(data.user_ids):
    st.caption("You are not on the map because your profile is not stored; add yourself on **Your data**.")
