"""Retrieval metric code checked against a ranking worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from soundmates.model.metrics import precision_at_k, retrieval_metrics, top_k_others


def test_metrics_match_hand_made_ranking():
    scores = np.array([
        [0.9, 0.1, 0.2, 0.3],  # own other view (col 0) ranked 1st
        [0.8, 0.5, 0.9, 0.1],  # col 1 ranked 3rd
        [0.1, 0.2, 0.3, 0.4],  # col 2 ranked 2nd
    ])
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
    scores = np.array([
        [1.0, 0.9, 0.1, 0.8],  # top others of u1: u2, u4
        [0.9, 1.0, 0.2, 0.1],  # top others of u2: u1, u3
        [0.0, 0.0, 1.0, 0.0],
        [0.5, 0.1, 0.2, 1.0],
    ])
    assert top_k_others(scores, ids, ids, 2)[0] == ["u2", "u4"]
    rel = {"u1": {"u4"}, "u2": {"u3", "u1"}, "u3": set()}
    # u1: 1/2, u2: 2/2, u3 and u4 have no relevant user -> skipped
    assert precision_at_k(scores, ids, ids, rel, k=2) == pytest.approx(0.75)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="positives"):
        retrieval_metrics(np.zeros((2, 3)), positives=[0, 5])
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics(np.array([[np.nan, 1.0]]))
