"""Feedback in the model stage's evaluation: real votes in the data dir's feedback store, a real training."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.helpers.model_data import TRAIN_ARGS, cli_json, full_schema_features

_json = cli_json


def _vote_on_served_ranking(settings, voters: list[str]) -> None:
    """Each voter: up on their served #1 and #2, down on #10 and on the user ranked last (scores recomputed here)."""
    from soundmates.model.embedder import get_embedder
    from soundmates.store import get_store
    from soundmates.store.feedback import DOWN, UP, feedback_store

    full = get_store(settings).read("user_features")
    full = full[full["view"] == "full"].drop_duplicates("user_id").reset_index(drop=True)
    emb = get_embedder(settings)
    q, c = np.asarray(emb.embed_query(full)), np.asarray(emb.embed(full))
    ids = full["user_id"].astype(str).tolist()
    store = feedback_store(settings)
    for u in voters:
        i = ids.index(u)
        s = c @ q[i]
        s[i] = -np.inf
        order = np.argsort(-s, kind="stable")
        assert s[order[1]] > s[order[9]] > s[order[-2]]  # strict: the known answers below hold
        for j, vote in ((order[0], UP), (order[1], UP), (order[9], DOWN), (order[-2], DOWN)):
            store.record(u, ids[j], vote)


def test_evaluation_reports_feedback_and_training_records_the_tuning_decision(settings):
    from soundmates.cli.main import app
    from soundmates.store import get_store

    run = CliRunner().invoke
    get_store(settings).upsert("user_features", full_schema_features(60))
    trained = _json(run(app, ["train", "--json", *TRAIN_ARGS]))
    assert trained["feedback"] is None  # nobody voted: no feedback record
    _json(run(app, ["promote", "--json"]))
    ev = _json(run(app, ["evaluate", "--json", "--dataset", "world"]))
    assert ev["feedback_metrics"] is None
    assert not any(settings.store_dir.glob("feedback*"))  # evaluating creates no feedback file

    voters = sorted(get_store(settings).read("user_features")["user_id"].astype(str).unique())[:12]
    _vote_on_served_ranking(settings, voters)
    ev = _json(run(app, ["evaluate", "--json", "--dataset", "world"]))
    fm = ev["feedback_metrics"]
    # every up (#1, #2) outscores every down (#10, last); served top 10 holds #1, #2 (up) and #10 (down)
    assert fm["feedback_auc"] == pytest.approx(1.0)
    assert fm["up_share@10"] == pytest.approx(2 / 3, abs=1e-4)
    assert (fm["voters"], fm["auc_voters"], fm["votes"], fm["served_voted"]) == (12, 12, 48, 36)
    assert fm["embedder"] == ev["served"]

    # the votes turned around: the served embedder now ranks them all wrong
    from soundmates.store.feedback import DOWN, UP, feedback_store

    fs = feedback_store(settings)
    for v in fs.votes():
        fs.record(v.user_id, v.other_id, DOWN if v.vote == UP else UP)
    ev = _json(run(app, ["evaluate", "--json", "--dataset", "world"]))
    assert ev["feedback_metrics"]["feedback_auc"] == pytest.approx(0.0)
    assert ev["feedback_metrics"]["up_share@10"] == pytest.approx(1 / 3, abs=1e-4)

    trained = _json(run(app, ["train", "--json", *TRAIN_ARGS]))
    fb = trained["feedback"]
    assert {"voters", "votes", "base_auc", "tuned_auc", "used", "reason"} <= set(fb)
    assert (fb["voters"], fb["votes"]) == (12, 48) and isinstance(fb["used"], bool) and fb["reason"]
    assert 0 < fb["fit_voters"] < 12 and fb["tuned_served"] is False
    assert fb["served_embedder"]["votes"] == 48
    ev = _json(run(app, ["evaluate", "--json", "--dataset", "world"]))
    assert ev["feedback"] == fb  # the decision is in the recorded evaluation


class _Lookup:
    """An embedder over fixed vectors, looked up by user id (query side = candidate side)."""

    name, version = "lookup", "v0"

    def __init__(self, ids: list[str], vecs: np.ndarray):
        self.pos, self.vecs = {u: i for i, u in enumerate(ids)}, vecs

    def embed(self, rows):
        return self.vecs[[self.pos[u] for u in rows["user_id"]]]

    embed_query = embed


def _world(n: int = 300, d: int = 6):
    """Users whose true likes weight two of the base vectors' dimensions 15x more: votes on the base's top 10."""
    import pandas as pd

    from soundmates.model.protocol import top_k

    rng = np.random.default_rng(0)
    v = rng.normal(size=(n, d)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    hidden = (v * np.array([3, 3, 0.2, 0.2, 0.2, 0.2], dtype=np.float32)) @ v.T
    np.fill_diagonal(hidden, -np.inf)
    liked = [set(r) for r in np.argsort(-hidden, axis=1)[:, :20]]
    served, _ = top_k(v, v, 10, np.arange(n))
    ids = [f"u{i:03d}" for i in range(n)]
    votes = [(ids[u], ids[j], 1 if j in liked[u] else -1) for u in range(0, n, 2) for j in served[u]]
    return _Lookup(ids, v), pd.DataFrame({"user_id": ids}), votes


def test_tuning_on_fit_voters_is_judged_on_held_out_voters_only():
    from soundmates.pipelines.feedback_eval import feedback_decision, is_held_out

    base, rows, votes = _world()
    got = feedback_decision(base, rows, votes)
    assert got is not None and (got["voters"], got["votes"]) == (150, 1500)
    assert got["fit_voters"] + got["held_out_voters"] <= 150 and got["held_out_voters"] >= 20
    # the base ranks by the wrong dimensions (AUC near chance); the map learns the right ones from other voters
    assert got["used"] is True and got["tuned_auc"] > got["base_auc"] + 0.1, got
    assert "beats" in got["reason"]
    # held-out votes never reach the fit: turning them around mirrors both AUCs, the fitted map unchanged
    flipped = [(u, o, -s if is_held_out(u) else s) for u, o, s in votes]
    mirror = feedback_decision(base, rows, flipped)
    assert mirror is not None and mirror["used"] is False
    assert mirror["base_auc"] == pytest.approx(1 - got["base_auc"], abs=2e-4)
    assert mirror["tuned_auc"] == pytest.approx(1 - got["tuned_auc"], abs=2e-4)
    assert feedback_decision(base, rows, []) is None
    # the split is sha256 of the id (not Python's per-process salted hash): the same in every run, ~30% held out
    assert [is_held_out(f"u{i:03d}") for i in range(8)] == [False, False, True, False, False, False, True, False]
    assert 0.25 < sum(is_held_out(f"user{i}") for i in range(2000)) / 2000 < 0.35
