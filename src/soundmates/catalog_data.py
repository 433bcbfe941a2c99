"""The shipped artist→genre table (``soundmates/data/artists_genres.csv.gz``), read by world/ and export/.

Real artist names, their Spotify genres and popularity from a 2020 Spotify dump (see
``soundmates/data/SOURCE.md``). Floor 1: it reads package data only, so the local world and
the export importer share it without the importer depending on the simulator.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np


@dataclass(frozen=True)
class ArtistTable:
    names: list[str]
    popularity: np.ndarray  # (n,) int16, 0..100
    genres: list[tuple[str, ...]]


def read_gz_csv(name: str) -> list[dict[str, str]]:
    """Rows of a gzipped CSV shipped in ``soundmates.data``."""
    raw = resources.files("soundmates.data").joinpath(name).read_bytes()
    text = gzip.decompress(raw).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@lru_cache(maxsize=1)
def artists() -> ArtistTable:
    rows = read_gz_csv("artists_genres.csv.gz")
    return ArtistTable(
        names=[r["name"] for r in rows],
        popularity=np.array([int(r["popularity"]) for r in rows], dtype=np.int16),
        genres=[tuple(g for g in r["genres"].split("|") if g) for r in rows],
    )


_SPACES = re.compile(r"\s+")


def normalise_artist_name(name: str) -> str:
    """Key for matching artist names from other sources (exports, Last.fm): NFKC, casefolded, single spaces."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", name).casefold()).strip()


@lru_cache(maxsize=1)
def artist_genre_table() -> dict[str, list[str]]:
    """Normalised artist name -> its Spotify genres (``[]`` = the data says none)."""
    table = artists()
    out: dict[str, list[str]] = {}
    for name, gs in zip(table.names, table.genres):
        key = normalise_artist_name(name)
        # Two spellings can normalise alike: keep the one that knows more genres.
        if key not in out or len(gs) > len(out[key]):
            out[key] = list(gs)
    return out
