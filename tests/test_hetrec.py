"""The HetRec Last.fm 2k adapter, on tiny hand-written files in the HetRec format."""

from __future__ import annotations

from pathlib import Path

import pytest

from soundmates.sources.hetrec import HetrecFormatError, load_hetrec, user_id_for, view_members


def _write(d: Path, name: str, header: str, rows: list[str], encoding: str = "utf-8") -> None:
    (d / name).write_text(header + "\n" + "\n".join(rows) + "\n", encoding=encoding)


@pytest.fixture
def hetrec_dir(tmp_path: Path) -> Path:
    d = tmp_path / "hetrec"
    d.mkdir()
    # a name with a double quote: the file must be read with quoting off
    _write(
        d,
        "artists.dat",
        "id\tname\turl\tpictureURL",
        [f"{a}\tArtist {a}\thttp://x/{a}\thttp://y/{a}.jpg" for a in range(1, 13)] + ['13\t"Weird" Al\thttp://x\thttp://y'],
    )
    _write(
        d,
        "tags.dat",
        "tagID\ttagValue",
        ["1\trock", "2\tmytag", "3\tchanson française", "4\tpop", "5\tjazz", "6\tfolk", "7\tmetal"],
        encoding="iso-8859-1",
    )
    ua = []
    for u in (1, 2, 3):
        ua += [f"{u}\t{a}\t{100 * a + u}" for a in range(1, 13)]  # 12 artists each
    ua += [f"4\t{a}\t5" for a in range(1, 6)]  # only 5 artists: left out by the protocol
    _write(d, "user_artists.dat", "userID\tartistID\tweight", ua)
    tagged = [
        "1\t1\t2\t1\t4\t2009",  # user 1's own idiosyncratic tag on artist 1
        "2\t1\t1\t1\t4\t2009",
        "3\t1\t1\t1\t4\t2009",  # rock by two others
        "2\t1\t3\t1\t4\t2009",  # chanson française by user 2
        # artist 2: six tags by user 3, so top-5 must drop one (metal has 2 taggers, the rest 1)
        *[f"3\t2\t{t}\t1\t4\t2009" for t in (1, 3, 4, 5, 6, 7)],
        "2\t2\t7\t1\t4\t2009",
        "4\t13\t1\t1\t4\t2009",
    ]
    _write(d, "user_taggedartists.dat", "userID\tartistID\ttagID\tday\tmonth\tyear", tagged)
    _write(d, "user_friends.dat", "userID\tfriendID", ["1\t2", "2\t1", "2\t4", "4\t2"])
    return d


def _genres(profile, artist_id: str):
    return profile.artists[artist_id].genres


def test_protocol_filters_splits_and_reads_encodings(hetrec_dir: Path):
    ds = load_hetrec(hetrec_dir, seed=0)
    assert ds.user_ids == [user_id_for(1), user_id_for(2), user_id_for(3)]  # user 4 has < 10 artists
    for p in ds.profiles:
        a = {it.track_id for it in view_members(p, "a")}
        b = {it.track_id for it in view_members(p, "b")}
        assert not a & b and len(a | b) == 12 and len(a) == 6  # disjoint halves covering every artist
        assert p.source == "hetrec"
    # ISO-8859-1 tag name decoded correctly
    p2 = ds.profiles[1]
    assert "chanson française" in _genres(ds.profiles[0], "1")
    # play counts kept as item weights
    w = {it.track_id: it.weight for it in view_members(p2, "full")}
    assert w["lastfm-artist-3"] == 302.0


def test_own_tags_removed_from_own_profile_only(hetrec_dir: Path):
    ds = load_hetrec(hetrec_dir, seed=0)
    p1, p2, p3 = ds.profiles
    assert "mytag" not in _genres(p1, "1")  # user 1's own tag must not leak into their profile
    assert "mytag" in _genres(p2, "1")  # but others see it: one distinct tagger left
    assert _genres(p2, "1")[0] == "rock"  # rock: 2 taggers, ranked first
    # user 2 tagged artist 1 'chanson française': removed in user 2's profile; rock keeps 1 tagger (user 3)
    assert _genres(p2, "1") == ["rock", "mytag"]
    # top 5 by distinct taggers: metal (2) first, then 4 of the 1-tagger tags by tag id; user 3's own
    # tags are removed for user 3 -> only metal (tagged by user 2) remains
    assert _genres(p1, "2") == ["metal", "rock", "chanson française", "pop", "jazz"]
    assert _genres(p3, "2") == ["metal"]


def test_split_is_seeded(hetrec_dir: Path):
    h = lambda ds: [sorted(it.track_id for it in view_members(p, "a")) for p in ds.profiles]  # noqa: E731
    assert h(load_hetrec(hetrec_dir, seed=0)) == h(load_hetrec(hetrec_dir, seed=0))
    assert h(load_hetrec(hetrec_dir, seed=0)) != h(load_hetrec(hetrec_dir, seed=1))


def test_friends_are_symmetric_and_restricted_to_kept_users(hetrec_dir: Path):
    ds = load_hetrec(hetrec_dir)
    assert ds.friends[user_id_for(1)] == {user_id_for(2)}
    assert ds.friends[user_id_for(2)] == {user_id_for(1)}  # user 4 was left out


def test_bad_files_are_named(hetrec_dir: Path, tmp_path: Path):
    (hetrec_dir / "tags.dat").unlink()
    with pytest.raises(HetrecFormatError, match="tags.dat"):
        load_hetrec(hetrec_dir)
    with pytest.raises(HetrecFormatError, match="not a directory"):
        load_hetrec(tmp_path / "nope")
    _write(hetrec_dir, "tags.dat", "tagID\ttagValue", ["x\trock"])
    with pytest.raises(HetrecFormatError, match="tag id 'x'"):
        load_hetrec(hetrec_dir)
