"""Serving the feedback-tuned embedder: trained on real votes in the data dir, registered, promoted, recommended with.

The world is the model tests' synthetic ``user_features`` (60 users); the served base is whatever the gate
chooses. Simulated voters rate their served top 10 by a hidden taste that weighs two directions of the
served space 15x more than the rest (what a query-side linear map can learn from other voters), or by the
served ranking itself (votes that cannot help: the base already ranks them all right).
"""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.helpers.model_data import TRAIN_ARGS, cli_json, full_schema_features

_json = cli_json


def _cli(*args: str) -> dict:
    from soundmates.cli.main import app

    return _json(CliRunner().invoke(app, list(args)))


def _full(settings):
    from soundmates.store import get_store

    full = get_store(settings).read("user_features")
    return full[full["view"] == "full"].drop_duplicates("user_id").sort_values("user_id").reset_index(drop=True)


def _served_order(emb, full) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(ids, query vectors, candidate vectors, each user's others by served score, best first)."""
    q, c = np.asarray(emb.embed_query(full)), np.asarray(emb.embed(full))
    s = q @ c.T
    np.fill_diagonal(s, -np.inf)
    return full["user_id"].astype(str).tolist(), q, c, np.argsort(-s, axis=1, kind="stable")[:, :-1]


def _vote_by_hidden_taste(settings) -> int:
    """Every user rates their served top 10: up when in their hidden top quarter, else down."""
    from soundmates.model.embedder import get_embedder
    from soundmates.store.feedback import DOWN, UP, feedback_store

    ids, q, c, order = _served_order(get_embedder(settings), _full(settings))
    d = q.shape[1]
    basis = np.linalg.qr(np.random.default_rng(0).normal(size=(d, d)))[0]
    w = np.full(d, 0.2)
    w[:2] = 3.0
    hidden = ((q @ basis) * w) @ (c @ basis).T
    np.fill_diagonal(hidden, -np.inf)
    store = feedback_store(settings)
    for u in range(len(ids)):
        liked = set(np.argsort(-hidden[u])[: len(ids) // 4])
        for j in order[u, :10]:
            store.record(ids[u], ids[j], UP if j in liked else DOWN)
    return len(ids) * 10


def _vote_with_the_ranking_of(settings, emb) -> None:
    """Every user: up on their #1 and #2 by ``emb``, down on #10 and on the last (``emb`` ranks all of it right)."""
    from soundmates.store.feedback import DOWN, UP, feedback_store

    ids, _, _, order = _served_order(emb, _full(settings))
    store = feedback_store(settings)
    for u in range(len(ids)):
        for j, vote in ((order[u, 0], UP), (order[u, 1], UP), (order[u, 9], DOWN), (order[u, -1], DOWN)):
            store.record(ids[u], ids[j], vote)


@pytest.fixture
def served_base(settings):
    """60 synthetic users stored, trained, the gate's choice promoted, the index built with it."""
    from soundmates.store import get_store

    get_store(settings).upsert("user_features", full_schema_features(60))
    _cli("train", "--json", *TRAIN_ARGS)
    promoted = _cli("promote", "--json")
    built = _cli("index", "build", "--json")
    assert built["model_version"] == promoted["version"]
    return promoted, built


def test_votes_that_help_are_served_through_the_base_index(settings, served_base, app_test):
    from soundmates.model.embedder import get_embedder
    from soundmates.model.feedback_tuning import FeedbackTuned, tune_on_feedback
    from soundmates.model.registry import ModelRegistry
    from soundmates.pipelines.feedback_eval import full_rows, stored_votes

    base_promoted, built = served_base
    base = get_embedder(settings)
    votes = _vote_by_hidden_taste(settings)

    trained = _cli("train", "--json", *TRAIN_ARGS)
    fb = trained["feedback"]
    assert fb["used"] is True and "beats" in fb["reason"] and fb["tuned_auc"] > fb["base_auc"], fb
    assert fb["tuned_served"] is True and "note" not in fb
    assert fb["served_name"] == f"{base.name}+feedback" and fb["served_version"].startswith("fb-")
    assert (fb["votes"], fb["served_fit_votes"]) == (votes, votes)  # judged on held-out voters, served fit on all
    reg = ModelRegistry(settings.models_dir)
    meta = reg.meta(fb["served_version"])
    assert (meta["kind"], meta["method"], meta["base_version"]) == ("feedback_tuned", fb["served_name"], base.version)
    assert reg.current_version() == base.version  # registered unpromoted, like every candidate

    pr = _cli("promote", "--json")
    assert (pr["served"], pr["version"], pr["tuned_served"]) == (fb["served_name"], fb["served_version"], True)
    assert "query side tuned on" in pr["reason"]
    tuned = get_embedder(settings)
    assert isinstance(tuned, FeedbackTuned) and (tuned.name, tuned.version) == (fb["served_name"], fb["served_version"])
    assert tuned.candidate_version == base.version
    full = _full(settings)
    assert np.array_equal(tuned.embed(full), base.embed(full))  # the candidate side is the base's
    bq, tq = np.asarray(base.embed_query(full)), np.asarray(tuned.embed_query(full))
    assert np.allclose(np.linalg.norm(tq, axis=1), 1.0, atol=1e-5)
    assert np.abs(bq - tq).max() > 0.05  # the query side really moved
    # the map served is the one fitted on every stored vote (the same deterministic fit, redone here)
    rows = full_rows(full)
    again = tune_on_feedback(
        base,
        rows,
        [(u, o) for u, o, s in stored_votes(settings) if s > 0],
        [(u, o) for u, o, s in stored_votes(settings) if s < 0],
    )
    assert np.allclose(tuned.weight, again.weight, atol=1e-5)

    # served on the index built with the base: no rebuild, no mismatch, scores are tuned query · base candidate
    me = full["user_id"].iloc[0]
    rec = _cli("recommend", me, "--k", "5", "--json")
    assert rec["embedder"] == {"name": fb["served_name"], "version": fb["served_version"]}
    assert rec["index_version"] == built["version"]
    assert not [w for w in rec["warnings"] if "index build" in w], rec["warnings"]
    ids = full["user_id"].astype(str).tolist()
    cand = np.asarray(base.embed(full))
    for m in rec["matches"]:
        assert m["score"] == pytest.approx(float(tq[0] @ cand[ids.index(m["user_id"])]), abs=1e-3)
    assert [m["score"] for m in rec["matches"]] == sorted((m["score"] for m in rec["matches"]), reverse=True)

    ev = _cli("evaluate", "--json", "--dataset", "world")
    assert (ev["served"], ev["served_version"]) == (fb["served_name"], fb["served_version"])
    assert (ev["served_base"], ev["served_base_version"]) == (base.name, base.version)
    assert ev["feedback"] == fb and ev["feedback_metrics"]["embedder"] == fb["served_name"]

    from soundmates.recommend import Recommender

    status = Recommender(settings).pipeline_status()
    assert status.embedder is not None and (status.embedder.name, status.embedder.version) == (fb["served_name"], pr["version"])
    assert not status.rebuild_due and not [w for w in status.warnings if "index build" in w], status.warnings
    assert status.evaluation is not None and status.evaluation.served == fb["served_name"]
    assert (status.evaluation.served_base, status.evaluation.served_base_version) == (base.name, base.version)
    _pipeline_page_says_what_is_served(app_test, fb["served_name"], fb["served_version"], base.name)


def _pipeline_page_says_what_is_served(app_test, name: str, version: str, base: str) -> None:
    from tests.helpers.dashboard import PIPELINE, plotly_specs, texts

    at = app_test(PIPELINE, timeout=120)
    assert not at.exception, at.exception
    page = texts(at)
    assert f"Matches are served by **{name}** (version `{version}`)" in page
    assert "query side is tuned on match feedback" in page and f"{base}'s" in page
    (spec,) = [s for s in plotly_specs(at) if any("(served)" in str(t.get("name")) for t in s["data"])]
    assert [t["name"] for t in spec["data"] if "(served)" in t["name"]] == [f"{base} (served)"]


def test_a_removed_voter_is_not_carried_past_the_next_training(settings, served_base):
    from soundmates.model.embedder import get_embedder
    from soundmates.pipelines.feedback_eval import stored_votes

    votes = _vote_by_hidden_taste(settings)
    _cli("train", "--json", *TRAIN_ARGS)
    first = _cli("promote", "--json")
    assert first["tuned_served"] is True
    gone = sorted({u for u, _, _ in stored_votes(settings)})[0]
    theirs = sum(gone in (u, o) for u, o, _ in stored_votes(settings))
    assert theirs >= 10
    removed = _cli("remove", gone, "--json")
    assert removed["feedback_deleted"] == theirs
    left = stored_votes(settings)
    assert len(left) == votes - theirs and not [v for v in left if gone in v[:2]]

    fb = _cli("train", "--json", *TRAIN_ARGS)["feedback"]
    assert fb["votes"] == votes - theirs
    after = _cli("promote", "--json")
    served = get_embedder(settings)
    # the same taste from the voters who are left: the map is judged useful again and refitted without them
    assert fb["used"] is True and fb["served_fit_votes"] == votes - theirs
    assert after["version"] == fb["served_version"] != first["version"] and served.version == fb["served_version"]


def test_votes_that_do_not_help_keep_the_base_served(settings, served_base):
    from soundmates.model.embedder import get_embedder
    from soundmates.model.registry import ModelRegistry

    _vote_with_the_ranking_of(settings, get_embedder(settings))
    fb = _cli("train", "--json", *TRAIN_ARGS)["feedback"]
    assert fb["base_auc"] == pytest.approx(1.0)  # nothing left to learn: the base ranks every vote right
    assert fb["used"] is False and fb["tuned_served"] is False and "does not beat" in fb["reason"]
    reg = ModelRegistry(settings.models_dir)
    assert not [v for v in reg.versions() if reg.meta(v).get("kind") == "feedback_tuned"]
    pr = _cli("promote", "--json")
    assert pr.get("tuned_served") is not True
    emb = get_embedder(settings)
    assert not hasattr(emb, "base") and emb.version == reg.current_version()
    rec = _cli("recommend", _full(settings)["user_id"].iloc[0], "--k", "3", "--json")
    assert rec["embedder"] == {"name": emb.name, "version": emb.version} and not emb.name.endswith("+feedback")
    ev = _cli("evaluate", "--json", "--dataset", "world")
    assert ev["feedback"] == fb and ev["served"] == emb.name and "served_base" not in ev


def test_a_tuned_incumbent_whose_votes_stop_helping_gives_way_to_its_base(settings, served_base):
    """No map outlives the votes it was fitted on: a training that does not refit it serves the base again."""
    from soundmates.model.embedder import get_embedder
    from soundmates.store.feedback import feedback_store

    _vote_by_hidden_taste(settings)
    _cli("train", "--json", *TRAIN_ARGS)
    assert _cli("promote", "--json")["tuned_served"] is True
    tuned = get_embedder(settings)
    store = feedback_store(settings)
    store.delete_users(sorted({v.user_id for v in store.votes()}))
    _vote_with_the_ranking_of(settings, tuned.base)  # votes the base already ranks all right
    trained = _cli("train", "--json", *TRAIN_ARGS)
    fb = trained["feedback"]
    # the gate judged the base (the incumbent unwrapped); the map was judged afresh on the votes now
    assert trained["gate"]["served"] == tuned.base.name and fb["base"] == tuned.base.name
    assert fb["used"] is False and fb["base_auc"] == pytest.approx(1.0)
    pr = _cli("promote", "--json")
    served = get_embedder(settings)
    assert not hasattr(served, "base") and served.version != tuned.version
    assert pr["tuned_served"] is False and pr["served"] == tuned.base.name
    # the same data: the gate keeps the incumbent, whose base is served again, and the reason says the map is dropped
    assert trained["gate"]["promote"] is None
    assert served.version == tuned.candidate_version and "dropped" in pr["reason"]
