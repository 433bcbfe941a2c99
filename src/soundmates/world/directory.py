"""A world directory on disk: ``generate_world`` writes it, ``World`` reads it lazily.

Files of a world directory:
- ``world.json``: seed, number of users, generation parameters (the server reads it).
- ``users.txt``: one user id per line (odd legacy ids included).
- ``truth/``: the hidden taste per user (ground truth for evaluation; the server never serves it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np

from soundmates.atomic import atomic_write_text, commit_file
from soundmates.world import catalog
from soundmates.world.discography import CATALOG_SEED
from soundmates.world.ids import parse_id
from soundmates.world.params import DEFAULT_PARAMS, MAX_PLAYLISTS, MAX_USERS, SHOWCASE
from soundmates.world.playlists import PlaylistSpec, user_playlists
from soundmates.world.users import ERA_BINS, USER_BLOCK, UserSpec, taste_matrix, user_block, user_id_for, user_spec

WORLD_FORMAT = 1
TRUTH_DIR = "truth"


class WorldError(ValueError):
    """A world directory is missing or malformed."""


class World:
    """A generated world, read lazily: user ids from ``users.txt``, everything else derived."""

    def __init__(self, world_dir: str | Path):
        self.dir = Path(world_dir)
        meta_path = self.dir / "world.json"
        if not meta_path.is_file():
            raise WorldError(f"{self.dir} is not a world: world.json is missing (run `soundmates world generate`)")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            self.seed = int(meta["seed"])
            self.n_users = int(meta["users"])
            self.params = {**DEFAULT_PARAMS, **meta.get("params", {}).get("rates", {})}
        except (ValueError, KeyError, TypeError) as exc:
            raise WorldError(f"{meta_path} is malformed: {exc}") from exc
        self.meta = meta
        self._ids: list[str] | None = None
        self._index: dict[str, int] | None = None
        self.user = lru_cache(maxsize=65536)(self._user)
        self.playlists = lru_cache(maxsize=4096)(self._playlists)

    # users.txt is read on first use (a 1M-user world: ~30 MB of ids, ~0.1 GB of dict).
    @property
    def user_ids(self) -> list[str]:
        if self._ids is None:
            with open(self.dir / "users.txt", encoding="utf-8") as f:
                self._ids = [line.rstrip("\n") for line in f]
            if len(self._ids) != self.n_users:
                raise WorldError(f"{self.dir}/users.txt has {len(self._ids)} ids, world.json says {self.n_users}")
        return self._ids

    def user_index(self, user_id: str) -> int | None:
        if self._index is None:
            self._index = {u: i for i, u in enumerate(self.user_ids)}
        return self._index.get(user_id)

    def _user(self, i: int) -> UserSpec:
        return user_spec(self.seed, i, self.params)

    def _playlists(self, i: int) -> list[PlaylistSpec]:
        return user_playlists(self.seed, self.user(i), self.params)

    def playlist(self, playlist_id: str) -> PlaylistSpec | None:
        pn = parse_id(f"playlist:{self.seed}", playlist_id)
        if pn is None:
            return None
        i, p = divmod(pn, MAX_PLAYLISTS)
        if i >= self.n_users:
            return None
        pls = self.playlists(i)
        return pls[p] if p < len(pls) else None


def iter_user_ids(seed: int, n_users: int) -> Iterator[str]:
    for i in range(n_users):
        yield user_id_for(seed, i)


def generate_world(out_dir: str | Path, n_users: int, seed: int, *, progress: Callable[[int], None] | None = None) -> dict:
    """Write ``users.txt``, ``world.json`` and the ground truth; returns world.json's content.

    Streams in blocks of ``USER_BLOCK`` users (memory stays flat for 1M users). Files are written
    to temporary names and renamed at the end, so an interrupted run never leaves a world
    that looks complete; the same seed always gives byte-identical files.
    """
    if not isinstance(n_users, int) or not 1 <= n_users <= MAX_USERS:
        raise ValueError(f"users must be an integer between 1 and {MAX_USERS:,}, got {n_users!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    out = Path(out_dir)
    truth = out / TRUTH_DIR
    truth.mkdir(parents=True, exist_ok=True)
    tmp_users = out / "users.txt.tmp"
    tmp_taste = truth / "taste.tmp.npy"
    tmp_scalars = truth / "scalars.tmp.npy"
    _write_users_and_truth(n_users, seed, tmp_users, tmp_taste, tmp_scalars, progress)
    meta = _world_meta(n_users, seed)
    commit_file(tmp_taste, truth / "taste.npy")
    commit_file(tmp_scalars, truth / "scalars.npy")
    commit_file(tmp_users, out / "users.txt")
    # world.json last: its presence marks a complete world.
    atomic_write_text(out / "world.json", json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    return meta


def _write_users_and_truth(
    n_users: int, seed: int, users_path: Path, taste_path: Path, scalars_path: Path, progress: Callable[[int], None] | None
) -> None:
    """Stream the users block by block into ``users.txt`` and the two ground-truth arrays."""
    dim = catalog.N_COMMUNITIES + len(ERA_BINS) + 2
    taste = np.lib.format.open_memmap(taste_path, mode="w+", dtype=np.float32, shape=(n_users, dim))
    scalars = np.lib.format.open_memmap(scalars_path, mode="w+", dtype=np.float32, shape=(n_users, 4))
    seen: set[str] = set()
    p_null = float(DEFAULT_PARAMS["p_display_name_null"])
    with open(users_path, "w", encoding="utf-8", newline="\n") as f:
        for block in range(0, (n_users + USER_BLOCK - 1) // USER_BLOCK):
            start = block * USER_BLOCK
            stop = min(n_users, start + USER_BLOCK)
            blk = user_block(seed, block, p_null)
            ids = blk.ids[: stop - start]
            # Only the 25-char random ids could ever collide; this guard costs ~60 MB at 1M users.
            for j, uid in enumerate(ids):
                if uid in seen:
                    raise RuntimeError(f"duplicate user id {uid!r} at index {start + j} (seed {seed})")
                seen.add(uid)
            f.write("\n".join(ids) + "\n")
            taste[start:stop] = taste_matrix(blk)[: stop - start]
            scalars[start:stop] = np.stack([blk.era, blk.era_width, blk.mainstream, blk.explicit_tolerance], 1)[: stop - start]
            if progress:
                progress(stop - start)
    taste.flush()
    scalars.flush()


def _world_meta(n_users: int, seed: int) -> dict:
    """The content of ``world.json``."""
    return {
        "format": WORLD_FORMAT,
        "seed": seed,
        "users": n_users,
        "params": {
            "rates": DEFAULT_PARAMS,
            "showcase_user_indices": SHOWCASE,
            "communities": catalog.N_COMMUNITIES,
            "community_labels": catalog.communities().labels,
            "catalog_seed": CATALOG_SEED,
            "catalog_artists": len(catalog.artists().names),
        },
        "truth": {
            "taste": f"{TRUTH_DIR}/taste.npy",
            "taste_columns": [f"community:{c}" for c in range(catalog.N_COMMUNITIES)]
            + [f"decade:{int(y)}" for y in ERA_BINS]
            + ["mainstream", "explicit_tolerance"],
            "scalars": f"{TRUTH_DIR}/scalars.npy",
            "scalar_columns": ["era", "era_width", "mainstream", "explicit_tolerance"],
            "note": "hidden taste: for evaluation only, never served by the API",
        },
    }
