"""Ingest with several workers: the same profiles, counts and artist cache as one by one, nothing twice."""

from __future__ import annotations

import threading
import time

import pytest

from soundmates.config import SpotifyCredentials, get_settings, reset_settings
from soundmates.profiles import ProfileRepository
from soundmates.spotify.client import SpotifyClient
from soundmates.spotify.ingest import Ingestor


def _settings(**overrides):
    reset_settings()
    return get_settings().model_copy(update=overrides)


@pytest.fixture(scope="module")
def small_users(small_world):
    """The world's users with at most 300 items (quick to ingest), in world order, with the odd failing one."""
    from soundmates.world.generator import World, describe_user

    world = World(small_world)
    return [u for u in world.user_ids if describe_user(world, u)["items"] <= 300][:30]


def _hashes(profiles_dir):
    return {p.user_id: p.content_hash() for p in ProfileRepository(profiles_dir)}


def test_six_workers_give_the_profiles_counts_and_artist_cache_of_one(small_world, spotify_server, small_users, tmp_path):
    spotify_server(world=small_world)
    one = _settings(data_dir=tmp_path / "one", ingest_workers=1)
    six = _settings(data_dir=tmp_path / "six", ingest_workers=6)
    sequential = Ingestor(one).ingest_many(small_users, progress=False)
    concurrent = Ingestor(six).ingest_many(small_users, progress=False)

    assert concurrent.ingested > 10, "the test needs users the pool works on"
    assert concurrent.ingested_user_ids == sequential.ingested_user_ids  # recorded in the order given
    assert [f.model_dump() for f in concurrent.failed] == [f.model_dump() for f in sequential.failed]
    assert _hashes(six.profiles_dir) == _hashes(one.profiles_dir)
    for endpoint in ("user", "user_playlists", "playlist_items"):
        assert concurrent.calls_by_endpoint[endpoint] == sequential.calls_by_endpoint[endpoint]
    assert concurrent.token_requests == 1
    # every artist fetched exactly once although users sharing artists ran at the same time
    lines = (six.raw_dir / "artists.jsonl").read_text().splitlines()
    distinct = {a for p in ProfileRepository(six.profiles_dir) for a in p.artists}
    assert len(lines) == len(distinct) == concurrent.artists_fetched == sequential.artists_fetched


def test_a_user_listed_twice_is_fetched_once(small_world, spotify_server, small_users):
    from soundmates.world.generator import World, describe_user

    world = World(small_world)
    a, b, c = [u for u in small_users if describe_user(world, u)["tracks"] > 0][:3]
    spotify_server(world=small_world)
    summary = Ingestor(_settings(ingest_workers=4)).ingest_many([a, b, a, "not a ref ://", c, b, c], progress=False)
    assert summary.calls_by_endpoint["user"] == 3
    assert summary.ingested_user_ids == [a, b, c] and summary.skipped == 3
    assert [f.ref for f in summary.failed] == ["not a ref ://"]


def test_a_retry_after_seen_by_one_thread_pauses_the_calls_of_the_others(small_world, spotify_server, small_users):
    spotify_server(world=small_world)
    client = SpotifyClient(_settings(), SpotifyCredentials(client_id="x", client_secret="y"))
    client.get("user", f"users/{small_users[0]}")  # token fetched

    def told_to_wait() -> None:
        client.rate_limit.pause(1.0)  # what a 429 with Retry-After: 1 on this thread does
        t0 = time.monotonic()
        client.get("user", f"users/{small_users[0]}")  # its own retry is timed by the retry policy, not paused again
        waits.append(time.monotonic() - t0)

    waits: list[float] = []
    other = threading.Thread(target=told_to_wait)
    other.start()
    other.join()
    t0 = time.monotonic()
    client.get("user", f"users/{small_users[1]}")
    paused = time.monotonic() - t0
    assert waits[0] < 0.5 and 0.5 < paused < 1.5


def test_a_slow_user_does_not_hold_the_others_back(small_world, spotify_server, small_users):
    """A user with a 6,000-track playlist takes a while: the pool goes on with the users after it
    (their outcomes wait their turn, so the summary keeps the order given)."""
    from soundmates.spotify.ingest_batch import IN_FLIGHT_PER_WORKER

    spotify_server(world=small_world)
    workers = 2
    ing = Ingestor(_settings(ingest_workers=workers))
    slow, others_needed = small_users[1], IN_FLIGHT_PER_WORKER * workers + 4
    done_while_slow = threading.Semaphore(0)
    held_back = []
    real = ing.ingest_user

    def ingest_user(uid, **kw):
        if uid == slow:  # wait for more users than the pool holds in flight to finish meanwhile
            held_back.append(not all(done_while_slow.acquire(timeout=30) for _ in range(others_needed)))
            return real(uid, **kw)
        try:
            return real(uid, **kw)
        finally:
            done_while_slow.release()

    ing.ingest_user = ingest_user
    summary = ing.ingest_many(small_users, progress=False)
    assert held_back == [False], "the users after a slow one waited for it"
    sequential = Ingestor(_settings(ingest_workers=1, data_dir=ing.settings.data_dir / "one")).ingest_many(
        small_users, progress=False
    )
    assert summary.ingested_user_ids == sequential.ingested_user_ids
    assert [f.ref for f in summary.failed] == [f.ref for f in sequential.failed]
