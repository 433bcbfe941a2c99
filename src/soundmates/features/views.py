"""Two disjoint views of one user, for training the two-tower model.

A user's taste shown twice, from disjoint data: the model learns that the two
halves of one person belong together. Playlists are split whole into two halves
balanced by item count (greedy, largest first); a user with a single usable
playlist, or whose playlists cannot be balanced (one giant playlist beside
small ones), has their tracks split instead. Deterministic for a given seed.
"""

from __future__ import annotations

import hashlib

from soundmates.profiles import Playlist, Profile

# Below this share of usable items in the smaller half, split tracks rather than playlists.
MIN_HALF_SHARE = 0.25


def _rank(seed: int, *parts: object) -> str:
    return hashlib.blake2b(":".join(map(str, (seed, *parts))).encode(), digest_size=8).hexdigest()


def _usable(profile: Profile, pl: Playlist) -> int:
    return sum(1 for it in pl.items if it.track_id in profile.tracks)


def _half(profile: Profile, playlists: list[Playlist]) -> Profile:
    # model_construct: the parts were validated with the whole profile; tracks/artists are shared, read-only.
    return Profile.model_construct(
        schema_version=profile.schema_version,
        user_id=profile.user_id,
        display_name=profile.display_name,
        source=profile.source,
        fetched_at=profile.fetched_at,
        playlists=playlists,
        tracks=profile.tracks,
        artists=profile.artists,
    )


def _split_playlists(profile: Profile, seed: int) -> tuple[list[Playlist], list[Playlist], int, int]:
    order = sorted(
        range(len(profile.playlists)),
        key=lambda i: (-_usable(profile, profile.playlists[i]), _rank(seed, profile.user_id, profile.playlists[i].id, i)),
    )
    a, b, na, nb = [], [], 0, 0
    for i in order:
        pl = profile.playlists[i]
        n = _usable(profile, pl)
        if na <= nb:
            a.append(pl)
            na += n
        else:
            b.append(pl)
            nb += n
    return a, b, na, nb


def _split_tracks(profile: Profile, seed: int) -> tuple[list[Playlist], list[Playlist]]:
    """Every playlist's items dealt alternately to the two halves, in a seeded order."""
    a, b = [], []
    turn = 0
    for p_index, pl in enumerate(profile.playlists):
        order = sorted(range(len(pl.items)), key=lambda j: _rank(seed, profile.user_id, pl.id, p_index, j))
        idx_a: list[int] = []
        idx_b: list[int] = []
        for j in order:
            if pl.items[j].track_id not in profile.tracks:
                idx_a.append(j)  # unusable rows change no feature; keep them so the halves cover the profile
                continue
            (idx_a if turn % 2 == 0 else idx_b).append(j)
            turn += 1
        # Keep the playlist's original item order inside each half.
        items_a = [pl.items[j] for j in sorted(idx_a)]
        items_b = [pl.items[j] for j in sorted(idx_b)]
        # Skipped counters stay with half a, so the two halves still add up to the whole.
        a.append(pl.model_copy(update={"items": items_a}))
        b.append(pl.model_copy(update={"items": items_b, "skipped_episodes": 0, "skipped_local": 0, "skipped_null": 0}))
    return [p for p in a if p.items or p.skipped_episodes or p.skipped_local or p.skipped_null], [p for p in b if p.items]


def split_views(profile: Profile, seed: int = 0) -> tuple[Profile, Profile] | None:
    """Two profiles holding disjoint halves of ``profile``'s playlist items, or None if under 2 usable items."""
    sizes = [_usable(profile, pl) for pl in profile.playlists]
    total = sum(sizes)
    if total < 2:
        return None
    if sum(1 for n in sizes if n) >= 2:
        a, b, na, nb = _split_playlists(profile, seed)
        if min(na, nb) >= MIN_HALF_SHARE * total:
            return _half(profile, a), _half(profile, b)
    a, b = _split_tracks(profile, seed)
    return _half(profile, a), _half(profile, b)
