"""The real-name catalog behind the local Spotify world.

Genres come from Every Noise at Once (with the genre-map coordinates), artists and
their genre sets from the shipped table in ``soundmates.catalog_data`` (shared with export/).
Everything here is loaded once per process (cached) and is independent of any
world's seed: like Spotify's own catalog, every world shares it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from soundmates.catalog_data import (
    ArtistTable,
    artist_genre_table,
    artists,
    normalise_artist_name,
    read_gz_csv,
)

__all__ = ["ArtistTable", "artist_genre_table", "artists", "communities", "genres", "normalise_artist_name"]

N_COMMUNITIES = 24
_KMEANS_ITERATIONS = 30


@dataclass(frozen=True)
class GenreTable:
    names: list[str]
    coords: np.ndarray  # (n, 2) float32: top_px, left_px on the Every Noise map
    index: dict[str, int]


@dataclass(frozen=True)
class Communities:
    """Genre communities: clusters of nearby genres on the Every Noise map."""

    genre_community: np.ndarray  # (n_genres,) int: community of each genre
    centroids: np.ndarray  # (k, 2)
    artist_community: np.ndarray  # (n_artists,) int
    artist_has_genres: np.ndarray  # (n_artists,) bool
    members: list[np.ndarray]  # artist indices per community
    labels: list[str]  # a readable name per community (its most common genre)


@lru_cache(maxsize=1)
def genres() -> GenreTable:
    rows = read_gz_csv("everynoise_genres.csv.gz")
    names = [r["genre"] for r in rows]
    coords = np.array([[float(r["top_px"]), float(r["left_px"])] for r in rows], dtype=np.float32)
    return GenreTable(names=names, coords=coords, index={n: i for i, n in enumerate(names)})


def _kmeans(points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic k-means (farthest-point init), so communities never depend on a library's RNG."""
    pts = points.astype(np.float64)
    centroids = [pts[0]]
    dist = np.linalg.norm(pts - pts[0], axis=1)
    for _ in range(1, k):
        centroids.append(pts[int(np.argmax(dist))])
        dist = np.minimum(dist, np.linalg.norm(pts - centroids[-1], axis=1))
    c = np.stack(centroids)
    labels = np.zeros(len(pts), dtype=np.int64)
    for _ in range(_KMEANS_ITERATIONS):
        d = ((pts[:, None, :] - c[None, :, :]) ** 2).sum(-1)
        new_labels = d.argmin(1)
        if np.array_equal(new_labels, labels) and _ > 0:
            break
        labels = new_labels
        for j in range(k):
            sel = pts[labels == j]
            if len(sel):
                c[j] = sel.mean(0)
    return labels, c


def _stable_hash(text: str) -> int:
    import zlib

    return zlib.crc32(text.encode("utf-8"))


@lru_cache(maxsize=4)
def communities(k: int = N_COMMUNITIES) -> Communities:
    g = genres()
    a = artists()
    # Both map axes span a few thousand pixels; scale them alike so neither dominates.
    coords = (g.coords - g.coords.mean(0)) / g.coords.std(0)
    genre_comm, centroids = _kmeans(coords, k)
    artist_comm = np.empty(len(a.names), dtype=np.int64)
    has_genres = np.zeros(len(a.names), dtype=bool)
    label_votes: list[dict[str, int]] = [dict() for _ in range(k)]
    for i, (name, gs) in enumerate(zip(a.names, a.genres)):
        votes = np.zeros(k)
        for genre in gs:
            j = g.index.get(genre)
            if j is not None:
                votes[genre_comm[j]] += 1
        has_genres[i] = bool(gs)
        if votes.any():
            artist_comm[i] = int(votes.argmax())
            for genre in gs:
                label_votes[artist_comm[i]][genre] = label_votes[artist_comm[i]].get(genre, 0) + 1
        else:
            # No (mapped) genre: the artist still belongs somewhere, just invisibly to a genre feature.
            artist_comm[i] = _stable_hash(name) % k
    members = [np.flatnonzero(artist_comm == j) for j in range(k)]
    labels = [max(v, key=v.__getitem__) if v else f"community {j}" for j, v in enumerate(label_votes)]
    return Communities(
        genre_community=genre_comm,
        centroids=centroids,
        artist_community=artist_comm,
        artist_has_genres=has_genres,
        members=members,
        labels=labels,
    )
