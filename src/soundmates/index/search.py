"""Answering a query: exact search of the usable fresh users merged with the served version's ANN search, removed users hidden.

A backend without native updates (Annoy) is searched as built and its results filtered; one with
native updates (Voyager) holds the fresh users as in-place adds and the hidden users as deletes,
so one graph search answers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from soundmates.index.fresh import FreshEntries
from soundmates.index.loader import Loaded
from soundmates.index.removal_guard import blocked_in
from soundmates.index.tombstones import TombState


@dataclass(frozen=True)
class Hit:
    user_id: str
    score: float  # cosine similarity
    source: str  # "index" or "fresh"


@dataclass
class SearchResult:
    version: str | None  # the index version that answered (None = fresh buffer only)
    hits: list[Hit]
    warnings: list[str] = field(default_factory=list)


class FreshView:
    """The fresh entries comparable with the served version: same dimension and model, none of a removed user."""

    def __init__(self):
        self._memo: tuple | None = None

    def usable(
        self, loaded: Loaded | None, dim: int, tombs: TombState, e: FreshEntries
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(ids, vectors, warnings) of the buffer's entries ``e`` (one snapshot per query); recomputed only when
        the buffer, the removals or the version change."""
        if not len(e):
            return e.ids, e.vectors.reshape(0, dim), []
        key = (e, tombs, loaded.version if loaded is not None else None, dim)
        cached = self._memo
        if cached is not None and cached[0][0] is e and cached[0][1] is tombs and cached[0][2:] == key[2:]:
            return cached[1]
        ok = np.ones(len(e), dtype=bool)
        warnings = []
        if e.vectors.shape[1] != dim:
            ok[:] = False
        elif loaded is not None and loaded.manifest.get("model_version"):
            ok &= (e.model_versions == "") | (e.model_versions == loaded.manifest["model_version"])
        if not ok.all():
            warnings.append(
                f"{int((~ok).sum())} fresh users were embedded by another model than index "
                f"{loaded.version if loaded else '-'}: they appear after the next 'soundmates index build'"
            )
        if tombs.users:
            for i, (u, at) in enumerate(zip(e.ids.tolist(), e.added_at.tolist())):
                t = tombs.users.get(u)
                if t is not None and t.blocks(at):
                    ok[i] = False
        result = (e.ids[ok], e.vectors[ok].reshape(-1, dim), warnings)
        self._memo = (key, result)
        return result


def top_hits(
    loaded: Loaded | None,
    tombs: TombState,
    fresh: tuple[FreshEntries, np.ndarray, np.ndarray],
    v: np.ndarray,
    k: int,
    exclude: set[str],
) -> list[Hit]:
    """The ``k`` best users for the normalised query ``v``; ``fresh`` = (buffer entries, usable ids, their vectors)."""
    entries, fresh_ids, fresh_vecs = fresh
    best: dict[str, Hit] = {}
    for u, s in zip(fresh_ids.tolist(), (fresh_vecs @ v).tolist() if fresh_ids.size else []):
        if u not in exclude:
            best[u] = Hit(u, float(max(-1.0, min(1.0, s))), "fresh")
    if loaded is not None and getattr(loaded.searcher, "native_updates", False):
        got = _search_native(loaded, tombs, entries, fresh_ids, fresh_vecs, v, k, exclude)
        best = {u: Hit(u, s, src) for u, s, src in got}
    elif loaded is not None:
        # A fresh entry replaces the user's indexed vector (re-added with a newer profile).
        shadowed = exclude | blocked_in(loaded, tombs) | set(fresh_ids.tolist())
        for u, s in _search_index(loaded, v, k, shadowed):
            best.setdefault(u, Hit(u, s, "index"))
    return sorted(best.values(), key=lambda h: (-h.score, h.user_id))[:k]


def _search_index(loaded: Loaded, v: np.ndarray, k: int, shadowed: set[str]) -> list[tuple[str, float]]:
    count = int(loaded.manifest["count"])
    # Ask for exactly as many extra results as indexed users will be filtered out.
    want = min(count, k + sum(1 for u in shadowed if u in loaded.positions))
    while True:
        got = [(loaded.ids[i], s) for i, s in loaded.searcher.search(v, want) if loaded.ids[i] not in shadowed]
        if len(got) >= k or want >= count:
            return got
        want = min(count, want * 2)


def _sync_native(loaded: Loaded, tombs: TombState, entries: FreshEntries, fresh_ids: np.ndarray, fresh_vecs: np.ndarray) -> None:
    """Apply removals as native deletes and fresh users as in-place adds (once per change of either file)."""
    st, searcher = loaded.native, loaded.searcher
    if st.get("tombs") is tombs and st.get("fresh") is entries:
        return
    fresh_pos, pos_user = st.setdefault("fresh_pos", {}), st.setdefault("pos_user", {})
    wanted = dict(zip(fresh_ids.tolist(), fresh_vecs))
    for u, (pos, vec) in list(fresh_pos.items()):
        if u not in wanted or not np.array_equal(wanted[u], vec):
            searcher.delete(pos)
            del fresh_pos[u], pos_user[pos]
    for u, vec in wanted.items():
        if u not in fresh_pos:
            pos = searcher.add(vec)
            fresh_pos[u], pos_user[pos] = (pos, vec.copy()), u
    # Indexed vectors hidden: removed users, and users whose fresh entry replaces theirs.
    hide = {loaded.positions[u] for u in blocked_in(loaded, tombs) | set(wanted) if u in loaded.positions}
    deleted = st.get("deleted", set())
    for pos in hide - deleted:
        searcher.delete(pos)
    for pos in deleted - hide:
        searcher.undelete(pos)
    st.update(deleted=hide, tombs=tombs, fresh=entries)


def _search_native(
    loaded: Loaded, tombs: TombState, entries: FreshEntries, fresh_ids, fresh_vecs, v, k, exclude
) -> list[tuple[str, float, str]]:
    """One graph search of an index that holds the fresh users and has the removed ones deleted."""
    lock = loaded.native.setdefault("lock", threading.Lock())
    with lock:
        _sync_native(loaded, tombs, entries, fresh_ids, fresh_vecs)
        pos_user, n = loaded.native["pos_user"], loaded.searcher.n_items
        want = k + len(exclude)
        while True:
            raw = loaded.searcher.search(v, want)
            got = [(loaded.ids[p], s, "index") if p < n else (pos_user[p], s, "fresh") for p, s in raw]
            got = [g for g in got if g[0] not in exclude]
            if len(got) >= k or len(raw) < want:
                return got
            want *= 2
