"""The dashboard's feedback buttons, taste map and 'Your taste' page, driven by AppTest on a world built by the
real pipeline; the Pipeline page's chart names the evaluation run."""

from __future__ import annotations

import pytest

from tests.helpers.dashboard import MAP, PIPELINE, plotly_specs, search, texts

TASTE = "views/taste.py"


@pytest.mark.slow
def test_feedback_on_a_match_card_is_stored_and_counted(app_test, dashboard_world):
    from soundmates.config import get_settings
    from soundmates.store.feedback import training_pairs

    me = dashboard_world.stored_ids[0]
    at = search(app_test(timeout=120), me)
    assert not at.exception, at.exception
    ups = [b for b in at.button if b.label == "Good match"]
    downs = [b for b in at.button if b.label == "Not for me"]
    assert len(ups) == len(downs) == 10  # a thumbs pair on every card
    first, second = ups[0].key.removeprefix("fb_up_"), downs[1].key.removeprefix("fb_down_")
    ups[0].click()
    at.run()
    next(b for b in at.button if b.key == f"fb_down_{second}").click()
    at.run()
    assert not at.exception, at.exception
    assert "you rated 2 matches (1 up)" in texts(at)
    assert training_pairs(get_settings()) == ([(me, first)], [(me, second)])


@pytest.mark.slow
def test_a_live_profile_gets_no_buttons_but_is_told_how(app_test, dashboard_world):
    at = search(app_test(timeout=180), dashboard_world.unknown_ids[0])
    assert not at.exception, at.exception
    assert not [b for b in at.button if b.label == "Good match"]
    assert "Add yourself on **Your data** to tell us whether a match fits." in texts(at)


@pytest.mark.slow
def test_map_page_shows_the_stored_umap_layout_by_family(app_test, dashboard_world):
    from soundmates.config import get_settings
    from soundmates.pipelines.taste_map import build_map

    built = build_map(get_settings(), progress=False)
    me = dashboard_world.stored_ids[0]
    at = search(app_test(timeout=120), me)
    at.switch_page(MAP).run()
    assert not at.exception, at.exception
    spec = plotly_specs(at)[0]
    names = [t["name"] for t in spec["data"]]
    assert "you" in names and "your matches" in names
    assert len(set(names) - {"you", "your matches"}) >= 2  # coloured by several genre families
    assert spec["layout"]["annotations"]  # region labels
    page = texts(at)
    assert "UMAP layout" in page and f"{built['neighbour_preservation@10']:.0%}" in page and "PCA" in page


@pytest.mark.slow
def test_taste_page_shows_genres_eras_and_comparisons(app_test, dashboard_world):
    from soundmates.config import get_settings
    from soundmates.pipelines.taste_map import build_map

    build_map(get_settings(), progress=False)
    at = app_test(TASTE, timeout=120)
    at.text_input(key="taste_ref").input(dashboard_world.stored_ids[0])
    next(b for b in at.button if b.label == "Show my taste").click()
    at.run()
    assert not at.exception, at.exception
    labels = {m.label: m.value for m in at.metric}
    assert labels["Main genre family"] != "–"
    assert labels["More mainstream than"].endswith("%") and labels["More varied than"].endswith("%")
    assert int(labels["People ≥ 0.10"].replace(",", "")) >= 0
    titles = [s["layout"]["title"]["text"] for s in plotly_specs(at)]
    assert titles[:2] == ["Your top genres", "Your top artists"] and "Your eras" in titles[2]


def test_taste_page_bad_reference_is_one_message(app_test, dashboard_world):
    at = app_test(TASTE, timeout=60)
    at.text_input(key="taste_ref").input("https://open.spotify.com/playlist/37i9dQZF1DXcBWIGoYBM5M")
    next(b for b in at.button if b.label == "Show my taste").click()
    at.run()
    assert not at.exception and "doesn't look like a Spotify profile" in at.error[0].value


def test_pipeline_chart_names_the_run(app_test, contract_recommender, monkeypatch):
    from tests.fixtures import dashboard as fixture

    evaluation = fixture._evaluation().model_copy(update={"run": "two_tower-20261202T0100", "dataset": "world"})
    monkeypatch.setattr(fixture, "_evaluation", lambda: evaluation)
    at = app_test(PIPELINE)
    assert not at.exception, at.exception
    chart = next(s for s in plotly_specs(at) if "Served method" in s["layout"]["title"]["text"])
    assert chart["layout"]["title"]["text"].endswith("run two_tower-20261202T0100")
    assert "run: model `two_tower-20261202T0100`" in texts(at) and "dataset world" in texts(at)
