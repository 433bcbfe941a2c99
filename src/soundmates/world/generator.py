"""The local Spotify world's public names, gathered from its rooms (what other stages and tests import).

Everything is a pure function of ``(seed, user index)`` (users) or of the catalog seed (artists,
albums, tracks), so a world of 1,000,000 users needs no more than ``users.txt`` and the ground
truth on disk: the server derives each user's playlists on demand. ``generate_world`` streams
``users.txt`` and the ground truth in chunks.

The rooms (import from them inside ``world/``; from here elsewhere):
- ``params``: rates of mess, showcase users, size limits. ``vocab``: the words names are drawn from.
- ``discography``: albums and tracks of the catalog's artists, by number.
- ``users``: ids, display names and hidden taste, drawn in blocks.
- ``playlists``: each user's public playlists, drawn from their taste.
- ``directory``: a world directory (``generate_world`` writes it, ``World`` reads it).
- ``describe``: what the API will serve for a user, as exact counts.
"""

from __future__ import annotations

from soundmates.world.describe import describe_user, find_users
from soundmates.world.directory import TRUTH_DIR, WORLD_FORMAT, World, WorldError, generate_world, iter_user_ids
from soundmates.world.discography import (
    CATALOG_SEED,
    MAX_ALBUMS,
    MAX_TRACKS,
    AlbumSpec,
    CatalogArrays,
    TrackSpec,
    album_by_n,
    album_n,
    artist_by_id,
    artist_id,
    catalog_arrays,
    catalog_track,
    track_by_id,
    track_by_n,
    track_n,
)
from soundmates.world.params import DEFAULT_PARAMS, MAX_PLAYLISTS, MAX_USERS, SHOWCASE
from soundmates.world.playlists import (
    EPISODES_PER_SHOW,
    ROW_EPISODE,
    ROW_LOCAL,
    ROW_NULL,
    ROW_TRACK,
    PlaylistSpec,
    playlist_n,
    user_playlists,
)
from soundmates.world.users import (
    ERA_BINS,
    MAX_TASTE_COMMUNITIES,
    USER_BLOCK,
    Taste,
    UserSpec,
    taste_matrix,
    taste_vector,
    user_id_for,
    user_spec,
)

__all__ = [
    "CATALOG_SEED",
    "DEFAULT_PARAMS",
    "EPISODES_PER_SHOW",
    "ERA_BINS",
    "MAX_ALBUMS",
    "MAX_PLAYLISTS",
    "MAX_TASTE_COMMUNITIES",
    "MAX_TRACKS",
    "MAX_USERS",
    "ROW_EPISODE",
    "ROW_LOCAL",
    "ROW_NULL",
    "ROW_TRACK",
    "SHOWCASE",
    "TRUTH_DIR",
    "USER_BLOCK",
    "WORLD_FORMAT",
    "AlbumSpec",
    "CatalogArrays",
    "PlaylistSpec",
    "Taste",
    "TrackSpec",
    "UserSpec",
    "World",
    "WorldError",
    "album_by_n",
    "album_n",
    "artist_by_id",
    "artist_id",
    "catalog_arrays",
    "catalog_track",
    "describe_user",
    "find_users",
    "generate_world",
    "iter_user_ids",
    "playlist_n",
    "taste_matrix",
    "taste_vector",
    "track_by_id",
    "track_by_n",
    "track_n",
    "user_id_for",
    "user_playlists",
    "user_spec",
]
