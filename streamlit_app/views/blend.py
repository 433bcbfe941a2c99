"""Blend: a shared playlist for 2 to 10 people, with how well everyone matches and why each track is there."""

from __future__ import annotations

import streamlit as st

from soundmates.recommend.blend_models import Blend
from streamlit_app import blend_view, ui

st.title("Blend")
st.markdown(
    "A playlist for 2 to 10 of you: tracks several of you have, then tracks from one library the others are "
    "likely to like, balanced so everyone contributes. Everyone after you must have added themselves to Soundmates."
)

rec = ui.recommender()
if rec is None:
    st.stop()

blend_view.render_members(rec)
size_col, button_col = st.columns([2, 3], vertical_alignment="bottom")
with size_col:
    size = blend_view.size_input()
if button_col.button("Make the blend", type="primary", key="blend_make"):
    blend_view.make(rec, size)

made = st.session_state.get(blend_view.RESULT_KEY)
if isinstance(made, Blend):
    blend_view.render_result(made)
elif made is not None:
    ui.show_error(made)
