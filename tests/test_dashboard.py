"""AppTest tests of every dashboard page, driven through the recommend contract.

``contract_recommender`` (tests/fixtures/dashboard.py) stands in for the Recommender so each
page and each error branch runs in about a second; tests/test_dashboard_e2e.py runs the same
pages against a world built by the real pipeline.
"""

from __future__ import annotations

import pytest

from soundmates.recommend import ACCEPTED_REFERENCE_FORMS, NothingBuiltYet
from tests.helpers.dashboard import CONSENT, MAP, PIPELINE, plotly_specs, search, texts


def test_valid_profile_shows_match_cards(app_test, contract_recommender):
    at = search(app_test(), "https://open.spotify.com/user/user03?si=abc")
    assert not at.exception
    page = texts(at)
    assert "Soundmates of Listener 03" in page
    # Ten cards, the searcher is not among them, best first, with score and calibrated percentile.
    assert page.count("#### ") == 10
    assert "#### 1. Listener 00" in page and "Listener 03" not in page.split("Soundmates of Listener 03", 1)[1]
    assert "Match score 0.90" in page and "Closer than 99%" in page
    assert "indie folk" in page and "Big Thief" in page and "Tracks you both have" in page
    links = [el.proto.url for el in at.get("link_button") if "open.spotify.com/user/" in el.proto.url]
    assert "https://open.spotify.com/user/user00" in links and len(links) == 10
    assert at.main.status[0].label == "Found 10 soundmates"
    assert contract_recommender.calls[0] == ("recommend", "https://open.spotify.com/user/user03?si=abc", 10)


def test_unknown_profile_shows_live_status_and_is_not_stored(app_test, contract_recommender):
    at = search(app_test(), "spotify:user:newcomer")
    status = at.main.status[0]
    assert status.label == "Found 10 soundmates (profile fetched live)"
    # The progress callback's steps were written into the status box as they happened.
    steps = [m.value for m in status.markdown]
    assert steps == ["Fetching the profile from Spotify", "Computing taste features"]
    assert "did not keep it" in texts(at)
    assert "newcomer" not in contract_recommender.inbox  # searching is not consent
    assert [c[0] for c in contract_recommender.calls] == ["recommend"]


def test_malformed_input_shows_the_accepted_forms(app_test, contract_recommender):
    at = search(app_test(), "https://example.com/not/spotify")
    assert "doesn't look like a Spotify profile" in at.error[0].value
    page = texts(at)
    for form in ACCEPTED_REFERENCE_FORMS:
        assert form in page
    assert "Soundmates of" not in page


def test_empty_input_asks_for_a_profile_without_calling_the_api(app_test, contract_recommender):
    at = search(app_test(), "   ")
    assert "Paste a Spotify profile first" in at.warning[0].value
    assert contract_recommender.calls == []


def test_unknown_user_is_a_clear_warning(app_test, contract_recommender):
    at = search(app_test(), "nobody-here")
    assert "couldn't find that profile" in at.warning[0].value
    assert "nobody-here" in at.warning[0].value
    assert not at.error


def test_development_mode_refusal_explains_what_to_do(app_test, contract_recommender):
    at = search(app_test(), "spotify:user:devmode")
    assert "development-mode" in at.error[0].value
    page = texts(at)
    assert "February 2026" in page and "Download your data" in page and "allow-list" in page


def test_an_unexpected_failure_is_a_message_not_a_crash(app_test, contract_recommender):
    at = search(app_test(), "boom")
    assert not at.exception
    assert "Something went wrong: RuntimeError: index file vanished" in at.error[0].value
    at = search(at, "user01")  # the next search works as usual
    assert not at.error and "Soundmates of Listener 01" in texts(at)


def test_nothing_built_yet_says_how_to_build_on_every_page(app_test, monkeypatch):
    import soundmates.recommend as recommend

    def not_built(settings=None):
        raise NothingBuiltYet("index")

    monkeypatch.setitem(vars(recommend), "Recommender", not_built)
    for page in (None, MAP, CONSENT, PIPELINE):
        at = app_test(page)
        assert not at.exception, page
        info = "\n".join(i.value for i in at.info)
        assert "no index has been built yet" in info and "make run" in info and "soundmates index build" in info, page


def test_empty_data_dir_with_the_real_recommender(app_test):
    """Nothing ingested or built: each page says so and how to build, none crashes."""
    at = search(app_test(), "spotify:user:someone")
    assert not at.exception, at.exception
    info = "\n".join(i.value for i in at.info)
    assert "no index has been built yet" in info and "soundmates index build" in info and "make run" in info
    at.switch_page(MAP).run()
    assert not at.exception and "no index has been built yet" in "\n".join(i.value for i in at.info)
    at.switch_page(PIPELINE).run()
    assert not at.exception, at.exception
    page = texts(at)
    assert "Users stored 0" in page and "No index built yet" in page


def test_why_this_match_draws_three_charts_and_fetches_once(app_test, contract_recommender):
    at = search(app_test(), "user03")
    assert len(at.get("plotly_chart")) == 0  # details are fetched only when asked for
    at.toggle(key="why_user01").set_value(True).run()
    specs = plotly_specs(at)
    titles = [s["layout"]["title"]["text"] for s in specs]
    assert titles == [
        "Genre overlap (share of each profile)",
        "Era overlap (release years)",
        "Artists of Listener 01 closest to your taste",
    ]
    genre_traces = {t["name"]: t for t in specs[0]["data"]}
    assert set(genre_traces) == {"You", "Listener 01"}
    at.run()  # a rerun reuses the detail kept in session state
    assert contract_recommender.calls.count(("match_detail", "user03", "user01")) == 1


def test_map_highlights_you_and_your_matches(app_test, contract_recommender):
    at = search(app_test(), "user03")
    at.switch_page(MAP).run()
    assert not at.exception
    (spec,) = plotly_specs(at)
    by_name = {t["name"]: t for t in spec["data"]}
    assert by_name["you"]["customdata"] == ["user03"]
    assert sorted(by_name["your matches"]["customdata"]) == sorted(u for u in contract_recommender.users if u != "user03")[:10]
    assert "12 users" in texts(at)


def test_map_without_a_search_shows_everyone(app_test, contract_recommender):
    at = app_test(MAP)
    (spec,) = plotly_specs(at)
    assert [t["name"] for t in spec["data"]] == ["everyone"]
    assert "Search for your profile" in texts(at)


def test_add_me_queues_the_profile_and_shows_waiting(app_test, contract_recommender):
    at = search(app_test(), "spotify:user:newcomer")
    at.switch_page(CONSENT).run()
    assert at.text_input(key="consent_ref").value == "spotify:user:newcomer"  # carried over from the search
    assert "Not in the queue" in at.info[0].value
    at.button(key="consent_add").click().run()
    assert contract_recommender.inbox["newcomer"].status == "pending"
    assert "in the queue" in at.success[0].value
    assert "Waiting" in at.info[0].value
    assert at.button(key="consent_add").disabled  # no double requests while waiting


def test_failed_inbox_request_shows_its_reason(app_test, contract_recommender):
    from soundmates.recommend import InboxEntry

    contract_recommender.inbox["user05"] = InboxEntry(user_id="user05", status="failed", reason="Spotify answered 403")
    at = app_test(CONSENT)
    at.text_input(key="consent_ref").input("user05").run()
    assert "Failed: Spotify answered 403" in at.error[0].value


def test_remove_me_needs_confirmation_then_deletes(app_test, contract_recommender):
    at = search(app_test(), "user04")
    at.switch_page(CONSENT).run()
    at.button(key="consent_remove").click().run()
    assert "user04" in contract_recommender.users  # nothing deleted before the confirmation
    at.button(key="consent_remove_cancel").click().run()
    assert "user04" in contract_recommender.users
    at.button(key="consent_remove").click().run()
    at.button(key="consent_remove_confirm").click().run()
    assert "user04" not in contract_recommender.users
    assert ("remove", "user04") in contract_recommender.calls
    assert "Removed. Deleted: profile deleted, tombstoned." in at.success[0].value
    # The earlier search result held this user; it must not linger on the map page.
    at.switch_page(MAP).run()
    (spec,) = plotly_specs(at)
    assert "you" not in {t["name"] for t in spec["data"]}


def test_a_removed_profile_is_not_added_back_from_the_page(app_test, contract_recommender):
    at = app_test(CONSENT)
    at.text_input(key="consent_ref").input("spotify:user:newcomer").run()
    at.button(key="consent_remove").click().run()
    at.button(key="consent_remove_confirm").click().run()
    at.button(key="consent_add").click().run()
    assert not at.exception
    refusal = "\n".join(i.value for i in at.info)
    assert "was removed from Soundmates" in refusal and "Connect with Spotify" in refusal
    assert "newcomer" not in contract_recommender.inbox


def test_consent_page_rejects_malformed_reference(app_test, contract_recommender):
    at = app_test(CONSENT)
    at.text_input(key="consent_ref").input("not a profile!").run()
    assert "doesn't look like a Spotify profile" in at.error[0].value
    assert not [b for b in at.button if b.key == "consent_add"]  # nothing to add until the reference is valid


def test_pipeline_page_shows_status_and_airflow_note(app_test, contract_recommender, monkeypatch, unused_tcp_port):
    monkeypatch.setenv("SOUNDMATES_AIRFLOW_URL", f"http://127.0.0.1:{unused_tcp_port}")
    from soundmates.config import reset_settings

    reset_settings()
    contract_recommender.add("user01")
    at = app_test(PIPELINE)
    assert not at.exception
    page = texts(at)
    assert "Users stored 12" in page and "Model raw-features" in page and "Waiting 1" in page
    # The served method against the baselines on the taste metrics: a chart and a table, not a JSON blob.
    assert "Matches are served by **als** (version `als-v3`)" in page
    assert not at.json
    (spec,) = plotly_specs(at)
    bars = {t["name"]: t for t in spec["data"]}
    assert list(bars)[0] == "als (served)" and set(bars) == {"als (served)", "two_tower", "genre_tfidf", "random"}
    assert bars["als (served)"]["x"] == ["taste_ndcg@10", "taste_precision@10", "recall@10"]
    assert bars["als (served)"]["y"] == [0.84, 0.241, 0.789]
    assert bars["als (served)"]["error_y"]["array"][0] == pytest.approx(0.02)
    table = at.dataframe[0].value
    assert table["method"].iloc[0] == "als (served)" and table["taste_ndcg@10"].iloc[0] == "0.840 [0.820, 0.860]"
    assert "374 held-out query users" in page and "1,874 candidates" in page
    assert "Failed 0" in page
    assert "1.0 h ago" in page
    note = "\n".join(i.value for i in at.info)
    assert "No DAG runs to show: Airflow is not reachable" in note and f"127.0.0.1:{unused_tcp_port}" in note


@pytest.fixture
def unused_tcp_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def airflow_on_loopback(monkeypatch, airflow_double):
    """The stand-in Airflow (login and DAG runs, like the simple auth manager) as the dashboard's Airflow."""
    from soundmates.config import reset_settings

    monkeypatch.setenv("SOUNDMATES_AIRFLOW_URL", airflow_double.url)
    monkeypatch.setenv("SOUNDMATES_AIRFLOW_USER", "admin")
    monkeypatch.setenv("SOUNDMATES_AIRFLOW_PASSWORD", airflow_double.password)
    reset_settings()
    yield airflow_double


def test_pipeline_page_lists_recent_dag_runs(app_test, contract_recommender, airflow_on_loopback):
    at = app_test(PIPELINE)
    assert not at.exception
    (table,) = at.dataframe[1:]  # the first table holds the evaluation
    frame = table.value
    assert list(frame["DAG"]) == ["soundmates_rebuild", "soundmates_new_users"]
    assert list(frame["state"]) == ["success", "running"]
    assert frame["duration (s)"].iloc[0] == 150.0
    assert all("No DAG runs" not in i.value for i in at.info)
