"""``ProfileRepository.load_record`` (msgspec) answers what ``load`` (pydantic) answers, with the same content hash."""

from __future__ import annotations

import json
import logging

import pytest

from soundmates.profiles import Artist, Playlist, PlaylistItem, Profile, ProfileRecord, ProfileRepository, Track
from tests.helpers.features_golden import golden_profiles


def _profile(uid: str = "alice") -> Profile:
    return Profile(
        user_id=uid,
        display_name="Ålice ☃",
        playlists=[
            Playlist(id="p", name="mix", items=[PlaylistItem(track_id="t1", weight=2.5), PlaylistItem(track_id="t2")]),
            Playlist(id="q", name="empty", skipped_episodes=3),
        ],
        tracks={
            "t1": Track(id="t1", name="One", artist_ids=["a"], release_year=1999, explicit=True, popularity=7),
            "t2": Track(id="t2", name="Two", artist_ids=["a", "ghost"]),
        },
        artists={"a": Artist(id="a", name="A", genres=["rock", "pop"]), "b": Artist(id="b", name="B", genres=None)},
    )


def test_records_hash_like_profiles_on_every_golden_profile(tmp_path):
    repo = ProfileRepository(tmp_path)
    for prof in [*golden_profiles(), _profile()]:
        repo.save(prof)
        rec = repo.load_record(prof.user_id)
        assert isinstance(rec, ProfileRecord)
        assert rec.content_hash() == prof.content_hash() == repo.load(prof.user_id).content_hash()
        assert rec.n_items == prof.n_items and rec.user_id == prof.user_id


LAX = {  # pydantic coerces these; msgspec refuses them, so pydantic's reading is used
    "weight as a string": lambda d: d["playlists"][0]["items"][0].update(weight="2.5"),
    "year as a float": lambda d: d["tracks"]["t1"].update(release_year=1999.0),
    "explicit as 0/1": lambda d: d["tracks"]["t1"].update(explicit=1),
}


@pytest.mark.parametrize("kind", list(LAX))
def test_what_only_pydantic_accepts_is_read_by_pydantic(tmp_path, kind):
    repo = ProfileRepository(tmp_path)
    path = repo.save(_profile())
    data = json.loads(path.read_text())
    LAX[kind](data)
    path.write_text(json.dumps(data))
    rec = repo.load_record("alice")
    assert isinstance(rec, Profile) and rec.content_hash() == repo.load("alice").content_hash() == _profile().content_hash()


CORRUPT = {
    "truncated": lambda good: good[: len(good) // 2],
    "wrong shape": lambda good: b'{"user_id": 5, "playlists": "none"}',
    "not utf-8": lambda good: b"\xff\xfe" + good,
    "null weight": lambda good: good.replace(b'"weight":2.5', b'"weight":null'),
    "empty": lambda good: b"",
}


@pytest.mark.parametrize("kind", list(CORRUPT))
def test_a_corrupt_file_is_quarantined_as_load_does(tmp_path, caplog, kind):
    repo = ProfileRepository(tmp_path)
    path = repo.save(_profile())
    bad = CORRUPT[kind](path.read_bytes())
    assert bad != path.read_bytes()
    path.write_bytes(bad)
    with caplog.at_level(logging.WARNING, logger="soundmates.profiles"):
        assert repo.load_record("alice") is None
    assert not path.exists() and "alice" in repo.quarantined
    assert any("moved to" in r.getMessage() for r in caplog.records)


def test_a_file_of_another_user_or_none_at_all_is_none(tmp_path):
    repo = ProfileRepository(tmp_path)
    assert repo.load_record("nobody") is None
    repo.path("bob").write_text(_profile("alice").model_dump_json())
    assert repo.load_record("bob") is None and repo.path("bob").exists()  # not corrupt: left alone


def test_records_have_the_models_fields_in_alphabetical_order():
    """Alphabetical, so the hash needs no key sort; the same fields, so a field added to a model is not lost."""
    from soundmates import profiles as P

    pairs = [
        (P.Profile, P.ProfileRecord),
        (P.Playlist, P.PlaylistRecord),
        (P.PlaylistItem, P.PlaylistItemRecord),
        (P.Track, P.TrackRecord),
        (P.Artist, P.ArtistRecord),
    ]
    for model, record in pairs:
        assert list(record.__struct_fields__) == sorted(model.model_fields), record.__name__
