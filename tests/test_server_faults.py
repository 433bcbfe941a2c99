"""Fault injection of the local Spotify server: 429 with Retry-After, 5xx, dropped connections, latency."""

from __future__ import annotations

import time
from collections import Counter
from urllib.parse import quote

import pytest
import requests

from soundmates.world.server import FaultConfig
from tests.fixtures.spotify import world_user_ids


def _token(server) -> str:
    return requests.post(server.token_url, data={"grant_type": "client_credentials"}, auth=("a", "b")).json()["access_token"]


def _outcomes(server, urls: list[str]) -> list[str]:
    """Status of each GET (one fresh connection each, so a drop cannot poison the next request)."""
    tok = _token(server)
    out = []
    for url in urls:
        try:
            r = requests.get(url, headers={"Authorization": f"Bearer {tok}"}, timeout=5)
            out.append(str(r.status_code))
        except requests.ConnectionError:
            out.append("drop")
    return out


def _urls(server, ids: list[str], n: int) -> list[str]:
    return [f"{server.api_url}users/{quote(ids[i % len(ids)], safe='')}/playlists?limit={1 + i // len(ids)}" for i in range(n)]


def test_fault_rates_match_the_configuration(spotify_server, small_world):
    faults = FaultConfig(rate_429=0.10, rate_5xx=0.05, rate_drop=0.05, retry_after=2, seed=1)
    server = spotify_server(faults=faults)
    outcomes = Counter(_outcomes(server, _urls(server, world_user_ids(small_world), 600)))
    n = sum(outcomes.values())
    assert 0.06 < outcomes["429"] / n < 0.14
    five = sum(outcomes[c] for c in ("500", "502", "503"))
    assert 0.02 < five / n < 0.09
    assert len([c for c in ("500", "502", "503") if outcomes[c]]) >= 2  # several 5xx kinds
    assert 0.02 < outcomes["drop"] / n < 0.09
    assert outcomes["200"] / n > 0.7
    stats = server.stats()
    assert stats["faults"]["429"] == outcomes["429"] and stats["faults"]["drop"] == outcomes["drop"]
    assert stats["faults"]["5xx"] == five


def test_429_carries_retry_after_and_spotify_body(spotify_server, small_world):
    server = spotify_server(faults=FaultConfig(rate_429=1.0, retry_after=7))
    tok = _token(server)
    r = requests.get(
        f"{server.api_url}users/{quote(world_user_ids(small_world)[0], safe='')}", headers={"Authorization": f"Bearer {tok}"}
    )
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "7"
    assert r.json() == {"error": {"status": 429, "message": "API rate limit exceeded"}}


def test_5xx_bodies(spotify_server, small_world):
    server = spotify_server(faults=FaultConfig(rate_5xx=1.0, seed=3))
    tok = _token(server)
    seen = set()
    for uid in world_user_ids(small_world)[:20]:
        r = requests.get(f"{server.api_url}users/{quote(uid, safe='')}", headers={"Authorization": f"Bearer {tok}"})
        assert r.status_code in (500, 502, 503) and r.json()["error"]["status"] == r.status_code
        seen.add(r.status_code)
    assert len(seen) >= 2


def test_dropped_connection_is_a_connection_error_and_keepalive_recovers(spotify_server, small_world):
    server = spotify_server(faults=FaultConfig(rate_drop=0.5, seed=2))
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {_token(server)}"
    drops = ok = 0
    for url in _urls(server, world_user_ids(small_world), 40):
        try:
            assert s.get(url, timeout=5).status_code == 200
            ok += 1
        except requests.ConnectionError:
            drops += 1
    assert drops > 5 and ok > 5  # the session keeps working after a dropped connection


def test_faults_are_deterministic_given_the_seed(spotify_server, small_world):
    ids = world_user_ids(small_world)
    cfg = FaultConfig(rate_429=0.2, rate_5xx=0.1, rate_drop=0.1, seed=42)
    first = spotify_server(faults=cfg)
    a = _outcomes(first, _urls(first, ids, 120))
    second = spotify_server(faults=cfg)
    b = _outcomes(second, _urls(second, ids, 120))
    third = spotify_server(faults=FaultConfig(rate_429=0.2, rate_5xx=0.1, rate_drop=0.1, seed=43))
    c = _outcomes(third, _urls(third, ids, 120))
    assert a == b
    assert a != c
    # A retry of the same request gets a fresh decision: it eventually succeeds.
    url = _urls(first, ids, 1)[0]
    first.reset_stats()
    assert "200" in _outcomes(first, [url] * 20)


def test_token_and_stats_are_never_faulted(spotify_server):
    server = spotify_server(faults=FaultConfig(rate_drop=1.0))
    for _ in range(10):
        assert requests.post(server.token_url, data={"grant_type": "client_credentials"}, auth=("a", "b")).status_code == 200
        assert requests.get(f"{server.base_url}/_stats").status_code == 200


def test_added_latency(spotify_server, small_world):
    server = spotify_server(faults=FaultConfig(latency_ms=400))
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {_token(server)}"
    url = f"{server.api_url}users/{quote(world_user_ids(small_world)[0], safe='')}"
    started = time.perf_counter()
    for _ in range(3):
        assert s.get(url).status_code == 200
    assert time.perf_counter() - started >= 1.2
    started = time.perf_counter()
    requests.post(server.token_url, data={"grant_type": "client_credentials"}, auth=("a", "b"))
    assert time.perf_counter() - started < 0.3  # the token endpoint is not slowed down (400 ms if it were)


@pytest.mark.parametrize("kw", [{"rate_5xx": -0.1}, {"rate_drop": 2}, {"retry_after": -1}, {"latency_ms": -5}])
def test_bad_fault_configuration_is_rejected(kw):
    with pytest.raises(ValueError):
        FaultConfig(**kw)
