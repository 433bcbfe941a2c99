"""Explanations on hand-built profiles: what is listed as shared really is shared, by id."""

from __future__ import annotations

import numpy as np
import pytest

from soundmates.profiles import Artist, Playlist, PlaylistItem, Profile, Track
from soundmates.recommend.explain import (
    closest_artists,
    era_overlap,
    genre_overlap,
    mmr_order,
    shared_artists,
    shared_genres,
    shared_tracks,
    taste_of,
    thin_profile_warnings,
)

ARTISTS = {
    "a_radiohead": Artist(id="a_radiohead", name="Radiohead", genres=["art rock", "alternative rock"]),
    "a_portishead": Artist(id="a_portishead", name="Portishead", genres=["trip hop"]),
    "a_massive": Artist(id="a_massive", name="Massive Attack", genres=["trip hop", "electronica"]),
    "a_abba": Artist(id="a_abba", name="ABBA", genres=["europop"]),
    "a_fake_radiohead": Artist(id="a_fake_radiohead", name="Radiohead", genres=["karaoke"]),  # same name, other id
    "a_nogenre": Artist(id="a_nogenre", name="Unknown Band", genres=None),
    "a_aphex": Artist(id="a_aphex", name="Aphex Twin", genres=["electronica", "idm"]),
}


def track(tid: str, artist: str, year: int | None) -> Track:
    return Track(id=tid, name=f"Song {tid}", artist_ids=[artist], release_year=year)


TRACKS = {
    "t1": track("t1", "a_radiohead", 1997),
    "t2": track("t2", "a_radiohead", 2000),
    "t3": track("t3", "a_portishead", 1994),
    "t4": track("t4", "a_massive", 1998),
    "t5": track("t5", "a_abba", 1976),
    "t6": track("t6", "a_fake_radiohead", 2015),
    "t7": track("t7", "a_nogenre", None),
    "t8": track("t8", "a_aphex", 1999),
}


def profile(uid: str, playlists: list[list[str]]) -> Profile:
    used = {t for pl in playlists for t in pl}
    tracks = {t: TRACKS[t] for t in used}
    artists = {a: ARTISTS[a] for t in tracks.values() for a in t.artist_ids}
    return Profile(
        user_id=uid,
        display_name=uid.title(),
        playlists=[
            Playlist(id=f"{uid}-p{i}", name=f"pl {i}", items=[PlaylistItem(track_id=t) for t in pl])
            for i, pl in enumerate(playlists)
        ],
        tracks=tracks,
        artists=artists,
    )


@pytest.fixture
def alice():
    return taste_of(profile("alice", [["t1", "t2", "t3"], ["t4", "t1"]]))


@pytest.fixture
def bob():
    return taste_of(profile("bob", [["t1", "t3", "t5"], ["t6", "t7", "t8"]]))


def test_shared_artists_are_really_shared_by_id(alice, bob):
    got = shared_artists(alice, bob)
    ids = [a.id for a in got]
    assert set(ids) == {"a_radiohead", "a_portishead"}
    # Every listed artist occurs in both profiles' tracks; the namesake with another id is not listed.
    for a in ids:
        assert any(a in t.artist_ids for t in alice.profile.tracks.values())
        assert any(a in t.artist_ids for t in bob.profile.tracks.values())
    assert "a_fake_radiohead" not in ids
    # Weight = the smaller share: alice plays Radiohead 3/5 of the time, bob 1/6.
    rh = next(a for a in got if a.id == "a_radiohead")
    assert rh.name == "Radiohead" and rh.weight == pytest.approx(1 / 6, abs=1e-4)
    weights = [a.weight for a in got]
    assert weights == sorted(weights, reverse=True)  # heaviest shared listening first


def test_shared_tracks_and_genres(alice, bob):
    assert [t.id for t in shared_tracks(alice, bob)] == ["t1", "t3"]
    assert shared_tracks(alice, bob)[0].artists == ["Radiohead"]
    genres = {g.genre: g.weight for g in shared_genres(alice, bob)}
    assert set(genres) == {"art rock", "alternative rock", "trip hop", "electronica"}
    assert "europop" not in genres and "karaoke" not in genres
    # alice: 7 genre occurrences (rh x3 x2 genres, portishead 1, massive 2) -> trip hop 2/8; bob: 1 of 7.
    assert genres["trip hop"] == pytest.approx(min(2 / 10, 1 / 7), abs=1e-4)


def test_no_overlap_lists_nothing(alice):
    carol = taste_of(profile("carol", [["t5"]]))
    assert shared_artists(alice, carol) == [] and shared_tracks(alice, carol) == [] and shared_genres(alice, carol) == []


def test_era_overlap(alice, bob):
    assert era_overlap(alice, alice) == pytest.approx(1.0)
    seventies = taste_of(profile("carol", [["t5"]]))
    assert era_overlap(alice, seventies) == 0.0
    assert 0.0 < era_overlap(alice, bob) < 1.0
    unknown = taste_of(profile("dan", [["t7"]]))
    assert era_overlap(alice, unknown) is None


def test_genre_overlap_gives_both_sides(alice, bob):
    rows = {r.genre: r for r in genre_overlap(alice, bob)}
    assert rows["europop"].weight_user == 0.0 and rows["europop"].weight_other > 0
    assert rows["art rock"].weight_user > rows["art rock"].weight_other > 0


def test_closest_artists_without_encoder_prefers_your_genres(alice, bob):
    got = closest_artists(alice, bob)
    ids = [a.id for a in got]
    assert "a_radiohead" not in ids and "a_portishead" not in ids  # already shared: listed elsewhere
    assert ids[0] == "a_aphex"  # electronica: alice's taste; ABBA's europop is not
    assert "a_abba" not in ids and "a_nogenre" not in ids


def test_closest_artists_with_text_vectors(alice, bob):
    # A toy encoder: a fixed unit vector per text, electronic things pointing the same way.
    basis = {
        "electronica": [1, 0, 0],
        "idm": [0.9, 0.1, 0],
        "trip hop": [0.8, 0.2, 0],
        "europop": [0, 0, 1],
        "karaoke": [0, 0.1, 1],
        "art rock": [0.3, 1, 0],
        "alternative rock": [0.2, 1, 0],
        "Radiohead": [0, 1, 0.2],
        "Portishead": [0.7, 0.3, 0],
        "Massive Attack": [0.8, 0.2, 0.1],
        "Unknown Band": [0, 0, 1],
    }
    calls = []

    def vectors(texts):
        calls.append(texts)
        out = np.array([basis.get(t, [0.1, 0.1, 0.1]) for t in texts], dtype=np.float64)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    got = closest_artists(alice, bob, vectors)
    assert got[0].id == "a_aphex" and got[0].similarity > 0.5
    sims = {a.id: a.similarity for a in got}
    assert "a_abba" not in sims or sims["a_abba"] < sims["a_aphex"]
    assert "a_nogenre" not in sims or sims["a_nogenre"] < sims["a_aphex"]  # compared by name, not genre
    assert len(calls) == 1  # one batched encoder call


def test_thin_profile_warns(alice):
    assert any("thin" in w for w in thin_profile_warnings(alice))
    nogenre = taste_of(profile("erin", [["t7"]]))
    assert any("no genres" in w for w in thin_profile_warnings(nogenre))


def test_mmr_diversity_avoids_near_copies():
    v = np.array([[1, 0], [0.999, 0.045], [0.6, 0.8]], dtype=np.float64)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    rel = [0.95, 0.94, 0.80]
    assert mmr_order(["a", "b", "c"], rel, v, 2, 0.0) == [0, 1]
    assert mmr_order(["a", "b", "c"], rel, v, 2, 0.5) == [0, 2]
    with pytest.raises(ValueError, match="diversity"):
        mmr_order(["a"], [1.0], v[:1], 1, 1.5)
