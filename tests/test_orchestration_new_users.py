"""``process_inbox`` against the local Spotify server: requests become findable users, bad ones fail with a reason."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.slow


def test_process_inbox_adds_good_users_and_fails_bad_ones(spotify_server, small_world):
    from soundmates.index import UserIndex
    from soundmates.pipelines import process_inbox
    from soundmates.store import get_store, inbox
    from tests.fixtures.spotify import world_user_ids

    spotify_server()
    store = get_store()
    good = world_user_ids(small_world)[:4]
    for uid in good:
        inbox.add_request(store, uid, f"spotify:user:{uid}", source="test")
    inbox.add_request(store, "ghost-user-404", "https://open.spotify.com/user/ghost-user-404", source="test")

    summary = process_inbox(limit=10)

    assert summary["processed"] == 5
    failed = {f["user_id"]: f["reason"] for f in summary["failed"]}
    assert "ghost-user-404" in failed and failed["ghost-user-404"]
    assert summary["done"], summary  # the bad one did not fail the batch
    assert set(summary["done"]) | set(failed) == {*good, "ghost-user-404"}
    for uid in [*good, "ghost-user-404"]:
        entry = inbox.get(store, uid)
        assert entry.status == ("failed" if uid in failed else "done"), entry
        assert (entry.reason is not None) == (uid in failed)
    assert inbox.counts(store)["pending"] == 0 and inbox.counts(store)["processing"] == 0

    # Findable at once, before any index build (fresh buffer); nothing built yet -> a rebuild is due.
    index = UserIndex()
    for uid in summary["done"]:
        assert uid in [u for u, _ in index.query(index.vector(uid), k=2)]
    assert summary["rebuild_due"] is True and summary["fresh_buffer"] == len(summary["done"])

    # Idempotent: a second run finds nothing to do and changes nothing.
    again = process_inbox(limit=10)
    assert again["processed"] == 0 and again["fresh_buffer"] == summary["fresh_buffer"]


def test_process_inbox_hands_requests_back_when_a_stage_fails(spotify_server, small_world, monkeypatch):
    import soundmates.pipelines as pipelines
    from soundmates.pipelines import process_inbox
    from soundmates.store import get_store, inbox
    from tests.fixtures.spotify import world_user_ids

    spotify_server()
    store = get_store()
    uid = world_user_ids(small_world)[0]
    inbox.add_request(store, uid, f"spotify:user:{uid}", source="test")

    def store_down(*args, **kwargs):
        raise OSError("feature store unreachable")

    monkeypatch.setattr(pipelines, "build_features", store_down)
    with pytest.raises(OSError, match="unreachable"):
        process_inbox()
    assert inbox.get(store, uid).status == "pending"  # nothing lost: the retry picks it up again


def test_process_inbox_requeues_stale_claims_and_validates_limit(settings, monkeypatch):
    from datetime import UTC, datetime, timedelta

    from soundmates.pipelines import new_users
    from soundmates.store import get_store, inbox

    store = get_store()
    inbox.add_request(store, "stuck", "spotify:user:stuck", source="test")
    inbox.claim(store)  # a run took it, then died
    assert new_users._requeue_stale(store, inbox) == []  # fresh claim: maybe a live run, leave it
    time.sleep(0.01)
    monkeypatch.setattr(new_users, "STALE_CLAIM", timedelta(milliseconds=5))  # the claim is now older than that
    assert new_users._requeue_stale(store, inbox) == ["stuck"]
    assert inbox.get(store, "stuck").status == "pending"
    assert inbox.get(store, "stuck").updated_at > datetime.now(UTC) - timedelta(minutes=1)
    with pytest.raises(ValueError, match="limit"):
        new_users.process_inbox(limit=0)
