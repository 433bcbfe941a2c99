"""Match feedback: stored only for consented users, counted, removed with either user and never back."""

from __future__ import annotations

import json
import threading

import pytest
from typer.testing import CliRunner

from soundmates.store.feedback import DOWN, UP, FeedbackStore, training_pairs


def test_store_keeps_the_latest_vote_per_pair_and_counts(tmp_path):
    store = FeedbackStore(tmp_path)
    store.record("ann", "bob", UP)
    store.record("ann", "cat", UP)
    store.record("ann", "bob", DOWN)  # changed her mind: the latest vote wins
    store.record("bob", "ann", UP)
    assert {(v.user_id, v.other_id, v.vote) for v in store.votes()} == {("ann", "bob", -1), ("ann", "cat", 1), ("bob", "ann", 1)}
    assert store.counts("ann") == {"up": 1, "down": 1, "voters": 1}
    assert store.counts() == {"up": 2, "down": 1, "voters": 2}
    assert store.training_pairs() == ([("ann", "cat"), ("bob", "ann")], [("ann", "bob")])
    with pytest.raises(ValueError, match="must differ"):
        store.record("ann", "ann", UP)
    with pytest.raises(ValueError, match="vote"):
        store.record("ann", "dan", 3)


def test_deleting_a_user_removes_votes_by_and_about_them(tmp_path):
    store = FeedbackStore(tmp_path)
    for a, b in (("ann", "bob"), ("bob", "cat"), ("cat", "ann"), ("cat", "dan")):
        store.record(a, b, UP)
    assert store.delete_users(["ann"]) == 2
    assert {(v.user_id, v.other_id) for v in store.votes()} == {("bob", "cat"), ("cat", "dan")}
    # A second process opening the same file sees the same thing (no cache hides a deletion).
    assert {(v.user_id, v.other_id) for v in FeedbackStore(tmp_path).votes()} == {("bob", "cat"), ("cat", "dan")}


def test_concurrent_writers_lose_no_vote(tmp_path):
    store = FeedbackStore(tmp_path)

    def vote(i: int) -> None:
        for j in range(20):
            store.record(f"u{i}", f"m{j}", UP if j % 2 else DOWN)

    threads = [threading.Thread(target=vote, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert store.counts() == {"up": 40, "down": 40, "voters": 4}


def test_training_hook_is_empty_without_votes_and_creates_nothing(settings):
    assert training_pairs(settings) == ([], [])
    assert not any(settings.store_dir.glob("feedback*")) if settings.store_dir.exists() else True


@pytest.mark.slow
def test_feedback_cli_consent_counting_and_removal(dashboard_world):
    """Real pipeline (local Spotify server → ingest → features → index): vote, count, refuse, remove."""
    from soundmates.cli.main import app
    from soundmates.config import get_settings

    me, other, third = dashboard_world.stored_ids[:3]
    stranger = dashboard_world.unknown_ids[0]
    run = CliRunner().invoke
    up = run(app, ["feedback", me, other, "--up", "--json"])
    assert up.exit_code == 0, up.output
    got = json.loads(up.stdout)
    assert (got["user_id"], got["other_id"], got["vote"]) == (me, other, "up")
    assert got["yours"] == {"up": 1, "down": 0}
    down = json.loads(run(app, ["feedback", me, third, "--down", "--json"]).stdout)
    assert down["yours"] == {"up": 1, "down": 1} and down["everyone"]["voters"] == 1
    again = json.loads(run(app, ["feedback", third, me, "--up", "--json"]).stdout)
    assert again["everyone"] == {"up": 2, "down": 1, "voters": 2}

    # A profile that is not stored (never consented) can neither vote nor be voted on.
    refused = run(app, ["feedback", stranger, me, "--up"])
    assert refused.exit_code == 1
    assert refused.stderr.count("\n") == 1 and "not stored" in refused.stderr and "soundmates add" in refused.stderr
    assert "Traceback" not in refused.output
    about = run(app, ["feedback", me, stranger, "--down", "--json"])
    assert about.exit_code == 1 and json.loads(about.stdout)["kind"] == "feedback_not_allowed"
    both = run(app, ["feedback", me, other])
    assert both.exit_code == 2 and "exactly one" in both.stderr

    # Removing `me` deletes every vote by or about them; it stays removed (a vote about them is refused).
    removed = json.loads(run(app, ["remove", me, "--json"]).stdout)
    assert removed["feedback_deleted"] == 3
    assert training_pairs(get_settings()) == ([], [])
    later = run(app, ["feedback", third, me, "--up"])
    assert later.exit_code == 1 and "not stored" in later.stderr
    assert training_pairs(get_settings()) == ([], [])


@pytest.mark.slow
def test_removing_the_rated_match_removes_the_feedback_about_them(dashboard_world):
    from soundmates.config import get_settings
    from soundmates.recommend import Recommender

    me, other, third = dashboard_world.stored_ids[:3]
    rec = Recommender(get_settings())
    rec.feedback(me, other, up=True)
    rec.feedback(me, third, up=False)
    assert rec.votes(me) == {other: "up", third: "down"}
    rec.remove(other)
    assert rec.votes(me) == {third: "down"}
    assert training_pairs(get_settings()) == ([], [(me, third)])


@pytest.mark.slow
def test_pipeline_status_reports_the_feedback_metric_on_served_matches(dashboard_world):
    from soundmates.config import get_settings
    from soundmates.recommend import Recommender

    rec = Recommender(get_settings())
    assert rec.pipeline_status().feedback is None  # nobody voted: no metric
    me = dashboard_world.stored_ids[0]
    served = [m.user_id for m in rec.recommend(me, k=10).matches]
    not_served = next(u for u in dashboard_world.stored_ids if u != me and u not in served)
    rec.feedback(me, served[0], up=True)
    rec.feedback(me, served[1], up=True)
    rec.feedback(me, served[2], up=False)
    rec.feedback(me, not_served, up=False)  # a vote on someone no longer in the top 10 is not "served"
    got = rec.pipeline_status().feedback
    assert got == {"up": 2, "down": 2, "voters": 1, "served_votes": 3, "up_share_served@10": pytest.approx(2 / 3, abs=1e-4)}
