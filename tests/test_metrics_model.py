"""Retrieval metric code checked against a ranking worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from soundmates.model.metrics import precision_at_k, retrieval_metrics, top_k_others


def test_metrics_match_hand_made_ranking():
    scores = np.array(
        [
            [0.9, 0.1, 0.2, 0.3],  # own other view (col 0) ranked 1st
            [0.8, 0.5, 0.9, 0.1],  # col 1 ranked 3rd
            [0.1, 0.2, 0.3, 0.4],  # col 2 ranked 2nd
        ]
    )
    m = retrieval_metrics(scores)
    assert m["recall@1"] == pytest.approx(1 / 3)
    assert m["recall@10"] == pytest.approx(1.0)
    assert m["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 2) / 3)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(4) + 1 / math.log2(3)) / 3)


def test_recall_at_10_counts_only_the_top_ten():
    # one query, 12 candidates; the relevant one (col 11) has the 11th highest score
    row = np.linspace(1.0, 0.0, 12)
    row[[10, 11]] = row[[11, 10]]
    scores = row[None, :]
    m = retrieval_metrics(scores, positives=[10])
    assert m["recall@10"] == 0.0 and m["recall@50"] == 1.0
    assert m["mrr"] == pytest.approx(1 / 12)
    m = retrieval_metrics(scores, positives=[9])
    assert m["recall@10"] == 1.0 and m["recall@1"] == 0.0


def test_negative_scores_and_ties_are_ranked_not_dropped():
    # torchmetrics alone would count every candidate scored <= 0 as never retrieved
    scores = -np.array([[0.1, 0.5, 0.9], [0.4, 0.2, 0.8], [0.9, 0.8, 0.7]])
    m = retrieval_metrics(scores)
    assert m["recall@1"] == pytest.approx(1.0)
    # all-equal scores: random tie-breaking, so over many queries recall@1 ~ 1/candidates, not 0 or 1
    m = retrieval_metrics(np.zeros((400, 4)), positives=np.zeros(400, dtype=int))
    assert 0.15 < m["recall@1"] < 0.35


def test_precision_at_k_skips_self_and_unscorable_queries():
    ids = ["u1", "u2", "u3", "u4"]
    scores = np.array(
        [
            [1.0, 0.9, 0.1, 0.8],  # top others of u1: u2, u4
            [0.9, 1.0, 0.2, 0.1],  # top others of u2: u1, u3
            [0.0, 0.0, 1.0, 0.0],
            [0.5, 0.1, 0.2, 1.0],
        ]
    )
    assert top_k_others(scores, ids, ids, 2)[0] == ["u2", "u4"]
    rel = {"u1": {"u4"}, "u2": {"u3", "u1"}, "u3": set()}
    # u1: 1/2, u2: 2/2, u3 and u4 have no relevant user -> skipped
    assert precision_at_k(scores, ids, ids, rel, k=2) == pytest.approx(0.75)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="positives"):
        retrieval_metrics(np.zeros((2, 3)), positives=[0, 5])
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics(np.array([[np.nan, 1.0]]))


# --------------------------------------------------------------------------- population metrics
def test_graded_ndcg_against_a_known_ideal():
    from soundmates.model.metrics import graded_ndcg

    ideal = np.array([[1.0, 0.5, 0.25]])
    disc = 1 / np.log2([2, 3, 4])
    # the ideal order scores 1; the reversed order scores its DCG over the ideal's, by hand
    assert graded_ndcg(ideal, ideal)[0] == pytest.approx(1.0)
    want = (0.25 * disc[0] + 0.5 * disc[1] + 1.0 * disc[2]) / (1.0 * disc[0] + 0.5 * disc[1] + 0.25 * disc[2])
    assert graded_ndcg(np.array([[0.25, 0.5, 1.0]]), ideal)[0] == pytest.approx(want)
    # negative relevance earns nothing; a query whose ideal is all zero cannot score (NaN)
    got = graded_ndcg(np.array([[-1.0, 0.5, 0.25], [0.0, 0.0, 0.0]]), np.array([[1.0, 0.5, 0.25], [0.0, 0.0, 0.0]]))
    assert got[0] == pytest.approx((0.5 * disc[1] + 0.25 * disc[2]) / (ideal[0] @ disc)) and np.isnan(got[1])
    with pytest.raises(ValueError, match="one shape"):
        graded_ndcg(np.zeros((1, 3)), np.zeros((1, 2)))


def test_taste_metrics_on_a_hand_made_population():
    """Five users on a line of taste; a method that ranks by that line is ideal, a reversed one is not."""
    import pandas as pd

    from soundmates.model.protocol import make_population, per_query_metrics, top_k

    angles = np.array([0.0, 0.1, 0.2, 1.2, 1.5])
    taste = {f"u{i}": np.array([np.cos(a), np.sin(a)]) for i, a in enumerate(angles)}
    rows = [
        {"user_id": u, "view": "full", "artist_ids": [], "artist_weights": [], "n_tracks": 50, "n_playlists": 3} for u in taste
    ]
    pop = make_population(pd.DataFrame(rows), taste=taste)

    class ByTaste:
        def __init__(self, sign):
            self.sign = sign

        def embed(self, rows):
            return np.stack([taste[u] for u in rows["user_id"]]).astype(np.float32)

        def embed_query(self, rows):
            return self.sign * self.embed(rows)

    import soundmates.model.protocol as P

    k_saved = P.K
    P.K = 2  # top 2 of 4 others, so precision can be partial
    try:
        good = per_query_metrics(ByTaste(1.0), pop, ["u0"])
        bad = per_query_metrics(ByTaste(-1.0), pop, ["u0"])
    finally:
        P.K = k_saved
    assert good["taste_ndcg@10"][0] == pytest.approx(1.0) and good["taste_precision@10"][0] == 1.0
    # reversed: u0's two least similar (u4, u3) instead of u1, u2
    cos = {j: np.cos(angles[j]) for j in range(5)}
    disc = 1 / np.log2([2, 3])
    want = (cos[4] * disc[0] + cos[3] * disc[1]) / (cos[1] * disc[0] + cos[2] * disc[1])
    assert bad["taste_ndcg@10"][0] == pytest.approx(want, rel=1e-5) and bad["taste_precision@10"][0] == 0.0
    idx, _ = top_k(np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32), 1, exclude=np.array([0, -1]))
    assert idx.tolist() == [[1], [1]]  # the query's own column is never its neighbour


def test_neighbour_items_recall_and_bootstrap():
    from soundmates.model.metrics import bootstrap_ci, item_recall, share_relevant

    assert item_recall([["x", "y", "z"], ["q"]], [{"x", "z"}, set()], k=2).tolist()[0] == pytest.approx(0.5)
    assert np.isnan(item_recall([["q"]], [set()], k=2)[0])
    assert share_relevant([["a", "b"]], [{"b"}])[0] == 0.5
    lo, hi = bootstrap_ci(np.array([0.0, 1.0] * 50), seed=0)
    assert lo < 0.5 < hi and hi - lo < 0.3
    assert bootstrap_ci(np.array([np.nan]))[0] != bootstrap_ci(np.array([np.nan]))[0]  # NaN when nothing scores


def test_validation_metrics_on_a_hand_made_population(monkeypatch):
    """Every candidate validation metric of one query, worked out by hand (no hidden taste involved).

    u0's half a has artist x / genre rock; its half b adds y, z / jazz, pop, folk. Its neighbours by the method:
    u1 (cosine 1: artists x, y; genres rock, jazz), u2 (0.6: q / metal), u3 (-1: z / pop, votes only a little).
    """
    import pandas as pd

    import soundmates.model.protocol as P

    vec = {"full": {"u0": [1, 0], "u1": [1, 0], "u2": [0.6, 0.8], "u3": [-1, 0]}, "a": {}, "b": {}}
    vec["a"] = {"u0": [1, 0], "u1": [0, 1], "u2": [0, 1], "u3": [0, 1]}
    vec["b"] = {"u0": [0.8, 0.6], "u1": [1, 0], "u2": [0.6, 0.8], "u3": [-1, 0]}  # u1's b outranks u0's own b
    bags = {
        "u0": {"a": (["x"], ["rock"]), "b": (["y", "z"], ["rock", "jazz", "pop", "folk"])},
        "u1": {"full": (["x", "y"], ["rock", "jazz"])},
        "u2": {"full": (["q"], ["metal"])},
        "u3": {"full": (["z"], ["pop"])},
    }
    rows = []
    for u in ("u0", "u1", "u2", "u3"):
        b = bags[u]
        full = b.get("full") or (b["a"][0] + b["b"][0], sorted(set(b["a"][1] + b["b"][1])))
        for view in ("full", "a", "b"):
            arts, gens = b.get(view, full)
            rows.append({"user_id": u, "view": view, "artist_ids": arts, "genre_names": gens, "n_tracks": 50})

    class Lookup:
        def embed(self, rows):
            return np.array([vec[v][u] for u, v in zip(rows["user_id"], rows["view"])], dtype=np.float32)

        embed_query = embed

    pop = P.make_population(pd.DataFrame(rows))
    monkeypatch.setattr(P, "N_ITEMS", 3)
    got = P.validation_metrics(Lookup(), pop, ["u0", "not-a-user"])
    # artists: votes y (u1) 1, q (u2) 0.6, z (u3) ~0 -> [y, q, z]; x is known; held {y, z}: 2 / min(3, 2)
    assert got["neighbour_recall@20"] == pytest.approx(1.0)
    # genres: rock known; [jazz, metal, pop]; held {jazz, pop, folk}: 2 / 3
    assert got["genre_recall@20"] == pytest.approx(2 / 3)
    # self-retrieval against every half b: u0's own b is second -> in the top 10, reciprocal rank 1/2
    assert got["self_recall@10"] == 1.0 and got["self_mrr"] == pytest.approx(0.5)
    assert got["geo_nr_mrr"] == pytest.approx(math.sqrt(0.5))
    assert set(got) == set(P.VAL_CANDIDATES) and P.VAL_METRIC in got


def test_blends_scale_by_the_best_method_and_leave_random_out():
    from soundmates.model.protocol import blend_validation

    table = {
        "a": {"neighbour_recall@20": 0.2, "self_mrr": 0.5},
        "b": {"neighbour_recall@20": 0.1, "self_mrr": 1.0},
        "c": {"neighbour_recall@20": 0.05, "self_mrr": 0.25},
        "random": {"neighbour_recall@20": 0.9, "self_mrr": 0.9},
    }
    out = blend_validation(table)
    assert out["a"]["norm_mean"] == pytest.approx(0.75) and out["b"]["norm_mean"] == pytest.approx(0.75)
    assert out["c"]["norm_mean"] == pytest.approx(0.25)
    assert out["a"]["mean_rank"] == out["b"]["mean_rank"] == -1.5 and out["c"]["mean_rank"] == -3.0
    assert math.isnan(out["random"]["norm_mean"]) and out["a"]["self_mrr"] == 0.5  # the inputs are kept
