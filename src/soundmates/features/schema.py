"""Column contract of the feature groups the features stage writes.

This module is the contract for the store (which validates against the
pyarrow schemas) and the model (which reads ``user_features``). It imports
nothing heavy, so anything may import it. Change it only additively.

Conventions
-----------
* Embeddings (``genre_emb``, ``artist_emb``, ``playlist_emb``) are
  ``list<float32>`` of the encoder's dimension D (384 for all-MiniLM-L6-v2),
  L2-normalised; a missing embedding is a zero vector and its name is listed
  in ``missing`` (a model can mask it; NaN would poison a dot product).
* Scalars ``year_mean, year_std, mean_popularity, explicit_ratio`` are float64
  with NaN = missing (also listed in ``missing``).
* ``year_hist`` is ``list<float32>`` of ``len(YEAR_BINS)`` fractions summing to 1
  (all zeros when no track has a release year).
* Raw bags: ``genre_names``/``genre_weights`` and ``artist_ids``/``artist_weights``
  are parallel lists sorted by weight descending then name, so models can
  learn their own genre and artist embeddings.
* ``combined`` is the concatenation described by :func:`combined_layout`,
  standardised with the persisted scaler (NaN -> 0 after scaling = the fitted mean).
"""

from __future__ import annotations

import pyarrow as pa

# --- groups -----------------------------------------------------------------
USER_FEATURES = "user_features"
USER_PROFILES = "user_profiles"

USER_FEATURES_KEYS = ["user_id", "view"]
USER_PROFILES_KEYS = ["user_id"]

# Rows per user in user_features: the whole profile and two disjoint halves.
VIEWS = ("full", "a", "b")
VIEW_FULL, VIEW_A, VIEW_B = VIEWS

# --- release-year histogram bins --------------------------------------------
# Decades; the first bin takes everything before 1960, the last everything from 2020.
YEAR_BIN_EDGES: tuple[int, ...] = (1960, 1970, 1980, 1990, 2000, 2010, 2020)
YEAR_BINS: tuple[str, ...] = ("<1960", "1960s", "1970s", "1980s", "1990s", "2000s", "2010s", "2020s+")

# --- user_features ------------------------------------------------------------
EMBEDDING_COLUMNS = ["genre_emb", "artist_emb", "playlist_emb"]
SCALAR_COLUMNS = ["year_mean", "year_std", "n_tracks", "n_playlists", "mean_popularity", "explicit_ratio"]
BAG_COLUMNS = ["genre_names", "genre_weights", "artist_ids", "artist_weights"]

FEATURE_COLUMNS = [
    "genre_emb",
    "artist_emb",
    "playlist_emb",
    "year_mean",
    "year_std",
    "year_hist",
    "n_tracks",
    "n_playlists",
    "mean_popularity",
    "explicit_ratio",
    "genre_names",
    "genre_weights",
    "artist_ids",
    "artist_weights",
    "missing",
    "combined",
    "profile_hash",
]

_f32_list = pa.list_(pa.float32())
_str_list = pa.list_(pa.string())

USER_FEATURES_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("view", pa.string(), nullable=False),
        pa.field("genre_emb", _f32_list),
        pa.field("artist_emb", _f32_list),
        pa.field("playlist_emb", _f32_list),
        pa.field("year_mean", pa.float64()),
        pa.field("year_std", pa.float64()),
        pa.field("year_hist", _f32_list),
        pa.field("n_tracks", pa.int64()),
        pa.field("n_playlists", pa.int64()),
        pa.field("mean_popularity", pa.float64()),
        pa.field("explicit_ratio", pa.float64()),
        pa.field("genre_names", _str_list),
        pa.field("genre_weights", _f32_list),
        pa.field("artist_ids", _str_list),
        pa.field("artist_weights", _f32_list),
        pa.field("missing", _str_list),
        pa.field("combined", _f32_list),
        pa.field("profile_hash", pa.string()),
    ]
)

# Names recorded in ``missing`` (one per feature that could not be computed).
MISSING_GENRES = "genres"  # no artist of any track had genres (development-mode API) -> genre_emb, playlist_emb zero
MISSING_ARTISTS = "artists"  # no artist name known -> artist_emb zero
MISSING_YEARS = "release_year"  # no track had a release year -> year_mean/std NaN, year_hist zeros
MISSING_POPULARITY = "popularity"  # no track had popularity -> mean_popularity NaN
MISSING_EXPLICIT = "explicit"  # no track said explicit or not -> explicit_ratio NaN
MISSING_NAMES = (MISSING_GENRES, MISSING_ARTISTS, MISSING_YEARS, MISSING_POPULARITY, MISSING_EXPLICIT)

# --- user_profiles --------------------------------------------------------------
PROFILE_COLUMNS = [
    "display_name",
    "source",
    "n_playlists",
    "n_tracks",
    "top_genres_json",  # [{"genre", "weight"}] weight = share of genre occurrences, descending
    "top_artists_json",  # [{"id", "name", "count"}] count = track-artist occurrences (item-weighted), descending
    "top_tracks_json",  # [{"id", "name", "artists": [names], "count"}]
    "year_hist_json",  # {"bins": YEAR_BINS, "values": [fractions]}
    "profile_hash",
    "updated_at",  # ISO-8601 UTC
]

USER_PROFILES_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("display_name", pa.string()),
        pa.field("source", pa.string()),
        pa.field("n_playlists", pa.int64()),
        pa.field("n_tracks", pa.int64()),
        pa.field("top_genres_json", pa.string()),
        pa.field("top_artists_json", pa.string()),
        pa.field("top_tracks_json", pa.string()),
        pa.field("year_hist_json", pa.string()),
        pa.field("profile_hash", pa.string()),
        pa.field("updated_at", pa.string()),
    ]
)

SCHEMAS: dict[str, pa.Schema] = {USER_FEATURES: USER_FEATURES_SCHEMA, USER_PROFILES: USER_PROFILES_SCHEMA}
PRIMARY_KEYS: dict[str, list[str]] = {USER_FEATURES: USER_FEATURES_KEYS, USER_PROFILES: USER_PROFILES_KEYS}

# Scalar block of ``combined``, in this order, after the three embeddings and year_hist.
COMBINED_SCALARS = ["year_mean", "year_std", "n_tracks_log", "n_playlists_log", "mean_popularity", "explicit_ratio"]


def combined_layout(dim: int) -> list[tuple[str, int, int]]:
    """(name, start, stop) slices of ``combined`` for an encoder of dimension ``dim``."""
    out, pos = [], 0
    for name, width in (
        ("genre_emb", dim),
        ("artist_emb", dim),
        ("playlist_emb", dim),
        ("year_hist", len(YEAR_BINS)),
        *((s, 1) for s in COMBINED_SCALARS),
    ):
        out.append((name, pos, pos + width))
        pos += width
    return out


def combined_dim(dim: int) -> int:
    return combined_layout(dim)[-1][2]
