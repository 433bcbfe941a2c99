"""The dashboard's Blend page (streamlit_app/views/blend.py), driven by AppTest on a world built by the real
pipeline: a blend started from a match card, its reasons, shares, matrix and downloads; bad input as one
message; Save to Spotify into a member's connected account on the local server, and refused for anyone else's."""

from __future__ import annotations

import pytest

from tests.helpers.dashboard import plotly_specs, search, texts
from tests.helpers.oauth import connect_account, playlists_of

BLEND = "views/blend.py"
pytestmark = pytest.mark.slow


def _make(at, size: int | None = None):
    if size is not None:
        at.number_input(key="blend_size").set_value(size)
    at.button(key="blend_make").click()
    return at.run()


def _tracks(at) -> list[dict]:
    return at.dataframe[0].value.to_dict("records") if len(at.dataframe) else []


def _blend_page(app_test, members: list[str], connected: str | None = None):
    from soundmates.spotify.connect import ConnectedAccount
    from streamlit_app.blend_view import MEMBERS_KEY
    from streamlit_app.connect import CONNECTED_KEY

    at = app_test(timeout=180)
    at.session_state[MEMBERS_KEY] = list(members)
    if connected is not None:
        at.session_state[CONNECTED_KEY] = {"account": ConnectedAccount(user_id=connected), "profile": None, "summary": None}
    return at.switch_page(BLEND).run()


def test_a_blend_from_a_match_card_has_reasons_shares_matrix_and_downloads(app_test, dashboard_world):
    me = dashboard_world.stored_ids[0]
    at = search(app_test(timeout=180), me)
    assert not at.exception, at.exception
    buttons = [b for b in at.button if b.label == "Blend with this person"]
    assert len(buttons) == 10  # one on every card
    other = buttons[0].key.removeprefix("blend_with_")
    buttons[0].click()
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Blend" and f"1. `{me}` (you)" in texts(at) and f"2. `{other}`" in texts(at)
    at = _make(at, 24)
    assert not at.exception, at.exception
    tracks = _tracks(at)
    assert 20 <= len(tracks) <= 24, texts(at)
    assert all(t["Why it's here"] and t["From"] for t in tracks)
    shares = {m.label: float(m.value.rstrip("%")) / 100 for m in at.metric}
    assert len(shares) == 2 and all(s >= 0.3 for s in shares.values()), shares
    spec = plotly_specs(at)[0]
    assert spec["data"][0]["type"] == "heatmap" and len(spec["data"][0]["z"]) == 2
    assert [d.label for d in at.download_button] == ["Download JSON", "Download CSV", "Download M3U"]
    assert "Connect with Spotify on **Find your soundmates**" in texts(at)


def test_bad_input_is_one_message(app_test, dashboard_world):
    me, *others = dashboard_world.stored_ids
    at = _make(_blend_page(app_test, [me]))
    assert not at.exception and "a blend takes 2 to 10 people, got 1" in texts(at)
    assert not _tracks(at)

    stranger = dashboard_world.unknown_ids[0]
    at.text_input(key="blend_add_ref").input(stranger)
    next(b for b in at.button if b.label == "Add to the blend").click()
    at = _make(at.run())
    assert not at.exception, at.exception
    assert f"'{stranger}' has not added themselves to Soundmates" in texts(at) and not _tracks(at)

    at.text_input(key="blend_add_ref").input("spotify:track:nope")
    next(b for b in at.button if b.label == "Add to the blend").click()
    at.run()
    assert not at.exception and "not a Spotify profile reference" in texts(at)

    at = _blend_page(app_test, [me, *others[:9]])
    at.text_input(key="blend_add_ref").input(others[9] if len(others) > 9 else stranger)
    next(b for b in at.button if b.label == "Add to the blend").click()
    at.run()
    assert "A blend takes at most 10 people" in texts(at)


def test_save_to_spotify_goes_to_a_members_account_only(app_test, dashboard_world):
    a, b, c = dashboard_world.stored_ids[:3]
    connect_account(a)
    # The world is shared with the CLI's blend tests, which may have saved into a's account already.
    before = {p["id"] for p in playlists_of(a)}
    at = _make(_blend_page(app_test, [a, b], connected=a), 30)
    assert not at.exception, at.exception
    at.button(key="blend_save").click()
    at.run()
    assert not at.exception, at.exception
    assert [s.value for s in at.success][-1].startswith("Saved ")
    saved = [p for p in playlists_of(a) if p["id"] not in before]
    assert len(saved) == 1 and saved[0]["public"] is False
    assert len(saved[0]["ids"]) == len(_tracks(at)) >= 20

    # c connected here too, but is not in the blend of a and b: nothing is written into c's library.
    connect_account(c)
    before_c = playlists_of(c)
    at = _make(_blend_page(app_test, [a, b], connected=c), 30)
    at.button(key="blend_save").click()
    at.run()
    assert not at.exception and "not a member of this blend" in [e.value for e in at.error][-1]
    assert playlists_of(c) == before_c
