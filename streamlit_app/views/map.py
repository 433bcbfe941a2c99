"""Taste map: every stored user in two dimensions, you and your matches highlighted."""

from __future__ import annotations

import streamlit as st

from soundmates.recommend.models import RecommendError
from streamlit_app import charts, taste_charts, ui

st.title("Taste map")
st.markdown("Everyone on Soundmates, placed by taste: people close together listen alike.")

rec = ui.recommender()
if rec is None:
    st.stop()


result = st.session_state.get(ui.RESULT_KEY)
you = result.user_id if result is not None else None
matches = [m.user_id for m in result.matches] if result is not None else []

try:
    data = rec.user_map(highlight=[u for u in [you, *matches] if u])
except RecommendError as exc:
    ui.show_error(exc)
    st.stop()

if not data.user_ids:
    st.info(f"No users stored yet. {ui.BUILD_HINT}")
    st.stop()

if data.families:
    figure = taste_charts.taste_map_figure(
        data.user_ids, data.display_names, data.x, data.y, data.families, you=you, matches=matches
    )
else:  # no layout stored yet: the on-the-fly PCA map, grey
    figure = charts.user_map_figure(data.user_ids, data.display_names, data.x, data.y, you=you, matches=matches)
st.plotly_chart(figure, key="user_map", width="stretch")
notes = [f"{data.total_users or len(data.user_ids):,} users"]
if data.total_users > len(data.user_ids):
    notes.append(f"showing an even sample of {len(data.user_ids):,}")
if data.method == "umap":
    kept = data.neighbour_preservation
    pca = data.pca_neighbour_preservation
    notes.append(
        "UMAP layout"
        + (f": {kept:.0%} of each user's 10 nearest stay among their 10 nearest on the map" if kept is not None else "")
        + (f" (PCA: {pca:.0%})" if pca is not None else "")
    )
elif data.explained_variance:
    notes.append("PCA, variance explained " + " + ".join(f"{v:.0%}" for v in data.explained_variance[:2]))
    notes.append("run `soundmates map build` for the neighbour-preserving map")
if data.index_version:
    notes.append(f"index `{data.index_version}`")
if data.model_version:
    notes.append(f"model `{data.model_version}`")
st.caption(" · ".join(notes))
if result is None:
    st.caption("Search for your profile on **Find your soundmates** to see yourself and your matches here.")
elif you not in set(data.user_ids):
    st.caption("You are not on the map because your profile is not stored; add yourself on **Your data**.")
