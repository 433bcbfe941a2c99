"""What one profile counts before any encoding: :class:`TasteBags` and the walk that fills them (:func:`taste_bags`).

Pure Python, no model: :mod:`soundmates.features.taste` turns the bags into vectors, and
recommend/'s explanations read the same bags, so both count the same way.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeGuard

from soundmates.profiles import AnyProfile

# Release years outside this range are data errors (0, 9999), treated as unknown.
MIN_YEAR = 1800


@dataclass
class TasteBags:
    """What one profile (or one half of it) counts, before any encoding."""

    user_id: str
    genre_counts: Counter = field(default_factory=Counter)  # genre -> track-artist occurrences x item weight
    artist_counts: Counter = field(default_factory=Counter)  # artist id -> track-artist occurrences x item weight
    track_counts: Counter = field(default_factory=Counter)  # track id -> summed item weight
    playlist_genres: list[tuple[int, Counter]] = field(default_factory=list)  # (usable items, genre counts) per playlist
    years: list[tuple[float, float]] = field(default_factory=list)  # (year, item weight)
    popularity: list[tuple[float, float]] = field(default_factory=list)  # (popularity, item weight)
    explicit: list[tuple[float, float]] = field(default_factory=list)  # (0/1, item weight)
    n_tracks: int = 0  # usable playlist items (music tracks present in profile.tracks)
    n_playlists: int = 0  # playlists with at least one usable item
    n_playlists_total: int = 0
    skipped: Counter = field(default_factory=Counter)  # episodes / local / null / unknown track
    genres_known: bool = False  # at least one artist had a genre list (possibly empty)
    _top_artists: dict = field(default_factory=dict, repr=False)  # n -> top_artist_ids, computed once


def _valid_year(y: int | None, max_year: int) -> TypeGuard[int]:
    return y is not None and MIN_YEAR <= y <= max_year


def taste_bags(profile: AnyProfile) -> TasteBags:
    """Count a profile's genres, artists, tracks, years, popularity and explicit flags."""
    max_year = datetime.now(UTC).year + 1
    bags = TasteBags(user_id=profile.user_id, n_playlists_total=len(profile.playlists))
    tracks, artists = profile.tracks, profile.artists
    for pl in profile.playlists:
        bags.skipped["episodes"] += pl.skipped_episodes
        bags.skipped["local"] += pl.skipped_local
        bags.skipped["null"] += pl.skipped_null
        pl_genres: Counter = Counter()
        usable = 0
        for item in pl.items:
            track = tracks.get(item.track_id)
            w = float(item.weight)
            if track is None or not math.isfinite(w) or w <= 0:
                bags.skipped["unknown_track" if track is None else "bad_weight"] += 1
                continue
            usable += 1
            bags.track_counts[track.id] += w  # type: ignore[assignment]  # Counter holds float weights; typeshed types its values int
            for aid in track.artist_ids:
                bags.artist_counts[aid] += w  # type: ignore[assignment]  # Counter holds float weights; typeshed types its values int
                artist = artists.get(aid)
                if artist is not None and artist.genres is not None:
                    bags.genres_known = True
                    for g in artist.genres:
                        pl_genres[g] += w  # type: ignore[assignment]  # Counter holds float weights; typeshed types its values int
            if _valid_year(track.release_year, max_year):
                bags.years.append((float(track.release_year), w))
            if track.popularity is not None:
                bags.popularity.append((float(track.popularity), w))
            if track.explicit is not None:
                bags.explicit.append((1.0 if track.explicit else 0.0, w))
        if usable:
            bags.n_playlists += 1
            bags.n_tracks += usable
            bags.genre_counts.update(pl_genres)
            bags.playlist_genres.append((usable, pl_genres))
    return bags


def top_artist_ids(bags: TasteBags, profile: AnyProfile, n: int) -> list[str]:
    """The n most frequent artists whose name is known (ties: by id, so the choice is deterministic)."""
    cached = bags._top_artists.get(n)
    if cached is not None:
        return cached
    ranked = sorted(
        ((aid, c) for aid, c in bags.artist_counts.items() if aid in profile.artists and profile.artists[aid].name),
        key=lambda kv: (-kv[1], kv[0]),
    )
    bags._top_artists[n] = top = [aid for aid, _ in ranked[: max(n, 0)]]
    return top


def texts_needed(bags: TasteBags, profile: AnyProfile, top_n: int) -> set[str]:
    """Every string :func:`features_from_bags` will look up for these bags."""
    return set(bags.genre_counts) | {profile.artists[a].name for a in top_artist_ids(bags, profile, top_n)}
