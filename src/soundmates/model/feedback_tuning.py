"""Training from match feedback: a query-side linear map on top of any embedder, fitted on up and down votes.

Up votes are positives, down votes hard negatives (they were close enough to be served, and still did
not fit). The candidate side (what the index stores) is the base embedder's, unchanged, so the index
needs no rebuild; the query side becomes ``normalise(base.embed_query(rows) @ W)``. ``W`` starts at
the identity and is pulled back to it (``l2``), so without votes the embedder is the base one.
Votes come from ``soundmates.store.feedback.training_pairs`` (the feedback store's training hook).

Loss per voter: every up-voted match should outscore every down-voted one (pairwise logistic) and
a random user (sampled negatives); both over the base embedder's vectors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)


class FeedbackTuned:
    """An embedder: the base candidate side, the base query side through ``W``.

    ``version`` is the registry's once saved (``ModelRegistry.save_feedback_tuned``); ``candidate_version``
    is the base's: an index built with the base holds this embedder's candidate vectors.
    """

    servable = True
    shared_towers = False
    meta: dict | None = None  # the registry entry's, once loaded from it

    def __init__(self, base, weight: np.ndarray, votes: int, *, version: str | None = None):
        self.base, self.weight, self.votes = base, np.asarray(weight, dtype=np.float32), votes
        self.name = f"{getattr(base, 'name', 'embedder')}+feedback"
        self.version = version or f"{getattr(base, 'version', 'unsaved')}+feedback{votes}"

    @property
    def candidate_version(self) -> str:
        from soundmates.model.embedder import candidate_version

        return candidate_version(self.base)

    @property
    def dim(self) -> int:
        return int(self.weight.shape[1])

    def embed(self, rows: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.base.embed(rows), dtype=np.float32)

    def embed_query(self, rows: pd.DataFrame) -> np.ndarray:
        return self.query_from(np.asarray(self.base.embed_query(rows), dtype=np.float32))

    def query_from(self, base_query: np.ndarray) -> np.ndarray:
        return _unit(base_query @ self.weight)


def _pairs(
    positives: Sequence[tuple[str, str]], negatives: Sequence[tuple[str, str]], pos: Mapping[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(voter row, match row, label 1/0) of every vote whose two users have vectors."""
    rows = [(pos[u], pos[v], 1.0) for u, v in positives if u in pos and v in pos]
    rows += [(pos[u], pos[v], 0.0) for u, v in negatives if u in pos and v in pos]
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    a = np.array(rows)
    return a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2].astype(np.float32)


def fit_feedback_weight(
    queries: np.ndarray,
    candidates: np.ndarray,
    ids: Sequence[str],
    positives: Sequence[tuple[str, str]],
    negatives: Sequence[tuple[str, str]],
    *,
    l2: float = 1.0,
    epochs: int = 60,
    lr: float = 0.05,
    random_negatives: int = 8,
    seed: int = 0,
) -> tuple[np.ndarray, dict]:
    """``W`` (dim x dim) from votes over base vectors (``queries``/``candidates`` rows aligned with ``ids``)."""
    import torch

    pos = {u: i for i, u in enumerate(ids)}
    voter, match, label = _pairs(positives, negatives, pos)
    dim = queries.shape[1]
    if len(voter) == 0:
        return np.eye(dim, dtype=np.float32), {"votes": 0}
    gen = torch.Generator().manual_seed(seed)
    q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    c = torch.from_numpy(np.ascontiguousarray(candidates, dtype=np.float32))
    eye = torch.eye(dim)
    delta = torch.zeros(dim, dim, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=lr / max(dim, 1) ** 0.5)
    v_t, m_t, y_t = torch.from_numpy(voter), torch.from_numpy(match), torch.from_numpy(label)
    up, down = y_t > 0.5, y_t < 0.5
    same = v_t[up][:, None] == v_t[down][None, :]  # (up votes, down votes) of one voter: pairwise terms
    for _ in range(epochs):
        opt.zero_grad()
        qw = q[v_t] @ (eye + delta)
        s = (qw * c[m_t]).sum(1)
        rand = torch.randint(0, len(ids), (len(v_t), random_negatives), generator=gen)
        s_rand = torch.einsum("nd,nkd->nk", qw, c[rand])
        loss = torch.nn.functional.softplus(-(s[up][:, None] - s_rand[up])).mean() if up.any() else s.sum() * 0
        if same.any():
            diff = s[up][:, None] - s[down][None, :]
            loss = loss + torch.nn.functional.softplus(-diff[same]).mean()
        loss = loss + l2 * (delta**2).sum() / dim
        loss.backward()
        opt.step()
    return (eye + delta).detach().numpy().astype(np.float32), {"votes": int(len(v_t)), "loss": float(loss.detach())}


def tune_on_feedback(base, rows: pd.DataFrame, positives, negatives, **kw) -> FeedbackTuned:
    """The base embedder tuned on votes, over ``rows`` (``user_features`` full rows of voters and matches)."""
    ids = rows["user_id"].astype(str).tolist()
    q = np.asarray(base.embed_query(rows), dtype=np.float32)
    c = np.asarray(base.embed(rows), dtype=np.float32)
    weight, info = fit_feedback_weight(q, c, ids, positives, negatives, **kw)
    return FeedbackTuned(base, weight, info["votes"])
