"""The blend's rules on hand-made profiles: shared tracks first, balance, artist cap, a reason for every track; exports."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter

import pytest

from soundmates.profiles import Artist, Playlist, PlaylistItem, Profile, Track
from soundmates.recommend import blend_export, blend_mix
from soundmates.recommend import explain as X
from soundmates.recommend.blend_models import MAX_PER_ARTIST, Blend

GENRES = {"a": ["indie rock"], "b": ["indie rock", "shoegaze"], "c": ["techno"], "d": ["jazz"], "e": ["techno"]}


def _profile(user_id: str, name: str, tracks: list[tuple[str, str]], *, weight=lambda i: 1.0) -> Profile:
    """``tracks``: (track id, artist id) pairs; artists a..e have the genres of GENRES, the rest none."""
    prof_tracks = {t: Track(id=t, name=f"Song {t}", artist_ids=[a], duration_ms=200_000) for t, a in tracks}
    artists = {a: Artist(id=a, name=f"Artist {a.upper()}", genres=GENRES.get(a[:1], [])) for _, a in tracks}
    items = [PlaylistItem(track_id=t, weight=weight(i)) for i, (t, _) in enumerate(tracks)]
    return Profile(
        user_id=user_id,
        display_name=name,
        playlists=[Playlist(id=f"{user_id}-pl", name="mix", items=items)],
        tracks=prof_tracks,
        artists=artists,
    )


def _members(*profiles: Profile) -> list[blend_mix.Member]:
    return [blend_mix.member_from(p.user_id, p.display_name or p.user_id, X.taste_of(p)) for p in profiles]


def _overlapping_pair() -> tuple[Profile, Profile]:
    # 8 shared tracks (by artists a1 and b1), then each has 30 tracks of their own over 10 artists each;
    # they share artists a2 (ann's tracks) and b2 (bob's tracks), so each can recommend the other.
    shared = [(f"s{i}", "a1" if i < 4 else "b1") for i in range(8)]
    ann_own = [(f"ann{i}", ["a2", "c1", "c2", "d1", "c3", "d2", "c4", "d3", "c5", "d4"][i % 10]) for i in range(30)]
    bob_own = [(f"bob{i}", ["b2", "e1", "e2", "b3", "e3", "b4", "e4", "b5", "e5", "b6"][i % 10]) for i in range(30)]
    ann = _profile("ann", "Ann", shared + ann_own + [("x1", "b2"), ("x2", "b2")])  # ann plays 2 of b2's tracks
    bob = _profile("bob", "Bob", shared + bob_own + [("y1", "a2"), ("y2", "a2"), ("y3", "a2"), ("y4", "a2"), ("y5", "a2")])
    return ann, bob


COMPAT = [[1.0, 0.8], [0.8, 1.0]]


def test_two_overlapping_users_make_a_full_balanced_blend_with_reasons():
    ann, bob = _overlapping_pair()
    tracks = blend_mix.compose(_members(ann, bob), COMPAT, 30)
    assert len(tracks) == 30
    ids = [t.id for t in tracks]
    assert len(set(ids)) == len(ids)
    # shared tracks first (at most half), each with its reason and both as its source
    head = [t for t in tracks if len(t.from_) == 2]
    assert 1 <= len(head) <= 15 and tracks[: len(head)] == head
    assert all(t.reason == "shared by Ann and Bob" and t.from_ == ["ann", "bob"] for t in head)
    # every track has a reason; every member contributes at least 30 %
    assert all(t.reason for t in tracks)
    n = len(tracks)
    for m in ("ann", "bob"):
        assert sum(m in t.from_ for t in tracks) / n >= 0.3
    # the members' own picks are split evenly
    solo = Counter(t.from_[0] for t in tracks if len(t.from_) == 1)
    assert abs(solo["ann"] - solo["bob"]) <= 1
    # no artist more than three times
    per_artist = Counter(a for t in tracks for a in t.artist_ids)
    assert max(per_artist.values()) <= MAX_PER_ARTIST
    # the shared-artist reason names the other person and their real count
    reasons = {t.id: t.reason for t in tracks}
    a2_from_ann = [t for t in tracks if t.artist_ids == ["a2"] and t.from_ == ["ann"]]
    assert a2_from_ann and all(reasons[t.id] == "from Ann: Bob plays 5 of this artist's tracks" for t in a2_from_ann)
    b2_from_bob = [t for t in tracks if t.artist_ids == ["b2"] and t.from_ == ["bob"]]
    assert b2_from_bob and all(reasons[t.id] == "from Bob: Ann plays 2 of this artist's tracks" for t in b2_from_bob)
    # tracks whose artist the other already plays come before those they only share a genre with
    first_genre_pick = next(i for i, t in enumerate(tracks) if "listens to" in t.reason)
    assert all("plays" in t.reason for t in tracks[len(head) : first_genre_pick])


def test_genre_and_fallback_reasons():
    # no shared tracks or artists: bob's techno artist e1 meets ann's techno artist c1 through the genre
    ann = _profile("ann", "Ann", [("t1", "c1"), ("t2", "z1")])
    bob = _profile("bob", "Bob", [("u1", "e1"), ("u2", "z2")])
    tracks = blend_mix.compose(_members(ann, bob), [[1.0, 0.42], [0.42, 1.0]], 10)
    reasons = {t.id: t.reason for t in tracks}
    assert reasons["t1"] == "from Ann: Bob listens to techno (100% of their listening)"
    assert reasons["u1"] == "from Bob: Ann listens to techno (100% of their listening)"
    assert reasons["t2"] == "from Ann: one of their favourites; Bob's taste matches theirs at 0.42"
    assert len(tracks) == 4  # the libraries hold no more


def test_artist_cap_holds_even_when_one_artist_fills_a_library():
    ann = _profile("ann", "Ann", [(f"a{i}", "c1") for i in range(20)] + [(f"b{i}", f"z{i}") for i in range(3)])
    bob = _profile("bob", "Bob", [(f"c{i}", "c1") for i in range(20)] + [(f"d{i}", f"w{i}") for i in range(3)])
    tracks = blend_mix.compose(_members(ann, bob), COMPAT, 30)
    per_artist = Counter(a for t in tracks for a in t.artist_ids)
    assert per_artist["c1"] == MAX_PER_ARTIST
    assert max(per_artist.values()) <= MAX_PER_ARTIST


def test_three_or_more_take_turns():
    people = [
        _profile(f"p{k}", f"P{k}", [(f"p{k}t{i}", f"p{k}art{i % 8}") for i in range(24)] + [("common", "c1")]) for k in range(4)
    ]
    compat = [[1.0 if i == j else 0.5 for j in range(4)] for i in range(4)]
    tracks = blend_mix.compose(_members(*people), compat, 21)
    assert tracks[0].id == "common" and tracks[0].reason == "shared by P0, P1, P2 and P3"
    solo = Counter(t.from_[0] for t in tracks[1:])
    assert sorted(solo.values()) == [5, 5, 5, 5]


def _blend() -> Blend:
    ann, bob = _overlapping_pair()
    tracks = blend_mix.compose(_members(ann, bob), COMPAT, 12)
    return Blend(
        members=["ann", "bob"], tracks=tracks, compatibility=COMPAT, embedder="raw_cosine", names={"ann": "Ann", "bob": "Bob"}
    )


def test_contract_has_exactly_the_documented_keys():
    out = json.loads(blend_export.to_json(_blend()))
    assert set(out) == {"members", "tracks", "compatibility", "embedder"}
    assert all(set(t) == {"id", "name", "artists", "reason", "from"} for t in out["tracks"])
    assert out["members"] == ["ann", "bob"] and out["compatibility"] == COMPAT


def test_csv_and_m3u_hold_every_track_in_order():
    blend = _blend()
    rows = list(csv.DictReader(io.StringIO(blend_export.to_csv(blend))))
    assert [r["id"] for r in rows] == [t.id for t in blend.tracks]
    assert rows[0]["from"] == "ann; bob" and rows[0]["reason"] == blend.tracks[0].reason
    m3u = blend_export.to_m3u(blend).splitlines()
    assert m3u[0] == "#EXTM3U" and m3u[1] == "#PLAYLIST:Soundmates blend: Ann + Bob"
    urls = [line for line in m3u if not line.startswith("#")]
    assert urls == [f"https://open.spotify.com/track/{t.id}" for t in blend.tracks]
    assert m3u[2] == f"#EXTINF:200,{', '.join(blend.tracks[0].artists)} - {blend.tracks[0].name}"
    with pytest.raises(ValueError, match="unknown format"):
        blend_export.render(blend, "xml")
