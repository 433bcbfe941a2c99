"""Feedback metrics of one embedder: how well its scores agree with people's thumbs up and down.

Two numbers, both over the embedder's query vectors (voters) against candidate vectors (everyone):

- ``feedback_auc``: per voter with at least one up and one down vote, the share of (up, down) pairs
  whose up-voted user scores higher (ties count half); the mean over those voters. 0.5 = the scores
  know nothing of the votes, 1.0 = every up-voted match outranks every down-voted one.
- ``up_share@10``: among the users in the voters' served top 10 (everyone else, best score first)
  that the voter voted on, the share of up votes, pooled over voters; NaN when no served match was voted on.

Votes are ``(voter, match, vote)`` with ``vote`` +1 or -1 (``soundmates.store.feedback.Vote`` rows fit);
votes whose voter or match has no vector are skipped (counted in ``skipped``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

SERVED_K = 10


def _vote_triples(votes: Iterable) -> list[tuple[str, str, int]]:
    """``(voter, match, vote)`` from tuples or objects with ``user_id``/``other_id``/``vote``."""
    out = []
    for v in votes:
        if hasattr(v, "user_id"):
            out.append((str(v.user_id), str(v.other_id), int(v.vote)))
        else:
            u, o, s = v
            out.append((str(u), str(o), int(s)))
    return out


def _by_voter(votes: Iterable, pos: dict[str, int]) -> tuple[dict[int, dict[int, int]], int]:
    """voter row -> {match row: vote} of the votes whose two users have vectors; and how many were skipped."""
    table: dict[int, dict[int, int]] = defaultdict(dict)
    skipped = 0
    for u, o, s in _vote_triples(votes):
        if u not in pos or o not in pos or s not in (1, -1):
            skipped += 1
            continue
        table[pos[u]][pos[o]] = s
    return table, skipped


def _pair_auc(up: np.ndarray, down: np.ndarray) -> float:
    """Share of (up, down) score pairs with the up one higher; ties half."""
    diff = up[:, None] - down[None, :]
    return float((np.sum(diff > 0) + 0.5 * np.sum(diff == 0)) / diff.size)


def feedback_metrics(
    queries: np.ndarray, candidates: np.ndarray, ids: Sequence[str], votes: Iterable, *, k: int = SERVED_K
) -> dict[str, float | int]:
    """``{"feedback_auc", "auc_voters", "up_share@10", "served_voted", "voters", "votes", "skipped"}``.

    ``queries``/``candidates`` rows are aligned with ``ids``; a voter's own row is never served to them.
    """
    from soundmates.model.protocol import top_k

    pos = {u: i for i, u in enumerate(ids)}
    table, skipped = _by_voter(votes, pos)
    q = np.asarray(queries, dtype=np.float32)
    c = np.asarray(candidates, dtype=np.float32)
    voters = sorted(table)
    aucs = []
    ups = voted = 0
    if voters:
        rows = np.array(voters, dtype=np.int64)
        top, _ = top_k(q[rows], c, k, exclude=rows)
        for voter, served in zip(voters, top, strict=True):
            mine = table[voter]
            matches = np.fromiter(mine, dtype=np.int64)
            signs = np.fromiter(mine.values(), dtype=np.int64)
            scores = c[matches] @ q[voter]
            if (signs > 0).any() and (signs < 0).any():
                aucs.append(_pair_auc(scores[signs > 0], scores[signs < 0]))
            hits = [mine[int(m)] for m in served if int(m) in mine]
            ups += sum(1 for s in hits if s > 0)
            voted += len(hits)
    return {
        "feedback_auc": float(np.mean(aucs)) if aucs else float("nan"),
        "auc_voters": len(aucs),
        f"up_share@{k}": ups / voted if voted else float("nan"),
        "served_voted": voted,
        "voters": len(voters),
        "votes": sum(len(t) for t in table.values()),
        "skipped": skipped,
    }


def feedback_auc(queries: np.ndarray, candidates: np.ndarray, ids: Sequence[str], votes: Iterable) -> float:
    """Mean over voters with both kinds of votes of the share of (up, down) pairs ranked right; NaN if none."""
    return float(feedback_metrics(queries, candidates, ids, votes)["feedback_auc"])


def up_share_at_k(queries: np.ndarray, candidates: np.ndarray, ids: Sequence[str], votes: Iterable, k: int = SERVED_K) -> float:
    """Share of up votes among the voted users in each voter's served top ``k``, pooled; NaN if none."""
    return float(feedback_metrics(queries, candidates, ids, votes, k=k)[f"up_share@{k}"])
