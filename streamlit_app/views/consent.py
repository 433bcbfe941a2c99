"""Your data: add yourself to Soundmates (the pipeline's inbox) or remove yourself.

Nobody is stored because they searched: only the "Add me" button queues a profile.
"""

from __future__ import annotations

import streamlit as st

from soundmates.recommend.models import ACCEPTED_REFERENCE_FORMS, InboxEntry, RecommendError
from streamlit_app import ui

# How each inbox status reads to the person who asked.
STATUS_TEXT = {
    "pending": (":material/hourglass_top:", "Waiting: your profile is queued; the pipeline adds it on its next run."),
    "processing": (":material/settings:", "Being processed: the pipeline is fetching and featurising your profile now."),
    "done": (":material/check_circle:", "Done: you are on Soundmates, and others can find you."),
    "failed": (":material/error:", "Failed"),
}
CONFIRM_KEY = "consent_confirm_remove"
FLASH_KEY = "consent_flash"

st.title("Your data")
st.markdown(
    "Searching never stores you. **Add me** puts your public profile in the queue of the pipeline, "
    "so that others can find you as a match; **Remove me** takes you out of the index at once "
    "and deletes what is stored about you."
)

if "consent_ref" not in st.session_state:
    st.session_state["consent_ref"] = st.session_state.get(ui.REF_KEY, "")
ref = st.text_input(
    "Your Spotify profile",
    placeholder="https://open.spotify.com/user/…",
    help="Accepted: " + "; ".join(ACCEPTED_REFERENCE_FORMS),
    key="consent_ref",
).strip()

rec = ui.recommender()
if rec is None:
    st.stop()


def show_entry(entry: InboxEntry | None) -> None:
    if entry is None:
        st.info("Not in the queue: this profile has not asked to be added (or was removed).", icon=":material/front_hand:")
        return
    icon, text = STATUS_TEXT.get(entry.status, (":material/help:", f"Status: {entry.status}"))
    if entry.status == "failed":
        text = f"Failed: {entry.reason or 'no reason given'}. You can try again."
        st.error(text, icon=icon)
    elif entry.status == "done":
        st.success(text, icon=icon)
    else:
        st.info(text, icon=icon)
    when = entry.updated_at or entry.requested_at
    st.caption(f"Request for `{entry.user_id}`" + (f", last update {ui.when_text(when)}" if when else ""))


flash = st.session_state.pop(FLASH_KEY, None)
if flash:
    kind, message = flash
    getattr(st, kind)(message)

if not ref:
    st.stop()

try:
    entry = rec.inbox_status(ref)
except RecommendError as exc:
    ui.show_error(exc)
    st.stop()

st.subheader("Status")
show_entry(entry)

add_col, remove_col, _ = st.columns([1, 1, 2])
with add_col:
    if st.button(
        "Add me to Soundmates",
        type="primary",
        key="consent_add",
        disabled=entry is not None and entry.status in ("pending", "processing"),
    ):
        try:
            added = rec.add(ref)
        except RecommendError as exc:
            ui.show_error(exc)
        else:
            st.session_state[FLASH_KEY] = ("success", f"Thanks! `{added.user_id}` is in the queue ({added.status}).")
            st.rerun()
with remove_col:
    if st.button("Remove me", key="consent_remove"):
        st.session_state[CONFIRM_KEY] = ref

if st.session_state.get(CONFIRM_KEY) == ref:
    st.warning(
        "This deletes your stored profile and features and takes you out of everyone's matches.", icon=":material/warning:"
    )
    yes_col, no_col, _ = st.columns([1, 1, 2])
    if yes_col.button("Yes, delete my data", type="primary", key="consent_remove_confirm"):
        st.session_state.pop(CONFIRM_KEY, None)
        try:
            removed = rec.remove(ref)
        except RecommendError as exc:
            ui.show_error(exc)
        else:
            # Matches from an earlier search may hold this user; drop them so no page shows stale data.
            st.session_state.pop(ui.RESULT_KEY, None)
            st.session_state.pop(ui.DETAILS_KEY, None)
            st.session_state[FLASH_KEY] = ("success", "Removed. " + ui.describe_removal(removed))
            st.rerun()
    if no_col.button("Cancel", key="consent_remove_cancel"):
        st.session_state.pop(CONFIRM_KEY, None)
        st.rerun()
