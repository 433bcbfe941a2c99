"""HetRec 2011 Last.fm 2k -> canonical profiles (a floor-2 source, like the ingest).

Protocol (so results compare with published and independent runs):

* only users with at least ``min_artists`` (10) listened artists;
* each user's artists are split at random (seeded per user) into two disjoint halves,
  stored as two playlists: ``half-a`` (query view) and ``half-b`` (candidate view);
  an artist is one pseudo-track whose item weight is the user's play count;
* an artist's genres are its top-5 tags by number of distinct taggers, **with this user's
  own tagging removed from their own profile**: a user's idiosyncratic tags would otherwise
  appear in both halves and identify them (a leak);
* friend links (``user_friends.dat``) are kept for the friends@10 metric.

File formats (tab-separated, header row): ``artists.dat`` is UTF-8 with quoting off,
``tags.dat`` is ISO-8859-1.
"""

from __future__ import annotations

import csv
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from soundmates.profiles import Artist, Playlist, PlaylistItem, Profile, Track

REQUIRED_FILES = ("artists.dat", "tags.dat", "user_artists.dat", "user_taggedartists.dat", "user_friends.dat")
TOP_TAGS = 5
SOURCE = "hetrec"


class HetrecFormatError(ValueError):
    """The directory is not a HetRec Last.fm 2k copy (missing file, bad header or row)."""


@dataclass
class HetrecDataset:
    profiles: list[Profile]
    # user_id -> ids of their friends (only users kept by the protocol)
    friends: dict[str, set[str]] = field(default_factory=dict)
    seed: int = 0
    path: Path | None = None

    @property
    def user_ids(self) -> list[str]:
        return [p.user_id for p in self.profiles]


def user_id_for(hetrec_user: int | str) -> str:
    return f"lastfm-{hetrec_user}"


def _read_table(path: Path, columns: tuple[str, ...], encoding: str) -> list[list[str]]:
    if not path.exists():
        raise HetrecFormatError(f"{path}: file missing (expected the HetRec Last.fm 2k files {', '.join(REQUIRED_FILES)})")
    with path.open(encoding=encoding, newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        try:
            header = next(reader)
        except StopIteration:
            raise HetrecFormatError(f"{path}: empty file, expected header {columns}") from None
        header = [h.strip() for h in header]
        if tuple(header[: len(columns)]) != columns:
            raise HetrecFormatError(f"{path}: header {header} does not start with {list(columns)}")
        rows = []
        for lineno, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < len(columns):
                raise HetrecFormatError(f"{path}:{lineno}: expected {len(columns)} tab-separated fields, got {len(row)}")
            rows.append(row)
        return rows


def _int(path: Path, value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise HetrecFormatError(f"{path}: {what} {value!r} is not an integer") from None


def load_hetrec(path: str | Path, *, seed: int = 0, min_artists: int = 10) -> HetrecDataset:
    """Read a HetRec Last.fm 2k directory into canonical profiles (see module docstring)."""
    root = Path(path)
    if not root.is_dir():
        raise HetrecFormatError(f"{root}: not a directory (expected the unzipped hetrec2011-lastfm-2k folder)")
    # read in this order, so a broken copy reports the same file first
    artist_names = _read_names(root / "artists.dat", ("id", "name"), "utf-8", "artist id")
    tag_names = {
        t: name.strip() for t, name in _read_names(root / "tags.dat", ("tagID", "tagValue"), "iso-8859-1", "tag id").items()
    }
    listened = _read_listened(root / "user_artists.dat")
    tags = _ArtistTags.read(root / "user_taggedartists.dat", tag_names)
    friend_pairs = _read_friend_pairs(root / "user_friends.dat")

    profiles = [
        _profile(user, artists, seed, artist_names, tags)
        for user, artists in sorted(listened.items())
        if len(artists) >= min_artists
    ]
    kept = {p.user_id for p in profiles}
    friends = {
        user_id_for(u): {user_id_for(v) for v in vs if user_id_for(v) in kept}
        for u, vs in friend_pairs.items()
        if user_id_for(u) in kept
    }
    return HetrecDataset(profiles=profiles, friends=friends, seed=seed, path=root)


def _read_names(p: Path, columns: tuple[str, str], encoding: str, what: str) -> dict[int, str]:
    """``id -> name`` of ``artists.dat`` or ``tags.dat``."""
    names: dict[int, str] = {}
    for row in _read_table(p, columns, encoding):
        names[_int(p, row[0], what)] = row[1]
    return names


def _read_listened(p: Path) -> dict[int, dict[int, float]]:
    """``user -> {artist: play count}`` of ``user_artists.dat``."""
    listened: dict[int, dict[int, float]] = defaultdict(dict)
    for row in _read_table(p, ("userID", "artistID", "weight"), "utf-8"):
        listened[_int(p, row[0], "user id")][_int(p, row[1], "artist id")] = float(_int(p, row[2], "weight"))
    return listened


def _read_friend_pairs(p: Path) -> dict[int, set[int]]:
    """``user -> friends`` of ``user_friends.dat``, symmetric."""
    friend_pairs: dict[int, set[int]] = defaultdict(set)
    for row in _read_table(p, ("userID", "friendID"), "utf-8"):
        u, v = _int(p, row[0], "user id"), _int(p, row[1], "friend id")
        friend_pairs[u].add(v)
        friend_pairs[v].add(u)  # the file lists both directions; keep it symmetric anyway
    return friend_pairs


class _ArtistTags:
    """An artist's top tags by number of distinct taggers, the asking user's own tagging left out."""

    def __init__(
        self, taggers: dict[int, dict[int, set[int]]], own_tags: dict[tuple[int, int], set[int]], tag_names: dict[int, str]
    ):
        self.counts: dict[int, Counter] = {a: Counter({t: len(us) for t, us in tags.items()}) for a, tags in taggers.items()}
        self.own_tags = own_tags
        self.tag_names = tag_names

    @classmethod
    def read(cls, p: Path, tag_names: dict[int, str]) -> _ArtistTags:
        """From ``user_taggedartists.dat``."""
        # taggers[artist][tag] = set of users who gave that tag to that artist
        taggers: dict[int, dict[int, set[int]]] = defaultdict(lambda: defaultdict(set))
        own_tags: dict[tuple[int, int], set[int]] = defaultdict(set)
        for row in _read_table(p, ("userID", "artistID", "tagID"), "utf-8"):
            u, a, t = _int(p, row[0], "user id"), _int(p, row[1], "artist id"), _int(p, row[2], "tag id")
            taggers[a][t].add(u)
            own_tags[(u, a)].add(t)
        return cls(taggers, own_tags, tag_names)

    def top(self, user: int, artist: int) -> list[str]:
        counts = self.counts.get(artist)
        if not counts:
            return []
        mine = self.own_tags.get((user, artist))
        if mine:
            counts = counts.copy()
            for t in mine:
                counts[t] -= 1
        # ties broken by tag id so the result does not depend on dict order
        ranked = sorted((t for t, c in counts.items() if c > 0), key=lambda t: (-counts[t], t))
        return [self.tag_names.get(t, f"tag {t}") for t in ranked[:TOP_TAGS]]


def _profile(user: int, artists: dict[int, float], seed: int, artist_names: dict[int, str], tags: _ArtistTags) -> Profile:
    """One user's profile: their artists split at random into the playlists ``half-a`` and ``half-b``."""
    order = sorted(artists)
    # per-user RNG: a user's halves do not change when other users are added or removed
    random.Random(f"{seed}:{user}").shuffle(order)
    half = len(order) // 2
    halves = {"a": order[:half], "b": order[half:]}
    uid = user_id_for(user)
    tracks: dict[str, Track] = {}
    prof_artists: dict[str, Artist] = {}
    playlists = []
    for view, members in halves.items():
        items = []
        for a in members:
            aid, tid = str(a), f"lastfm-artist-{a}"
            name = artist_names.get(a, f"artist {a}")
            tracks[tid] = Track(id=tid, name=name, artist_ids=[aid])
            prof_artists[aid] = Artist(id=aid, name=name, genres=tags.top(user, a))
            items.append(PlaylistItem(track_id=tid, weight=artists[a]))
        playlists.append(Playlist(id=f"{uid}-half-{view}", name=f"half {view}", owner_id=uid, items=items))
    return Profile(
        user_id=uid,
        display_name=f"Last.fm user {user}",
        source=SOURCE,
        fetched_at="2011-05-01T00:00:00+00:00",
        playlists=playlists,
        tracks=tracks,
        artists=prof_artists,
    )


def view_members(profile: Profile, view: str) -> list[PlaylistItem]:
    """Items of one half (``a`` or ``b``) of a HetRec profile, or all items for ``full``."""
    if view == "full":
        return [it for pl in profile.playlists for it in pl.items]
    for pl in profile.playlists:
        if pl.id.endswith(f"-half-{view}"):
            return list(pl.items)
    raise KeyError(f"profile {profile.user_id} has no view {view!r}")
