"""The dashboard's Connect with Spotify control (streamlit_app/connect.py), driven by AppTest in-process.

A real login through the dashboard is in tests/test_connect_browser.py; these check the page's branches fast.
"""

from __future__ import annotations

import pytest

from tests.fixtures.dashboard import APP_PATH


@pytest.fixture
def app(contract_recommender, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from soundmates.config import reset_settings

    monkeypatch.setenv("SPOTIPY_CLIENT_ID", "dash-test")
    monkeypatch.setenv("SOUNDMATES_SPOTIFY_TOKEN_URL", "http://127.0.0.1:9/api/token")
    monkeypatch.setenv("SOUNDMATES_DASHBOARD_URL", "http://127.0.0.1:8501")
    reset_settings()

    def make(**query):
        at = AppTest.from_file(str(APP_PATH), default_timeout=30)
        for k, v in query.items():
            at.query_params[k] = v
        return at.run()

    return make


def _text(at) -> str:
    return "\n".join(str(e.value) for e in list(at.markdown) + list(at.caption) + list(at.error))


def test_the_find_page_offers_connect_with_an_explanation_and_a_pending_state(app, settings):
    at = app()
    assert not at.exception
    assert "Or connect with Spotify" in _text(at)
    pending = list((settings.data_dir / "oauth" / "pending").glob("*.json"))
    assert len(pending) == 1  # one pending authorization for this session, its verifier on disk
    at.run()  # a rerun reuses it instead of piling up new ones
    assert len(list((settings.data_dir / "oauth" / "pending").glob("*.json"))) == 1


def test_a_forged_redirect_is_refused_and_the_code_dropped(app, settings):
    at = app(code="stolen-code", state="F" * 43)
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("Could not connect with Spotify" in e and "state mismatch" in e for e in errors), errors
    assert "code" not in at.query_params  # the single-use code does not survive in the address bar
    assert not (settings.data_dir / "oauth" / "tokens").exists()


def test_a_cancelled_login_says_so(app, settings):
    from soundmates.spotify.connect import PendingStore

    pending = PendingStore(settings.data_dir / "oauth" / "pending").create("http://127.0.0.1:8501/", "v" * 50)
    at = app(error="access_denied", state=pending.state)
    assert any("you cancelled the login" in e.value for e in at.error)


def test_without_a_client_id_the_control_explains_why(app, monkeypatch):
    from soundmates.config import reset_settings

    monkeypatch.delenv("SPOTIPY_CLIENT_ID")
    reset_settings()
    at = app()
    assert not at.exception
    assert "SPOTIPY_CLIENT_ID" in _text(at)
