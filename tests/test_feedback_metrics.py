"""Feedback metrics on hand-made vectors and votes whose answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from soundmates.model.feedback_metrics import feedback_auc, feedback_metrics, up_share_at_k

IDS = ["a", "b", "c", "d", "e"]
# unit-ish 2-D vectors; from a: b 0.9, e ~0.707, c 0, d -1
VECS = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0], [0.7071, 0.7071]], dtype=np.float32)
VOTES = [
    ("a", "b", 1),
    ("a", "c", 1),
    ("a", "e", -1),
    ("a", "d", -1),  # a: (b,e) (b,d) (c,d) right, (c,e) wrong -> 3/4
    ("c", "d", 1),
    ("c", "a", -1),  # c: d and a both score 0 -> a tie, 1/2
    ("b", "a", 1),  # b has no down vote: not in the AUC
]


def test_auc_is_the_mean_over_voters_with_both_kinds():
    m = feedback_metrics(VECS, VECS, IDS, VOTES)
    assert m["feedback_auc"] == pytest.approx((0.75 + 0.5) / 2)
    assert m["auc_voters"] == 2 and m["voters"] == 3 and m["votes"] == 7 and m["skipped"] == 0
    assert feedback_auc(VECS, VECS, IDS, VOTES) == pytest.approx(0.625)
    flipped = [(u, o, -s) for u, o, s in VOTES]
    assert feedback_auc(VECS, VECS, IDS, flipped) == pytest.approx(1 - 0.625)


def test_up_share_counts_only_voted_users_in_the_served_top_k():
    # top 2 served: a -> b (up), e (down); b -> a (up), e (no vote); c -> e, b (no votes) => 2 ups of 3
    assert up_share_at_k(VECS, VECS, IDS, VOTES, k=2) == pytest.approx(2 / 3)
    m = feedback_metrics(VECS, VECS, IDS, VOTES, k=2)
    assert m["served_voted"] == 3
    # top 10 = everyone but the voter: every vote is on a served user => 4 ups of 7
    assert up_share_at_k(VECS, VECS, IDS, VOTES) == pytest.approx(4 / 7)


def test_the_query_side_is_what_ranks():
    # a's query turned around, candidates unchanged: b -0.9, c 0, d 1, e -0.71; only (c, e) stays right
    q = VECS.copy()
    q[0] = [-1, 0]
    a_votes = [v for v in VOTES if v[0] == "a"]
    assert feedback_auc(VECS, VECS, IDS, a_votes) == pytest.approx(0.75)
    assert feedback_auc(q, VECS, IDS, a_votes) == pytest.approx(0.25)
    # served top 1: b (up) with the base query, d (down) with the turned one
    assert up_share_at_k(VECS, VECS, IDS, a_votes, k=1) == 1.0
    assert up_share_at_k(q, VECS, IDS, a_votes, k=1) == 0.0


def test_no_usable_votes_gives_nan_and_unknown_users_are_skipped():
    m = feedback_metrics(VECS, VECS, IDS, [("a", "zz", 1), ("zz", "a", -1)])
    assert math.isnan(m["feedback_auc"]) and math.isnan(m["up_share@10"])
    assert m["skipped"] == 2 and m["voters"] == 0 and m["auc_voters"] == 0
    assert math.isnan(feedback_auc(VECS, VECS, IDS, []))
    # only up votes: no AUC, but an up share
    m = feedback_metrics(VECS, VECS, IDS, [("b", "a", 1)])
    assert math.isnan(m["feedback_auc"]) and m["up_share@10"] == 1.0


def test_store_vote_rows_are_accepted(tmp_path):
    from soundmates.store.feedback import DOWN, UP, FeedbackStore

    fs = FeedbackStore(tmp_path)
    for u, o, s in VOTES:
        fs.record(u, o, UP if s > 0 else DOWN)
    assert feedback_auc(VECS, VECS, IDS, fs.votes()) == pytest.approx(0.625)
