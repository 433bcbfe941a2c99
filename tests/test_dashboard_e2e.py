"""The dashboard's pages against a world built by the real pipeline (local Spotify server →
ingest → features → index): the real Recommender, store, inbox and index, driven by AppTest."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from tests.helpers.dashboard import CONSENT, MAP, PIPELINE, plotly_specs, search, texts

pytestmark = pytest.mark.slow


def profile_links(at) -> list[str]:
    """The match cards' links to Spotify profiles (the page also has a 'Connect with Spotify' link)."""
    return [el.proto.url for el in at.get("link_button") if el.proto.url.startswith("https://open.spotify.com/user/")]


def test_stored_user_gets_match_cards_with_reasons(app_test, dashboard_world):
    me = dashboard_world.stored_ids[0]
    at = search(app_test(timeout=120), f"https://open.spotify.com/user/{me}?si=0123")
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.main.status[0].label.startswith("Found 10 soundmates")
    links = profile_links(at)
    assert len(links) == 10 and f"https://open.spotify.com/user/{me}" not in links
    scores = [float(m.value) for m in at.metric if m.label == "Match score"]
    assert scores == sorted(scores, reverse=True) and len(scores) == 10
    assert any(m.label == "Closer than" for m in at.metric)  # calibrated percentile shown
    page = texts(at)
    assert "Shared genres" in page or "Shared artists" in page  # a generated world shares communities


def test_unknown_user_is_fetched_live_and_not_stored(app_test, dashboard_world):
    from soundmates.config import get_settings
    from soundmates.profiles import ProfileRepository

    newcomer = dashboard_world.unknown_ids[0]
    at = search(app_test(timeout=180), f"spotify:user:{newcomer}")
    assert not at.exception, at.exception
    status = at.main.status[0]
    assert status.label.endswith("(profile fetched live)")
    steps = [m.value for m in status.markdown]
    assert any("from Spotify" in s for s in steps) and any("Searching" in s for s in steps)
    assert len(profile_links(at)) == 10
    assert not ProfileRepository(get_settings().profiles_dir).exists(newcomer)
    # Why this match works for a live profile too (kept in memory, not stored).
    first = unquote(profile_links(at)[0].rsplit("/", 1)[1])  # world ids include '#', 'ç'…
    at.toggle(key=f"why_{first}").set_value(True).run()
    assert not at.exception, at.exception
    titles = [s["layout"]["title"]["text"] for s in plotly_specs(at)]
    assert titles[0] == "Genre overlap (share of each profile)" and titles[1] == "Era overlap (release years)"


def test_malformed_and_unknown_references(app_test, dashboard_world):
    at = search(app_test(timeout=60), "https://open.spotify.com/playlist/37i9dQZF1DXcBWIGoYBM5M")
    assert "doesn't look like a Spotify profile" in at.error[0].value
    assert "spotify:user:ID" in texts(at)
    at = search(at, "spotify:user:nobody-lives-here-0000")
    assert "couldn't find that profile" in at.warning[0].value


def test_development_mode_refusal(app_test, dashboard_world, monkeypatch):
    from soundmates.config import reset_settings
    from soundmates.world.server import SpotifyServer

    with SpotifyServer(dashboard_world.world_dir, port=0, mode="development") as dev:
        monkeypatch.setenv("SOUNDMATES_SPOTIFY_API_URL", dev.api_url)
        monkeypatch.setenv("SOUNDMATES_SPOTIFY_TOKEN_URL", dev.token_url)
        reset_settings()
        at = search(app_test(timeout=120), dashboard_world.unknown_ids[1])
    assert not at.exception, at.exception
    assert "development-mode" in at.error[0].value
    assert "February 2026" in texts(at)


def test_add_then_remove_changes_inbox_and_store(app_test, dashboard_world):
    from soundmates.config import get_settings
    from soundmates.profiles import ProfileRepository
    from soundmates.store import get_store, inbox

    newcomer = dashboard_world.unknown_ids[2]
    at = app_test(CONSENT, timeout=120)
    at.text_input(key="consent_ref").input(f"spotify:user:{newcomer}").run()
    assert "Not in the queue" in at.info[0].value
    at.button(key="consent_add").click().run()
    assert not at.exception, at.exception
    entry = inbox.get(get_store(get_settings()), newcomer)
    assert entry is not None and entry.status == "pending" and entry.source == "dashboard"
    assert "Waiting" in at.info[0].value

    # Remove a stored user: gone from the profile files, the feature store and every result.
    victim = dashboard_world.stored_ids[3]
    repo = ProfileRepository(get_settings().profiles_dir)
    assert repo.exists(victim)
    at.text_input(key="consent_ref").input(victim).run()
    at.button(key="consent_remove").click().run()
    at.button(key="consent_remove_confirm").click().run()
    assert not at.exception, at.exception
    assert "Removed." in at.success[0].value
    assert not repo.exists(victim)
    features = get_store(get_settings()).read("user_features")
    assert victim not in set(features["user_id"])
    at = search(at.switch_page("views/find.py").run(), dashboard_world.stored_ids[4])
    assert f"https://open.spotify.com/user/{victim}" not in profile_links(at)


def test_map_and_pipeline_pages(app_test, dashboard_world):
    me = dashboard_world.stored_ids[0]
    at = search(app_test(timeout=120), me)
    at.switch_page(MAP).run()
    assert not at.exception, at.exception
    (spec,) = plotly_specs(at)
    by_name = {t["name"]: t for t in spec["data"]}
    assert by_name["you"]["customdata"] == [me]
    assert len(by_name["your matches"]["customdata"]) == 10
    total = sum(len(t["customdata"]) for t in spec["data"])
    assert total == len(dashboard_world.stored_ids)

    at.switch_page(PIPELINE).run()
    assert not at.exception, at.exception
    page = texts(at)
    assert f"Users stored {len(dashboard_world.stored_ids)}" in page
    assert f"Index {len(dashboard_world.stored_ids)} users" in page
    assert "Airflow" in page


def test_inbox_status_follows_the_pipeline_to_done_and_failed(app_test, dashboard_world):
    """Add two profiles on the page, let the pipeline's process_inbox run, see done / failed with the reason."""
    from soundmates.config import get_settings
    from soundmates.pipelines import process_inbox

    newcomer, ghost = dashboard_world.unknown_ids[5], "nobody-at-all-0000"
    at = app_test(CONSENT, timeout=120)
    for ref in (f"spotify:user:{newcomer}", f"spotify:user:{ghost}"):
        at.text_input(key="consent_ref").input(ref).run()
        at.button(key="consent_add").click().run()
        assert "Waiting" in at.info[0].value

    summary = process_inbox(settings=get_settings())
    assert summary, summary

    at.text_input(key="consent_ref").input(f"spotify:user:{newcomer}").run()
    assert not at.exception, at.exception
    assert "Done: you are on Soundmates" in at.success[0].value
    at.text_input(key="consent_ref").input(f"spotify:user:{ghost}").run()
    failed = at.error[0].value
    assert failed.startswith("Failed: ") and "no reason given" not in failed

    at.switch_page(PIPELINE).run()
    page = texts(at)
    assert "Done 1" in page and "Failed 1" in page and "Fresh buffer 1" in page
    (failed_table,) = [d.value for d in at.dataframe if "reason" in d.value.columns]  # only failures are listed now
    assert list(failed_table["user"]) == [ghost] and failed_table["reason"].iloc[0]
