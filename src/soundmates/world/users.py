"""A world's users: ids, display names and hidden taste, drawn in blocks from ``(seed, block)``.

Users are drawn ``USER_BLOCK`` at a time from one generator (vectorised bulk generation for
``generate_world``, lazy lookup of one user for the server); the hidden taste is also the
ground truth an evaluation compares against (``taste_vector``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from soundmates.world import catalog
from soundmates.world.ids import base36
from soundmates.world.params import DEFAULT_PARAMS
from soundmates.world.vocab import FIRST_NAMES, LAST_NAMES, LEGACY_WORDS, NONASCII_WORDS

ERA_BINS = np.arange(1950, 2030, 10, dtype=np.float64)  # decade centres for the taste vector
USER_BLOCK = 1024  # users are drawn in blocks: vectorised bulk generation, lazy lookup of one user
MAX_TASTE_COMMUNITIES = 4
_ALNUM = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789", dtype=np.uint8)
_KIND_NAMES = ("alnum25", "numeric", "legacy.", "legacy_", "legacy#", "legacy+", "nonascii")
# The id kinds forced on the first users, in order, so every world has each odd form.
_FORCED_ID_KINDS = ("alnum25", "numeric", "legacy.", "legacy_", "legacy#", "legacy+", "nonascii", "nonascii")


@dataclass(frozen=True)
class Taste:
    communities: np.ndarray  # (k,) int community indices
    weights: np.ndarray  # (k,) mixture weights, sum 1
    era: float  # centre year of the music they like
    era_width: float  # years
    mainstream: float  # 0 = obscure, 1 = charts
    explicit_tolerance: float  # probability an explicit track is kept


@dataclass(frozen=True)
class UserSpec:
    index: int
    id: str
    display_name: str | None
    taste: Taste


def user_rng(seed: int, i: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, i])


@dataclass(frozen=True)
class UserBlock:
    """Users ``block*USER_BLOCK ..`` of a world as arrays (one row per user)."""

    ids: list[str]
    display_names: list[str | None]
    n_comm: np.ndarray  # (B,) 1..4
    communities: np.ndarray  # (B, 4) community indices, first n_comm valid
    weights: np.ndarray  # (B, 4) mixture weights (sorted descending), zero past n_comm
    era: np.ndarray
    era_width: np.ndarray
    mainstream: np.ndarray
    explicit_tolerance: np.ndarray


@lru_cache(maxsize=1)
def _community_prior() -> np.ndarray:
    sizes = np.array([len(m) for m in catalog.communities().members], dtype=np.float64)
    p = np.sqrt(sizes)
    return p / p.sum()


# The three draws below share one generator in this order (ids, taste, names): reordering them
# changes every world.
@lru_cache(maxsize=64)
def user_block(seed: int, block: int, p_name_null: float) -> UserBlock:
    """Users ``block*USER_BLOCK ..`` of a world, all drawn from one generator (deterministic)."""
    rng = np.random.default_rng([seed, 10, block])
    first = block * USER_BLOCK
    ids = _draw_ids(rng, first)
    taste = _draw_taste(rng)
    names = _draw_names(rng, ids, p_name_null)
    return UserBlock(ids=ids, display_names=names, **taste)


def _draw_ids(rng: np.random.Generator, first: int) -> list[str]:
    # Every odd form carries base36(i) after a separator, so ids are unique by construction.
    b = USER_BLOCK
    idx = np.arange(first, first + b)
    u = rng.random(b)
    kind = np.where(u < 0.62, 0, np.where(u < 0.74, 1, np.where(u < 0.94, 2 + rng.integers(0, 4, size=b), 6)))
    forced = idx < len(_FORCED_ID_KINDS)
    kind[forced] = [_KIND_NAMES.index(k) for k in _FORCED_ID_KINDS[: int(forced.sum())]]
    alnum = _ALNUM[rng.integers(0, 36, size=(b, 25))].tobytes().decode("ascii")
    digit = rng.integers(1, 10, size=b)
    legacy_word = rng.integers(0, len(LEGACY_WORDS), size=b)
    nonascii_word = rng.integers(0, len(NONASCII_WORDS), size=b)
    nonascii_sep = rng.integers(0, 2, size=b)
    ids = []
    for j in range(b):
        k, i = int(kind[j]), first + j
        if k == 0:
            ids.append(alnum[25 * j : 25 * j + 25])
        elif k == 1:
            ids.append(f"{digit[j]}{i:09d}")
        elif k < 6:
            ids.append(f"{LEGACY_WORDS[legacy_word[j]]}{_KIND_NAMES[k][-1]}{base36(i)}")
        else:
            ids.append(f"{NONASCII_WORDS[nonascii_word[j]]}{'._'[nonascii_sep[j]]}{base36(i)}")
    return ids


def _draw_taste(rng: np.random.Generator) -> dict[str, np.ndarray]:
    # 1-4 communities (Gumbel top-k = sampling without replacement by the prior).
    b = USER_BLOCK
    prior = _community_prior()
    n_comm = 1 + rng.binomial(3, 0.4, size=b)
    keys = np.log(prior)[None, :] + rng.gumbel(size=(b, len(prior)))
    communities = np.argsort(-keys, axis=1)[:, :MAX_TASTE_COMMUNITIES]
    g = rng.gamma(1.5, size=(b, MAX_TASTE_COMMUNITIES))
    g[np.arange(MAX_TASTE_COMMUNITIES)[None, :] >= n_comm[:, None]] = 0.0
    weights = -np.sort(-(g / g.sum(1, keepdims=True)), axis=1)
    return {
        "n_comm": n_comm,
        "communities": communities,
        "weights": weights,
        "era": np.clip(2024 - rng.gamma(2.0, 9.0, size=b), 1955, 2024),
        "era_width": rng.uniform(5, 18, size=b),
        "mainstream": rng.beta(2, 2, size=b),
        "explicit_tolerance": rng.beta(2, 1.5, size=b),
    }


def _draw_names(rng: np.random.Generator, ids: list[str], p_name_null: float) -> list[str | None]:
    # Mostly a name (non-ASCII ones included), some the id itself, some null.
    b = USER_BLOCK
    u = rng.random(b)
    fn = rng.integers(0, len(FIRST_NAMES), size=b)
    ln = rng.integers(0, len(LAST_NAMES), size=b)
    has_last = rng.random(b) < 0.6
    names: list[str | None] = []
    for j in range(b):
        if u[j] < p_name_null:
            names.append(None)
        elif u[j] < p_name_null + 0.10:
            names.append(ids[j])
        else:
            names.append(FIRST_NAMES[fn[j]] + (" " + LAST_NAMES[ln[j]] if has_last[j] else ""))
    return names


def _block_of(seed: int, i: int, params: dict[str, float] | None) -> tuple[UserBlock, int]:
    p_null = float((params or DEFAULT_PARAMS)["p_display_name_null"])
    block, j = divmod(i, USER_BLOCK)
    return user_block(seed, block, p_null), j


def user_id_for(seed: int, i: int, params: dict[str, float] | None = None) -> str:
    blk, j = _block_of(seed, i, params)
    return blk.ids[j]


def user_spec(seed: int, i: int, params: dict[str, float] | None = None) -> UserSpec:
    blk, j = _block_of(seed, i, params)
    k = int(blk.n_comm[j])
    taste = Taste(
        communities=blk.communities[j, :k].astype(np.int64),
        weights=blk.weights[j, :k].copy(),
        era=float(blk.era[j]),
        era_width=float(blk.era_width[j]),
        mainstream=float(blk.mainstream[j]),
        explicit_tolerance=float(blk.explicit_tolerance[j]),
    )
    return UserSpec(index=i, id=blk.ids[j], display_name=blk.display_names[j], taste=taste)


def taste_matrix(blk: UserBlock, n_communities: int = catalog.N_COMMUNITIES) -> np.ndarray:
    """:func:`taste_vector` for a whole block at once."""
    b = len(blk.ids)
    v = np.zeros((b, n_communities + len(ERA_BINS) + 2), dtype=np.float64)
    rows = np.repeat(np.arange(b), MAX_TASTE_COMMUNITIES)
    np.add.at(v, (rows, blk.communities.ravel()), blk.weights.ravel())
    width = np.maximum(blk.era_width, 5.0)[:, None]
    era = np.exp(-0.5 * ((ERA_BINS[None, :] - blk.era[:, None]) / width) ** 2)
    v[:, n_communities : n_communities + len(ERA_BINS)] = 0.5 * era / era.sum(1, keepdims=True)
    v[:, -2] = 0.5 * (blk.mainstream - 0.5)
    v[:, -1] = 0.5 * (blk.explicit_tolerance - 0.5)
    return v.astype(np.float32)


def taste_vector(t: Taste, n_communities: int = catalog.N_COMMUNITIES) -> np.ndarray:
    """The hidden taste as one vector (cosine between two of them = how alike two users are).

    Community mixture (weight 1), decade profile around the era (weight 0.5), mainstreamness and
    explicit tolerance centred on 0.5 (weight 0.5 each): genre mix dominates, as in the playlists.
    """
    v = np.zeros(n_communities + len(ERA_BINS) + 2, dtype=np.float64)
    v[t.communities] = t.weights
    era = np.exp(-0.5 * ((ERA_BINS - t.era) / max(t.era_width, 5.0)) ** 2)
    v[n_communities : n_communities + len(ERA_BINS)] = 0.5 * era / era.sum()
    v[-2] = 0.5 * (t.mainstream - 0.5)
    v[-1] = 0.5 * (t.explicit_tolerance - 0.5)
    return v.astype(np.float32)
