"""Each user's public playlists, drawn on demand from ``(seed, user)`` and their hidden taste, with noise.

Rows are arrays (``kinds``: track, episode, local file or null; ``values``: track number,
episode number, local file number or 0), so the server pages a 6,000-row playlist cheaply.
The mess (empty, huge, null rows, podcasts, local files) comes at the rates of
``params.DEFAULT_PARAMS``, and always on the ``params.SHOWCASE`` users.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from soundmates.world import catalog
from soundmates.world.discography import MAX_ALBUMS, MAX_TRACKS, catalog_arrays
from soundmates.world.ids import make_id
from soundmates.world.params import DEFAULT_PARAMS, MAX_PLAYLISTS, SHOWCASE
from soundmates.world.users import Taste, UserSpec, user_rng
from soundmates.world.vocab import PLAYLIST_TEMPLATES, WORDS

EPISODES_PER_SHOW = 1000
_T0 = 1_230_768_000  # 2009-01-01, first added_at
ROW_TRACK, ROW_EPISODE, ROW_LOCAL, ROW_NULL = 0, 1, 2, 3


@dataclass(frozen=True)
class PlaylistSpec:
    n: int
    id: str
    owner: int
    name: str
    description: str
    kinds: np.ndarray  # (rows,) int8 ROW_*
    values: np.ndarray  # (rows,) int64: track n | episode n | local file number | 0
    added_at: np.ndarray  # (rows,) int64 unix seconds
    snapshot_id: str = field(default="")

    @property
    def total(self) -> int:
        return len(self.kinds)


def playlist_n(i: int, p: int) -> int:
    return i * MAX_PLAYLISTS + p


def _community_sampler(c: int, taste: Taste) -> tuple[np.ndarray, np.ndarray]:
    members = catalog.communities().members[c]
    arr = catalog_arrays()
    pop = catalog.artists().popularity[members].astype(np.float64)
    era = arr.artist_era[members]
    # mainstream 1 -> strongly prefers popular artists; 0 -> prefers the obscure ones.
    w = ((pop + 1.0) / 101.0) ** (3.0 * taste.mainstream - 0.5)
    w *= np.exp(-0.5 * ((era - taste.era) / taste.era_width) ** 2) + 0.02
    return members, np.cumsum(w / w.sum())


def _draw_tracks(rng: np.random.Generator, members: np.ndarray, cdf: np.ndarray, n: int, taste: Taste) -> np.ndarray:
    arr = catalog_arrays()
    artists_ = members[np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), len(members) - 1)]

    def pick(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n_alb = arr.album_start[a + 1] - arr.album_start[a]
        slot = (rng.random(len(a)) * n_alb).astype(np.int64)
        g = arr.album_start[a] + slot
        n_tr = arr.track_start[g + 1] - arr.track_start[g]
        t = (rng.random(len(a)) * n_tr).astype(np.int64)
        return (a * MAX_ALBUMS + slot) * MAX_TRACKS + t, arr.track_start[g] + t

    tn, gt = pick(artists_)
    # Explicit tracks survive with the user's tolerance; the rest are redrawn once from the same artist.
    redo = np.flatnonzero(arr.track_explicit[gt] & (rng.random(n) >= taste.explicit_tolerance))
    if len(redo):
        tn[redo], _ = pick(artists_[redo])
    return tn


@dataclass(frozen=True)
class _Plan:
    """What kind of playlister a user is, drawn before any of their playlists."""

    n_playlists: int
    huge_at: int  # index of the one huge playlist, or -1
    podcast: bool  # some playlists hold episodes
    local: bool  # some playlists hold local files


# Every draw below comes from the user's one generator, in a fixed order (plan, then per playlist:
# size, focus, rows, dates, name, description); reordering any of them changes every world.
def user_playlists(seed: int, user: UserSpec, params: dict[str, float] | None = None) -> list[PlaylistSpec]:
    params = params or DEFAULT_PARAMS
    i = user.index
    rng = user_rng(seed, i, 13)
    plan = _plan(rng, i, params)
    if plan is None:
        return []
    samplers: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    out = []
    created = _T0 + int(rng.integers(0, 400_000_000))
    for p in range(plan.n_playlists):
        size = _playlist_size(rng, i, p, plan, params)
        focus = _pick_community(rng, user.taste)
        kinds, values = _playlist_rows(rng, user, p, size, focus, plan, params, samplers)
        added = created + np.cumsum(rng.integers(60, 30 * 86400, size=size)).astype(np.int64)
        created = created + int(rng.integers(86400, 60 * 86400))
        label = catalog.communities().labels[focus]
        name = _playlist_name(rng, label)
        pn = playlist_n(i, p)
        out.append(
            PlaylistSpec(
                n=pn,
                id=make_id(f"playlist:{seed}", pn),
                owner=i,
                name=name,
                description="" if rng.random() < 0.7 else f"{label} and more",
                kinds=kinds,
                values=values,
                added_at=added,
                snapshot_id=make_id(f"snapshot:{seed}", pn) + "AAAAAA",
            )
        )
    return out


def _plan(rng: np.random.Generator, i: int, params: dict[str, float]) -> _Plan | None:
    """The user's playlisting habits; None for a user with no public playlists."""
    if i == SHOWCASE["no_public_playlists"] or (i not in SHOWCASE.values() and rng.random() < params["p_no_public_playlists"]):
        return None
    if i == SHOWCASE["many_playlists"] or rng.random() < params["p_many_playlists"]:
        n_pl = int(rng.integers(60, 131))
    else:
        n_pl = min(int(rng.geometric(0.2)), 40)
    n_pl = min(n_pl, MAX_PLAYLISTS)
    huge_at = int(rng.integers(n_pl)) if (i == SHOWCASE["huge_playlist"] or rng.random() < params["p_huge_playlist_user"]) else -1
    podcast = i == SHOWCASE["episodes_local_null"] or rng.random() < params["p_podcast_user"]
    local = i == SHOWCASE["episodes_local_null"] or rng.random() < params["p_local_user"]
    return _Plan(n_playlists=n_pl, huge_at=huge_at, podcast=podcast, local=local)


def _playlist_size(rng: np.random.Generator, i: int, p: int, plan: _Plan, params: dict[str, float]) -> int:
    if p == plan.huge_at:
        return int(rng.integers(2000, 6001))
    if (i == SHOWCASE["empty_playlist"] and p == 0) or rng.random() < params["p_empty_playlist"]:
        return 0
    return int(np.clip(rng.lognormal(np.log(25), 0.9), 1, 500))


def _pick_community(rng: np.random.Generator, taste: Taste) -> int:
    """One of the user's communities, by their mixture weights."""
    return int(taste.communities[rng.choice(len(taste.weights), p=taste.weights)])


def _playlist_rows(
    rng: np.random.Generator,
    user: UserSpec,
    p: int,
    size: int,
    focus: int,
    plan: _Plan,
    params: dict[str, float],
    samplers: dict[int, tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """``(kinds, values)`` of one playlist's ``size`` rows."""
    kinds = np.zeros(size, dtype=np.int8)
    values = np.zeros(size, dtype=np.int64)
    if size:
        _draw_track_rows(rng, values, focus, user.taste, params, samplers)
        _mark_odd_rows(rng, kinds, values, user.index, p, plan, params)
    return kinds, values


def _draw_track_rows(
    rng: np.random.Generator,
    values: np.ndarray,
    focus: int,
    taste: Taste,
    params: dict[str, float],
    samplers: dict[int, tuple[np.ndarray, np.ndarray]],
) -> None:
    """Fill ``values`` with track numbers: most from the focus community, some from the user's others, a little noise."""
    which = rng.random(len(values))
    noise = params["noise_other_community"]
    sources = np.where(which < noise, -1, np.where(which < noise + 0.10, -2, focus))
    for src in np.unique(sources):
        idx = np.flatnonzero(sources == src)
        if src == -1:
            c = int(rng.integers(catalog.N_COMMUNITIES))
        elif src == -2:
            c = _pick_community(rng, taste)
        else:
            c = int(src)
        if c not in samplers:
            samplers[c] = _community_sampler(c, taste)
        values[idx] = _draw_tracks(rng, *samplers[c], len(idx), taste)


def _mark_odd_rows(
    rng: np.random.Generator, kinds: np.ndarray, values: np.ndarray, i: int, p: int, plan: _Plan, params: dict[str, float]
) -> None:
    """Turn some track rows into episodes, local files and nulls (in place)."""
    size = len(kinds)
    showcase = i == SHOWCASE["episodes_local_null"]
    if plan.podcast and (rng.random() < 0.3 or showcase):
        ep = rng.random(size) < rng.uniform(0.1, 0.5)
        kinds[ep] = ROW_EPISODE
        values[ep] = rng.integers(0, 500 * EPISODES_PER_SHOW, size=int(ep.sum()))
    if plan.local and (rng.random() < 0.5 or showcase):
        lo = (rng.random(size) < rng.uniform(0.02, 0.10)) & (kinds == ROW_TRACK)
        if showcase and not lo.any():
            lo[0] = True
        kinds[lo] = ROW_LOCAL
        values[lo] = np.arange(int(lo.sum()))
    if rng.random() < params["p_null_playlist"] or (showcase and p == 0):
        nulls = rng.choice(size, size=min(size, int(rng.integers(1, 4))), replace=False)
        kinds[nulls] = ROW_NULL
        values[nulls] = 0


def _playlist_name(rng: np.random.Generator, label: str) -> str:
    template = PLAYLIST_TEMPLATES[int(rng.integers(len(PLAYLIST_TEMPLATES)))]
    return template.format(
        label=label,
        word=WORDS[int(rng.integers(len(WORDS)))],
        word2=WORDS[int(rng.integers(len(WORDS)))],
        year=int(rng.integers(2009, 2026)),
    )
