"""Why two users match, computed from their canonical profiles.

Counts come from :func:`soundmates.features.taste.taste_bags`, the same walk the features
stage uses (item weight x track-artist occurrence), so an explanation weighs a genre exactly
as the embedding did. Everything here is by id: an artist is "shared" only if both profiles
hold the same Spotify artist id, never because two names look alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from soundmates.features import schema as S
from soundmates.features.taste import taste_bags, year_histogram
from soundmates.profiles import Profile
from soundmates.recommend.models import ClosestArtist, GenreOverlap, SharedArtist, SharedGenre, SharedTrack

# Below these, a profile says little; matches are shown with a warning.
THIN_PLAYLISTS = 3
THIN_TRACKS = 30
# Their artists considered for "closest to your taste": the heaviest ones (bounds encoder work).
CLOSEST_CANDIDATES = 30


@dataclass
class Taste:
    """One profile's normalised weights (each dict sums to 1) and its release-year histogram."""

    profile: Profile
    genre_weights: dict[str, float]
    artist_weights: dict[str, float]
    track_weights: dict[str, float]
    year_hist: np.ndarray  # fractions per schema.YEAR_BINS; zeros when no year is known
    n_playlists: int
    n_tracks: int
    genres_known: bool

    @property
    def user_id(self) -> str:
        return self.profile.user_id

    @property
    def years_known(self) -> bool:
        return bool(self.year_hist.sum() > 0)


def _normalised(counts) -> dict[str, float]:
    total = float(sum(counts.values()))
    return {k: float(v) / total for k, v in counts.items()} if total > 0 else {}


def taste_of(profile: Profile) -> Taste:
    bags = taste_bags(profile)
    return Taste(
        profile=profile,
        genre_weights=_normalised(bags.genre_counts),
        artist_weights=_normalised(bags.artist_counts),
        track_weights=_normalised(bags.track_counts),
        year_hist=year_histogram(bags.years).astype(np.float64),
        n_playlists=int(bags.n_playlists),
        n_tracks=int(bags.n_tracks),
        genres_known=bool(bags.genres_known),
    )


def _artist_name(aid: str, *profiles: Profile) -> str:
    for p in profiles:
        a = p.artists.get(aid)
        if a is not None and a.name:
            return a.name
    return aid


def _track_artists(tid: str, *profiles: Profile) -> tuple[str, list[str]]:
    for p in profiles:
        t = p.tracks.get(tid)
        if t is not None:
            return t.name, [_artist_name(a, *profiles) for a in t.artist_ids]
    return tid, []


def shared_genres(you: Taste, them: Taste, top: int = 10) -> list[SharedGenre]:
    """Genres both listen to; weight = the share of listening both have in it (min of the two shares)."""
    common = you.genre_weights.keys() & them.genre_weights.keys()
    ranked = sorted(((g, min(you.genre_weights[g], them.genre_weights[g])) for g in common), key=lambda x: (-x[1], x[0]))
    return [SharedGenre(genre=g, weight=round(w, 4)) for g, w in ranked[:top]]


def shared_artists(you: Taste, them: Taste, top: int = 10) -> list[SharedArtist]:
    """Artists (same Spotify id) in both profiles, heaviest shared listening first."""
    common = you.artist_weights.keys() & them.artist_weights.keys()
    ranked = sorted(((a, min(you.artist_weights[a], them.artist_weights[a])) for a in common), key=lambda x: (-x[1], x[0]))
    return [SharedArtist(id=a, name=_artist_name(a, them.profile, you.profile), weight=round(w, 4)) for a, w in ranked[:top]]


def shared_tracks(you: Taste, them: Taste, top: int = 10) -> list[SharedTrack]:
    """Tracks (same id) on both users' playlists."""
    common = you.track_weights.keys() & them.track_weights.keys()
    ranked = sorted(common, key=lambda t: (-min(you.track_weights[t], them.track_weights[t]), t))
    out = []
    for tid in ranked[:top]:
        name, artists = _track_artists(tid, them.profile, you.profile)
        out.append(SharedTrack(id=tid, name=name, artists=artists))
    return out


def era_overlap(you: Taste, them: Taste) -> float | None:
    """Overlap of the two release-year histograms (sum of bin-wise minima): 1 = same eras, 0 = none shared."""
    if not (you.years_known and them.years_known):
        return None
    return round(float(np.minimum(you.year_hist, them.year_hist).sum()), 4)


def genre_overlap(you: Taste, them: Taste, top: int = 15) -> list[GenreOverlap]:
    """Both sides' weights for the union of each side's top genres (for a side-by-side chart)."""

    def tops(t: Taste) -> list[str]:
        return [g for g, _ in sorted(t.genre_weights.items(), key=lambda x: (-x[1], x[0]))[:top]]

    genres = list(dict.fromkeys(tops(you) + tops(them)))
    rows = [
        GenreOverlap(
            genre=g, weight_user=round(you.genre_weights.get(g, 0.0), 4), weight_other=round(them.genre_weights.get(g, 0.0), 4)
        )
        for g in genres
    ]
    return sorted(rows, key=lambda r: (-(r.weight_user + r.weight_other), r.genre))


# --- closest artists -------------------------------------------------------------------------------------------
# ``texts -> (len, dim) unit vectors`` (TextEncoder.encode) or ``-> {text: vector}`` with misses left out
# (a cache-only lookup): the same vectors the features stage used.
TextVectors = Callable[[list[str]], "np.ndarray | Mapping[str, np.ndarray]"]


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


def _candidates(you: Taste, them: Taste) -> list[str]:
    """Their heaviest artists you don't already have (the shared ones are listed separately), names known."""
    ranked = sorted(them.artist_weights.items(), key=lambda x: (-x[1], x[0]))
    return [a for a, _ in ranked if a not in you.artist_weights and a in them.profile.artists][:CLOSEST_CANDIDATES]


def closest_artists(you: Taste, them: Taste, text_vectors: TextVectors | None = None, top: int = 5) -> list[ClosestArtist]:
    """Their artists (not already yours) closest to your taste.

    With ``text_vectors`` (the features encoder): an artist with genres is the mean of its genre
    vectors, compared with your weighted genre vector (what ``genre_emb`` is); an artist without
    genres (common since the 2026 API changes) is its name's vector, compared with the mean of
    your top artists' name vectors. Without an encoder (or when it knows none of the texts): cosine of the artist's genres with your
    genre weights, so the answer never depends on a model being available.
    """
    cands = _candidates(you, them)
    if not cands:
        return []
    artists = them.profile.artists
    scored: list[tuple[str, float]] = []
    if text_vectors is not None:
        your_genres = sorted(you.genre_weights, key=lambda g: (-you.genre_weights[g], g))[:50]
        your_artists = [
            a
            for a, _ in sorted(you.artist_weights.items(), key=lambda x: (-x[1], x[0]))
            if a in you.profile.artists and you.profile.artists[a].name
        ][:10]
        text_set = set(your_genres) | {you.profile.artists[a].name for a in your_artists}
        for a in cands:
            text_set |= set(artists[a].genres or []) if artists[a].genres else {artists[a].name}
        texts = sorted(t for t in text_set if t)
        got = text_vectors(texts) if texts else {}
        if not isinstance(got, Mapping):
            got = dict(zip(texts, np.asarray(got, dtype=np.float64)))
        # A text missing from the answer (e.g. a cache-only lookup) is simply not used.
        vec = {t: np.asarray(v, dtype=np.float64) for t, v in got.items()}
        known_genres = [g for g in your_genres if g in vec]
        # A sum of a non-empty list of arrays is an array (the int start 0 only types it as possibly int).
        genre_vec = cast(np.ndarray, sum(you.genre_weights[g] * vec[g] for g in known_genres)) if known_genres else None
        names = [you.profile.artists[a].name for a in your_artists if you.profile.artists[a].name in vec]
        name_vec = np.mean([vec[n] for n in names], axis=0) if names else None
        for a in cands:
            genres = [g for g in (artists[a].genres or []) if g in vec]
            if genres and genre_vec is not None:
                scored.append((a, _cos(np.mean([vec[g] for g in genres], axis=0), genre_vec)))
            elif not artists[a].genres and artists[a].name in vec and name_vec is not None:
                scored.append((a, _cos(vec[artists[a].name], name_vec)))
    if not scored:  # no encoder, or none of the texts known to it: compare genre bags directly
        norm_you = math.sqrt(sum(w * w for w in you.genre_weights.values()))
        for a in cands:
            genres = artists[a].genres or []
            if genres and norm_you > 0:
                dot = sum(you.genre_weights.get(g, 0.0) for g in genres) / math.sqrt(len(genres))
                scored.append((a, dot / norm_you))
    scored.sort(key=lambda x: (-x[1], x[0]))
    return [ClosestArtist(id=a, name=artists[a].name, similarity=round(s, 4)) for a, s in scored[:top] if s > 0]


# --- warnings and diversity ---------------------------------------------------------------------------------------
def thin_profile_warnings(taste: Taste, who: str = "your profile") -> list[str]:
    out = []
    if taste.n_playlists < THIN_PLAYLISTS or taste.n_tracks < THIN_TRACKS:
        out.append(
            f"{who} is thin ({taste.n_playlists} playlist(s), {taste.n_tracks} track(s)): "
            f"matches are less certain; more public playlists would help"
        )
    if not taste.genres_known or not taste.genre_weights:
        out.append(
            f"no genres are known for the artists in {who} (Spotify often omits them since 2026): "
            "matches lean on artist names and eras"
        )
    return out


def mmr_order(
    candidate_ids: Sequence[str],
    relevance: Sequence[float],
    vectors: np.ndarray,
    k: int,
    diversity: float,
) -> list[int]:
    """Maximal marginal relevance: trade relevance for difference from those already picked.

    ``diversity`` 0 = pure relevance order; 1 = only difference. ``vectors`` are unit rows.
    """
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must be between 0 and 1, got {diversity}")
    n = len(candidate_ids)
    rel = np.asarray(relevance, dtype=np.float64)
    if diversity == 0.0 or n <= 1:
        return list(np.argsort(-rel, kind="stable")[:k])
    sims = vectors @ vectors.T
    chosen: list[int] = []
    left = list(range(n))
    while left and len(chosen) < k:
        if chosen:
            redundancy = sims[np.ix_(left, chosen)].max(axis=1)
        else:
            redundancy = np.zeros(len(left))
        score = (1.0 - diversity) * rel[left] - diversity * redundancy
        pick = left[int(np.argmax(score))]
        chosen.append(pick)
        left.remove(pick)
    return chosen


YEAR_BIN_LABELS = list(S.YEAR_BINS)
