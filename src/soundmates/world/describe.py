"""What the local API will serve for a user, as counts an ingest test can assert exactly.

``describe_user`` derives them from the world (never from the server or the ingest);
``find_users`` picks users by those counts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from soundmates.world.directory import World
from soundmates.world.discography import MAX_ALBUMS, MAX_TRACKS, catalog_arrays
from soundmates.world.playlists import ROW_EPISODE, ROW_LOCAL, ROW_NULL, ROW_TRACK


def describe_user(world_dir: str | Path | World, user_id: str) -> dict:
    """What the API will serve for ``user_id``: counts an ingest test can assert exactly.

    ``tracks`` counts track rows (duplicates included), ``distinct_tracks`` / ``distinct_artists``
    what a profile should end up holding (featured artists included).
    """
    world = world_dir if isinstance(world_dir, World) else World(world_dir)
    i = world.user_index(user_id)
    if i is None:
        raise KeyError(f"no user {user_id!r} in {world.dir}")
    user = world.user(i)
    pls = world.playlists(i)
    per: list[dict[str, Any]] = []
    track_set: set[int] = set()
    artist_set: set[int] = set()
    for pl in pls:
        counts = np.bincount(pl.kinds, minlength=4)
        tracks = pl.values[pl.kinds == ROW_TRACK]
        track_set.update(int(t) for t in tracks)
        per.append(
            {
                "id": pl.id,
                "name": pl.name,
                "items": pl.total,
                "tracks": int(counts[ROW_TRACK]),
                "episodes": int(counts[ROW_EPISODE]),
                "local": int(counts[ROW_LOCAL]),
                "null": int(counts[ROW_NULL]),
            }
        )
    if track_set:
        arr = catalog_arrays()
        tn = np.fromiter(track_set, dtype=np.int64)
        a, rest = np.divmod(tn, MAX_ALBUMS * MAX_TRACKS)
        slot, t = np.divmod(rest, MAX_TRACKS)
        feat = arr.track_featured[arr.track_start[arr.album_start[a] + slot] + t]
        artist_set = set(a.tolist()) | set(feat[feat >= 0].tolist())
    return {
        "user_id": user.id,
        "index": i,
        "display_name": user.display_name,
        "playlists": len(pls),
        "empty_playlists": sum(1 for p in per if p["items"] == 0),
        "items": sum(p["items"] for p in per),
        "tracks": sum(p["tracks"] for p in per),
        "episodes": sum(p["episodes"] for p in per),
        "local": sum(p["local"] for p in per),
        "null": sum(p["null"] for p in per),
        "max_playlist_items": max((p["items"] for p in per), default=0),
        "distinct_tracks": len(track_set),
        "distinct_artists": len(artist_set),
        "playlist_detail": per,
    }


def find_users(world_dir: str | Path | World, predicate: Callable[[dict], bool], limit: int | None = None) -> list[str]:
    """User ids whose :func:`describe_user` dict satisfies ``predicate`` (in users.txt order)."""
    world = world_dir if isinstance(world_dir, World) else World(world_dir)
    out = []
    for uid in world.user_ids:
        if predicate(describe_user(world, uid)):
            out.append(uid)
            if limit is not None and len(out) >= limit:
                break
    return out
