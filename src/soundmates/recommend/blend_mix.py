"""The blend's rules: which tracks go into a shared playlist for 2 to 10 people, in what order, and why.

Pure functions of the members' profiles (through :mod:`explain`'s taste weights) and of the served
pairwise match scores, so the rules are testable on hand-made profiles:

1. tracks several members have (most members first), up to half the playlist;
2. then, member by member (the one whose library is least represented so far goes next, so two people
   split the rest evenly and more people take turns), the best track of that member's library the
   others are likely to like: they play the same artist, listen to its genres, and match the member's
   taste (served score);
3. no artist more than :data:`MAX_PER_ARTIST` times; every track says why it is there.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from soundmates.recommend.blend_models import MAX_PER_ARTIST, BlendTrack
from soundmates.recommend.explain import Taste

# Weights of a candidate's score: how much the owner plays it vs how much the others would like it.
OWN_WEIGHT, OTHERS_WEIGHT = 0.3, 0.7
ARTIST_WEIGHT, GENRE_WEIGHT, MATCH_WEIGHT = 0.6, 0.3, 0.1
SHARED_MAX_SHARE = 0.5


@dataclass
class Member:
    """One person of a blend: their taste (explain.taste_of) and the name reasons use."""

    user_id: str
    name: str
    taste: Taste
    # artist id -> distinct tracks of theirs by that artist (filled by member_from)
    artist_tracks: Counter[str] = field(default_factory=Counter)


def member_from(user_id: str, name: str, taste: Taste) -> Member:
    tracks = taste.profile.tracks
    counts: Counter[str] = Counter()
    for tid in taste.track_weights:
        t = tracks.get(tid)
        if t is not None:
            counts.update(set(t.artist_ids))
    return Member(user_id, name, taste, counts)


def _names(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _track(member: Member, tid: str, reason: str, holders: list[str]) -> BlendTrack:
    prof = member.taste.profile
    t = prof.tracks.get(tid)
    artist_ids = list(t.artist_ids) if t is not None else []
    artists = [prof.artists[a].name if a in prof.artists and prof.artists[a].name else a for a in artist_ids]
    return BlendTrack(
        id=tid,
        name=(t.name if t is not None and t.name else tid),
        artists=artists,
        reason=reason,
        **{"from": holders},
        duration_ms=t.duration_ms if t is not None else None,
        artist_ids=artist_ids,
    )


def shared_tracks(members: Sequence[Member]) -> list[BlendTrack]:
    """Tracks in at least two members' libraries: held by the most members first, then by listening shared."""
    holders: dict[str, list[int]] = {}
    for i, m in enumerate(members):
        for tid in m.taste.track_weights:
            holders.setdefault(tid, []).append(i)
    common = [(tid, idx) for tid, idx in holders.items() if len(idx) >= 2]
    common.sort(key=lambda x: (-len(x[1]), -sum(members[i].taste.track_weights[x[0]] for i in x[1]), x[0]))
    out = []
    for tid, idx in common:
        names = [members[i].name for i in idx]
        out.append(_track(members[idx[0]], tid, f"shared by {_names(names)}", [members[i].user_id for i in idx]))
    return out


def _liking(owner: Member, other: Member, tid: str, match: float) -> tuple[float, str | None]:
    """How likely ``other`` likes ``owner``'s track ``tid`` (0..1), and the reason to show for it."""
    prof = owner.taste.profile
    t = prof.tracks.get(tid)
    artist_ids = list(t.artist_ids) if t is not None else []
    plays = max((other.artist_tracks.get(a, 0) for a in artist_ids), default=0)
    top_artist = max(other.taste.artist_weights.values(), default=0.0)
    artist_part = (
        max((other.taste.artist_weights.get(a, 0.0) for a in artist_ids), default=0.0) / top_artist if top_artist else 0.0
    )
    genres = [g for a in artist_ids if a in prof.artists for g in (prof.artists[a].genres or [])]
    top_genre = max(other.taste.genre_weights.values(), default=0.0)
    best_genre = max(genres, key=lambda g: (other.taste.genre_weights.get(g, 0.0), g), default=None)
    genre_w = other.taste.genre_weights.get(best_genre, 0.0) if best_genre else 0.0
    genre_part = genre_w / top_genre if top_genre else 0.0
    score = ARTIST_WEIGHT * artist_part + GENRE_WEIGHT * genre_part + MATCH_WEIGHT * max(0.0, match)
    if plays:
        return score, f"{other.name} plays {plays} of this artist's tracks"
    if genre_w > 0 and best_genre:
        return score, f"{other.name} listens to {best_genre} ({genre_w:.0%} of their listening)"
    return score, None


def candidates(members: Sequence[Member], i: int, compat: Sequence[Sequence[float]], taken: set[str]) -> list[BlendTrack]:
    """Member ``i``'s own tracks (in nobody else's library), best for the others first, each with its reason."""
    owner = members[i]
    others = [j for j in range(len(members)) if j != i]
    top_own = max(owner.taste.track_weights.values(), default=0.0) or 1.0
    scored = []
    for tid, w in owner.taste.track_weights.items():
        if tid in taken or any(tid in members[j].taste.track_weights for j in others):
            continue
        likes = [(_liking(owner, members[j], tid, compat[j][i]), j) for j in others]
        others_part = sum(s for (s, _), _j in likes) / len(likes)
        reasons = sorted(((s, r) for (s, r), _j in likes if r), key=lambda x: -x[0])
        if reasons:
            reason = f"from {owner.name}: {reasons[0][1]}"
        else:
            best = max(others, key=lambda j: compat[j][i])
            reason = f"from {owner.name}: one of their favourites; {members[best].name}'s taste matches theirs at {compat[best][i]:.2f}"
        scored.append((OWN_WEIGHT * w / top_own + OTHERS_WEIGHT * others_part, tid, reason))
    scored.sort(key=lambda x: (-x[0], x[1]))
    return [_track(owner, tid, reason, [owner.user_id]) for _, tid, reason in scored]


def _fits(track: BlendTrack, artist_count: Counter[str]) -> bool:
    return all(artist_count[a] < MAX_PER_ARTIST for a in track.artist_ids)


def _take(track: BlendTrack, chosen: list[BlendTrack], artist_count: Counter[str], contributed: Counter[str]) -> None:
    chosen.append(track)
    artist_count.update(set(track.artist_ids))
    contributed.update(track.from_)


def compose(members: Sequence[Member], compat: Sequence[Sequence[float]], size: int) -> list[BlendTrack]:
    """The blend's tracks, in order: shared ones first, then the members' own picks, balanced (see the module doc)."""
    chosen: list[BlendTrack] = []
    artist_count: Counter[str] = Counter()
    contributed: Counter[str] = Counter()
    shared_cap = max(1, int(size * SHARED_MAX_SHARE))
    for t in shared_tracks(members):
        if len(chosen) >= shared_cap:
            break
        if _fits(t, artist_count):
            _take(t, chosen, artist_count, contributed)
    taken = {t.id for t in chosen}
    queues = [candidates(members, i, compat, taken) for i in range(len(members))]
    while len(chosen) < size:
        order = sorted(range(len(members)), key=lambda i: (contributed[members[i].user_id], i))
        for i in order:
            queue = queues[i]
            while queue and not _fits(queue[0], artist_count):
                queue.pop(0)
            if queue:
                _take(queue.pop(0), chosen, artist_count, contributed)
                break
        else:
            break  # nobody has a track left that fits
    return chosen
