"""A generated world -> canonical profiles straight from the generator (no HTTP, no ingest).

What the ingest would store for each user (public playlists, track rows only: episodes, local
files and null rows are counted as skipped), built from :mod:`soundmates.world.generator`
directly, so an evaluation on 20,000 users does not need the local API server.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from soundmates.profiles import Artist, Playlist, PlaylistItem, Profile, Track


def world_profiles(world_dir: str | Path, n_users: int | None = None) -> list[Profile]:
    """Profiles of the first ``n_users`` users of the world at ``world_dir`` (default: all)."""
    from soundmates.world import catalog
    from soundmates.world import generator as g

    world = g.World(world_dir)
    n = world.n_users if n_users is None else min(int(n_users), world.n_users)
    table = catalog.artists()
    return [profile_from_specs(world.user(i), world.playlists(i), table) for i in range(n)]


def profile_from_specs(user, playlist_specs, table) -> Profile:
    """The canonical profile ingest would store for one generated user (``UserSpec`` + its ``PlaylistSpec``s)."""
    from soundmates.world import generator as g

    playlists, tracks, artists = [], {}, {}
    for pl in playlist_specs:
        items = []
        for kind, value in zip(pl.kinds.tolist(), pl.values.tolist()):
            if kind != g.ROW_TRACK:
                continue
            spec = g.track_by_n(value)
            if spec is None:
                continue
            items.append(PlaylistItem(track_id=spec.id))
            if spec.id not in tracks:
                credited = [spec.artist] + ([spec.featured] if spec.featured is not None else [])
                album = g.album_by_n(spec.artist * g.MAX_ALBUMS + spec.album)
                tracks[spec.id] = Track(
                    id=spec.id,
                    name=spec.name,
                    artist_ids=[g.artist_id(a) for a in credited],
                    album_name=album.name if album else None,
                    release_year=album.year if album else None,
                    explicit=spec.explicit,
                    popularity=spec.popularity,
                    duration_ms=spec.duration_ms,
                )
                for a in credited:
                    aid = g.artist_id(a)
                    if aid not in artists:
                        artists[aid] = Artist(
                            id=aid, name=table.names[a], genres=list(table.genres[a]), popularity=int(table.popularity[a])
                        )
        kinds = np.bincount(pl.kinds, minlength=4)
        playlists.append(
            Playlist(
                id=pl.id,
                name=pl.name,
                owner_id=user.id,
                items=items,
                skipped_episodes=int(kinds[g.ROW_EPISODE]),
                skipped_local=int(kinds[g.ROW_LOCAL]),
                skipped_null=int(kinds[g.ROW_NULL]),
            )
        )
    return Profile(user_id=user.id, display_name=user.display_name, playlists=playlists, tracks=tracks, artists=artists)


def world_taste(world_dir: str | Path, user_ids: list[str]) -> dict[str, np.ndarray]:
    """Hidden taste vector of each of ``user_ids`` (evaluation only)."""
    from soundmates.world.groundtruth import load_taste

    ids, taste = load_taste(world_dir, mmap=True)
    index = {u: i for i, u in enumerate(ids)}
    missing = [u for u in user_ids if u not in index]
    if missing:
        raise KeyError(f"{len(missing)} user(s) are not in the world at {world_dir}, e.g. {missing[:3]}")
    return {u: np.asarray(taste[index[u]], dtype=np.float32) for u in user_ids}
