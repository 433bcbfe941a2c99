"""Ingest against the local Spotify-compatible server, over HTTP (tests/fixtures/spotify.py).

Expected numbers come from the world's own description of what it serves
(``soundmates.world.generator.describe_user``), never from the ingest itself.
"""

from __future__ import annotations

import math

import pytest

from soundmates.config import get_settings, reset_settings
from soundmates.profiles import ProfileRepository
from soundmates.spotify.ingest import Ingestor
from soundmates.spotify.refs import profile_url, quote_user_id


def _settings(**overrides):
    reset_settings()
    return get_settings().model_copy(update=overrides)


@pytest.fixture(scope="module")
def world_desc(small_world):
    """What the server will serve for every user of the test world (describe_user), computed once."""
    from soundmates.world.generator import World, describe_user

    world = World(small_world)
    return {uid: describe_user(world, uid) for uid in world.user_ids}


def _find(world_desc, predicate, limit=1):
    found = [uid for uid, d in world_desc.items() if predicate(d)][:limit]
    if len(found) < limit:
        pytest.skip("the test world has no such user")
    return found


def _lower_bound_without_artists(d) -> dict[str, int]:
    return {
        "user": 1,
        "user_playlists": max(1, math.ceil(d["playlists"] / 50)),
        "playlist_items": sum(math.ceil(p["items"] / 50) for p in d["playlist_detail"]),
    }


def test_profile_matches_what_the_world_serves_with_exact_paging_calls(small_world, world_desc, spotify_server):
    server = spotify_server(world=small_world)
    uid = _find(world_desc, lambda d: d["playlists"] > 50 and d["max_playlist_items"] > 50 and d["local"] + d["null"] > 0)[0]
    d = world_desc[uid]
    ing = Ingestor(_settings())
    summary = ing.ingest_many([uid], progress=False)

    assert summary.ingested == 1 and summary.failed == []
    prof = ProfileRepository(get_settings().profiles_dir).load(uid)
    assert prof.user_id == uid and prof.display_name == d["display_name"] and prof.source == "spotify"
    assert len(prof.playlists) == d["playlists"]
    assert prof.n_items == d["tracks"]
    assert sum(p.skipped_episodes for p in prof.playlists) == d["episodes"]
    assert sum(p.skipped_local for p in prof.playlists) == d["local"]
    assert sum(p.skipped_null for p in prof.playlists) == d["null"]
    assert summary.items_skipped == {"episode": d["episodes"], "local": d["local"], "null": d["null"]}
    assert len(prof.tracks) == d["distinct_tracks"]
    assert len(prof.artists) == d["distinct_artists"]
    by_id = {p["id"]: p for p in d["playlist_detail"]}
    for pl in prof.playlists:
        assert len(pl.items) == by_id[pl.id]["tracks"]
    # every track is complete enough for the features: artists known, a year, explicit
    assert all(t.artist_ids and set(t.artist_ids) <= set(prof.artists) for t in prof.tracks.values())
    assert all(t.release_year and 1900 < t.release_year < 2030 for t in prof.tracks.values())
    assert all(isinstance(t.explicit, bool) for t in prof.tracks.values())

    expected = _lower_bound_without_artists(d)
    expected["artists"] = math.ceil(d["distinct_artists"] / 50)
    assert summary.calls_by_endpoint == expected  # the lower bound, exactly: paging follows the limits
    assert {k: v for k, v in server.stats()["requests"].items() if k != "token"} == expected  # the server agrees
    assert expected["user_playlists"] > 1  # the playlist listing spans pages
    assert expected["playlist_items"] > len([p for p in d["playlist_detail"] if p["items"]])  # some playlist spans pages


def test_the_fields_filter_keeps_everything_the_profile_needs(small_world, world_desc, spotify_server, tmp_path, monkeypatch):
    """Item pages are fetched with ``fields`` (~7x smaller): the profiles are those of the unfiltered pages.
    (Development mode's rows, ``item`` only, are checked filtered by tests/test_server.py.)"""
    import soundmates.spotify.ingest as ingest_module

    spotify_server(world=small_world)
    uids = _find(world_desc, lambda d: d["local"] + d["null"] + d["episodes"] > 0 and d["tracks"] > 0, limit=3)
    profiles, raw_bytes = {}, {}
    for label, fields in (("filtered", ingest_module.ITEM_FIELDS), ("whole", None)):
        monkeypatch.setattr(ingest_module, "ITEM_FIELDS", fields)
        settings = _settings(data_dir=tmp_path / label)
        summary = Ingestor(settings).ingest_many(uids, progress=False)
        assert summary.ingested == len(uids), summary.failed
        repo = ProfileRepository(settings.profiles_dir)
        profiles[label] = [repo.load(u).model_dump(exclude={"fetched_at"}) for u in uids]
        raw_bytes[label] = sum(f.stat().st_size for f in (tmp_path / label).rglob("pages.log"))
    assert profiles["filtered"] == profiles["whole"]
    assert raw_bytes["filtered"] < 0.5 * raw_bytes["whole"]


def test_every_reference_form_and_odd_legacy_ids_are_ingested(small_world, world_desc, spotify_server):
    from tests.fixtures.spotify import world_user_ids

    spotify_server(world=small_world)
    ids = world_user_ids(small_world)
    has_data = sorted((u for u in ids if world_desc[u]["tracks"] > 0), key=lambda u: world_desc[u]["items"])
    # the smallest user of each odd kind of id (legacy punctuation, non-ASCII, numeric)
    kinds = {
        "#": lambda u: "#" in u,
        "+": lambda u: "+" in u,
        ".": lambda u: "." in u and u.isascii(),
        "_": lambda u: "_" in u and u.isascii(),
        "non-ASCII": lambda u: not u.isascii(),
        "numeric": str.isdigit,
    }
    odd = []
    for kind, match in kinds.items():
        found = [u for u in has_data if match(u)]
        assert found, f"the test world has no user id with {kind}"
        odd.append(found[0])
    plain = [u for u in has_data if u.isascii() and u.isalnum() and not u.isdigit()][:3]
    refs = [profile_url(u) for u in odd] + [
        f"spotify:user:{plain[0]}",
        plain[1],
        f"https://open.spotify.com/intl-pt-br/user/{plain[2]}?si=abc",
    ]

    summary = Ingestor(_settings()).ingest_many(refs, progress=False)

    assert summary.failed == [] and summary.ingested == len(refs)
    repo = ProfileRepository(get_settings().profiles_dir)
    assert sorted(repo.user_ids()) == sorted(odd + plain)
    for u in odd:
        assert repo.load(u).user_id == u


def test_bad_users_are_reported_and_never_fail_the_batch(small_world, world_desc, spotify_server):
    spotify_server(world=small_world)
    good = _find(world_desc, lambda d: d["tracks"] > 0)[0]
    no_playlists = _find(world_desc, lambda d: d["playlists"] == 0)[0]
    refs = ["https://open.spotify.com/playlist/37i9dQZF1DXcBWIGoYBM5M", "nosuchuser.really", no_playlists, good]

    summary = Ingestor(_settings()).ingest_many(refs, progress=False)

    assert summary.ingested == 1 and summary.ingested_user_ids == [good]
    reasons = {f.ref: f.reason for f in summary.failed}
    assert reasons["https://open.spotify.com/playlist/37i9dQZF1DXcBWIGoYBM5M"].startswith("invalid reference: ")
    assert "link to a playlist" in reasons["https://open.spotify.com/playlist/37i9dQZF1DXcBWIGoYBM5M"]
    assert reasons["nosuchuser.really"].startswith("unknown user")
    assert reasons[no_playlists] == "no public playlists"
    assert ProfileRepository(get_settings().profiles_dir).user_ids() == [good]


def test_rerun_skips_stored_users_and_refresh_refetches(small_world, world_desc, spotify_server):
    server = spotify_server(world=small_world)
    uid = _find(world_desc, lambda d: d["tracks"] > 0)[0]
    first = Ingestor(_settings()).ingest_many([uid], progress=False)
    assert first.ingested == 1
    server.reset_stats()

    again = Ingestor(_settings()).ingest_many([uid, uid], progress=False)
    assert (again.ingested, again.skipped, again.api_calls) == (0, 2, 0)
    assert server.stats()["api_calls"] == 0

    refreshed = Ingestor(_settings()).ingest_many([uid], refresh=True, progress=False)
    d = world_desc[uid]
    assert refreshed.ingested == 1
    # artists are persisted: a refresh refetches the user's pages, never known artists
    assert refreshed.calls_by_endpoint == _lower_bound_without_artists(d)
    assert len(ProfileRepository(get_settings().profiles_dir)) == 1


def test_artist_cache_second_user_sharing_artists_costs_no_new_artist_calls(small_world, world_desc, spotify_server):
    spotify_server(world=small_world)
    users = sorted(_find(world_desc, lambda d: 0 < d["items"] <= 300, limit=8), key=lambda u: world_desc[u]["items"])
    settings = _settings()
    ing = Ingestor(settings)
    known: set[str] = set()
    shared_any = False
    for uid in users:
        calls_before = ing.client.calls["artists"]
        prof = ing.ingest_user(uid)
        new = set(prof.artists) - known
        shared_any |= bool(set(prof.artists) & known)
        # only the artists no earlier user had are fetched, 50 per call
        assert ing.client.calls["artists"] - calls_before == math.ceil(len(new) / 50)
        known |= set(prof.artists)
    assert shared_any, "pick users that share artists"

    # a later run (new Ingestor, same data dir) re-ingesting them fetches no artist at all
    ing2 = Ingestor(settings)
    summary = ing2.ingest_many(users, refresh=True, progress=False)
    assert summary.ingested == len(users)
    assert ing2.client.calls["artists"] == 0 and ing2.client.calls["artist"] == 0
    # and each artist was fetched exactly once, ever
    lines = (settings.raw_dir / "artists.jsonl").read_text().splitlines()
    assert len(lines) == len(known)


def test_a_rerun_resumes_from_raw_pages_and_refetches_only_what_is_missing_or_broken(small_world, world_desc, spotify_server):
    spotify_server(world=small_world)
    uid = _find(world_desc, lambda d: 1 < d["playlists"] and 0 < d["tracks"] and d["items"] <= 400)[0]
    settings = _settings()
    first = Ingestor(settings).ingest_user(uid)
    repo = ProfileRepository(settings.profiles_dir)

    # as after a crash between the last page and the profile: every page is there, no profile
    repo.delete(uid)
    resumed = Ingestor(settings).ingest_many([uid], progress=False)
    assert resumed.ingested == 1 and resumed.api_calls == 0 and resumed.raw_pages_reused > 0
    assert repo.load(uid).content_hash() == first.content_hash()

    # a stored page that is lost or not a page any more is fetched again, and only that one
    from soundmates.profiles import safe_filename
    from soundmates.spotify.raw_store import UserPages

    log_path = settings.raw_dir / "users" / safe_filename(uid) / UserPages.LOG
    kept = log_path.read_bytes()
    # A torn record (as after a crash mid-append) at the end: what it held is fetched again.
    with UserPages(log_path.parent) as pages:
        pages.put(UserPages.playlists(0), b'{"error": "not a page"}')
    log_path.write_bytes(log_path.read_bytes() + b"SMP1\x05\x00")
    repo.delete(uid)
    again = Ingestor(settings).ingest_many([uid], progress=False)
    assert again.ingested == 1 and again.calls_by_endpoint == {"user_playlists": 1}
    assert repo.load(uid).content_hash() == first.content_hash()
    # the torn tail was cut off before the refetched page went on, so that page reads back
    assert isinstance(UserPages(log_path.parent).get(UserPages.playlists(0))["items"], list)

    # a record whose bytes changed fails its checksum: it and what follows read as missing
    damaged = bytearray(kept)
    damaged[len(damaged) // 2] ^= 0xFF
    log_path.write_bytes(bytes(damaged))
    repo.delete(uid)
    third = Ingestor(settings).ingest_many([uid], progress=False)
    assert third.ingested == 1 and third.api_calls > 0 and third.raw_pages_reused > 0
    assert repo.load(uid).content_hash() == first.content_hash()


def test_malformed_answers_fail_that_user_only_with_the_reason(small_world, world_desc, spotify_server):
    from soundmates.spotify.client import SpotifyClient

    spotify_server(world=small_world)
    bad, good = _find(world_desc, lambda d: 0 < d["tracks"] and d["items"] <= 300, limit=2)
    settings = _settings()

    class TamperedClient(SpotifyClient):
        """The real client; one user's playlist listing comes back without its items list."""

        def get(self, endpoint, path, params=None):
            result = super().get(endpoint, path, params)
            if endpoint == "user_playlists" and f"users/{quote_user_id(bad)}/" in path:
                self.last_body = None
                return {**result, "items": None}
            return result

    summary = Ingestor(settings, client=TamperedClient(settings)).ingest_many([bad, good], progress=False)
    assert summary.ingested_user_ids == [good]
    assert summary.failed[0].ref == bad
    assert summary.failed[0].reason == "malformed data: the user_playlists page at offset 0 has no 'items' list"


def test_raw_pages_of_any_playlist_id_are_kept_apart_in_one_log_per_user(tmp_path):
    from soundmates.spotify.raw_store import UserPages

    ids = ["37i9dQZF1DXcBWIGoYBM5M", "é" * 200, "é" * 199 + "e", "a.1", "a"]  # long ones that differ at the end, dots
    names = [UserPages.items(pid, off) for pid in ids for off in (0, 50)]
    assert len(set(names)) == len(names)
    with UserPages(tmp_path / "u") as pages:
        for i, name in enumerate(names):
            pages.put(name, f'{{"items": [], "n": {i}}}'.encode())
        pages.put(names[0], b'{"items": [], "n": "again"}')  # a later record of a name wins
    again = UserPages(tmp_path / "u")
    assert [again.get(n)["n"] for n in names] == ["again", *range(1, len(names))]
    assert [p.name for p in (tmp_path / "u").iterdir()] == [UserPages.LOG]  # one file per user
    with UserPages(tmp_path / "u", fresh=True) as fresh:  # a refresh starts the log over
        fresh.put(UserPages.user, b'{"id": "x"}')
    assert UserPages(tmp_path / "u").get(names[1]) is None and UserPages(tmp_path / "u").get("user") == {"id": "x"}


def test_a_torn_raw_page_reads_as_missing_and_is_cut_off_before_the_next(tmp_path):
    from soundmates.spotify.raw_store import UserPages

    with UserPages(tmp_path / "u") as pages:
        pages.put(UserPages.playlists(0), b'{"items": [1]}')
        pages.put(UserPages.playlists(50), b'{"items": [2]}')
    log_path = tmp_path / "u" / UserPages.LOG
    log_path.write_bytes(log_path.read_bytes()[:-3])  # a crash mid-append
    pages = UserPages(tmp_path / "u")
    assert pages.get(UserPages.playlists(0)) == {"items": [1]}
    assert pages.get(UserPages.playlists(50)) is None  # fetched again, not a failed user
    pages.put(UserPages.playlists(50), b'{"items": [3]}')
    pages.close()
    assert UserPages(tmp_path / "u").get(UserPages.playlists(50)) == {"items": [3]}


def test_two_runs_adding_to_one_users_log_keep_each_others_pages(tmp_path):
    from soundmates.spotify.raw_store import UserPages

    with UserPages(tmp_path / "u") as first:
        first.put(UserPages.user, b'{"id": "u"}')
    a, b = UserPages(tmp_path / "u"), UserPages(tmp_path / "u")
    assert a.get(UserPages.playlists(0)) is None  # a has read the log
    b.put(UserPages.playlists(0), b'{"items": ["b"]}')  # b adds to it since
    a.put(UserPages.playlists(50), b'{"items": ["a"]}')
    a.close(), b.close()
    kept = UserPages(tmp_path / "u")
    assert [kept.get(UserPages.playlists(o)) for o in (0, 50)] == [{"items": ["b"]}, {"items": ["a"]}]
    assert kept.get(UserPages.user) == {"id": "u"}


def test_a_run_started_before_another_fetched_artists_does_not_fetch_them_again(small_world, world_desc, spotify_server):
    spotify_server(world=small_world)
    uid = _find(world_desc, lambda d: d["tracks"] > 0)[0]
    settings = _settings()
    later = Ingestor(settings)  # as a parallel batch: its artist cache was read before the other run filled it
    first = Ingestor(settings).ingest_many([uid], progress=False)
    assert first.ingested == 1 and first.calls_by_endpoint["artists"] > 0
    again = later.ingest_many([uid], refresh=True, progress=False)
    assert again.ingested == 1 and "artists" not in again.calls_by_endpoint


def test_the_artist_cache_file_is_shared_by_runs_line_by_whole_line(tmp_path):
    from soundmates.spotify.raw_store import ArtistCache

    path = tmp_path / "artists.jsonl"
    a, b = ArtistCache(path), ArtistCache(path)
    a.add({"x": {"id": "x"}})
    assert "x" not in b
    b.refresh()
    assert b.get("x") == {"id": "x"}
    a.add({"y": None})
    b.add({"z": {"id": "z"}})  # an add takes in what the other run appended since
    assert "y" in b and b.get("y") is None
    with open(path, "ab") as f:
        f.write(b'{"id": "w", "art')  # another writer mid-append: the partial line waits
    a.refresh()
    assert "w" not in a and "z" in a
    with open(path, "ab") as f:
        f.write(b'ist": {"id": "w"}}\n')
    a.refresh()
    assert a.get("w") == {"id": "w"}
    assert ArtistCache(path).get("w") == {"id": "w"} and len(ArtistCache(path)) == 4
