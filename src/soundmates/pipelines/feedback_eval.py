"""Feedback in the model stage's evaluation: the served embedder's feedback metrics, and whether tuning on votes helps.

``served_feedback`` scores the embedder serving now against every stored vote (``feedback_auc``,
``up_share@10`` of :mod:`soundmates.model.feedback_metrics`) over the latest ``user_features``;
None when nobody voted. ``feedback_decision`` is training's check of
:mod:`soundmates.model.feedback_tuning`: voters are split by a stable hash of their id into fit
and held-out voters, the query-side map is fitted on the fit voters' votes only, and base vs tuned
``feedback_auc`` is compared on the held-out voters' votes, so the decision is never judged on the
votes it was fitted on. ``training_feedback`` is training's step: when the decision says ``used``,
the map is fitted again on every vote and that tuned embedder is what the model stage registers
and serves (``tuned_served``); otherwise the base is served and the reason says why.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
import pandas as pd

HELD_OUT_SHARE = 0.3  # of voters, by hash of their id
MIN_HELD_OUT_VOTERS = 3  # with an up and a down vote each: fewer and the AUC is noise


def stored_votes(settings: Any) -> list[tuple[str, str, int]]:
    """Every stored vote as ``(voter, match, +1/-1)``; empty (and no file created) when nobody voted."""
    from soundmates.store.feedback import training_pairs

    pos, neg = training_pairs(settings)
    return [(u, o, 1) for u, o in pos] + [(u, o, -1) for u, o in neg]


def full_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """One ``full`` profile row per user, sorted by id (the population votes are scored against)."""
    full = frame[frame["view"] == "full"] if "view" in frame.columns else frame
    return full.drop_duplicates("user_id").sort_values("user_id").reset_index(drop=True)


def _json_number(x: Any) -> Any:
    return None if isinstance(x, float) and math.isnan(x) else (round(x, 4) if isinstance(x, float) else x)


def _vectors(embedder, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(query vectors, candidate vectors) of ``rows`` by ``embedder``."""
    embed_query = getattr(embedder, "embed_query", embedder.embed)
    return np.asarray(embed_query(rows), dtype=np.float32), np.asarray(embedder.embed(rows), dtype=np.float32)


def embedder_feedback(embedder, rows: pd.DataFrame, votes: list[tuple[str, str, int]]) -> dict[str, Any] | None:
    """The feedback metrics of ``embedder`` over ``rows`` (one per user) and ``votes``; None without votes."""
    from soundmates.model.feedback_metrics import feedback_metrics

    if not votes:
        return None
    q, c = _vectors(embedder, rows)
    got = feedback_metrics(q, c, rows["user_id"].astype(str).tolist(), votes)
    return {k: _json_number(v) for k, v in got.items()} | {
        "embedder": getattr(embedder, "name", "embedder"),
        "embedder_version": getattr(embedder, "version", None),
    }


def served_feedback(settings: Any) -> dict[str, Any] | None:
    """The served embedder's feedback metrics on the stored users now; None when nobody voted."""
    from soundmates.features.schema import USER_FEATURES
    from soundmates.model.registry import ModelRegistry
    from soundmates.store import get_store

    votes = stored_votes(settings)
    reg = ModelRegistry.for_settings(settings)
    if not votes or reg.served_version() is None:
        return None
    rows = full_rows(get_store(settings).read(USER_FEATURES))
    return embedder_feedback(reg.load_embedder(), rows, votes)


def is_held_out(user_id: str) -> bool:
    """A voter's fixed side of the split: the first 8 bytes of sha256(id), as a share of 2**64."""
    h = int.from_bytes(hashlib.sha256(user_id.encode("utf-8")).digest()[:8], "big")
    return h / 2**64 < HELD_OUT_SHARE


def feedback_decision(base, rows: pd.DataFrame, votes: list[tuple[str, str, int]], **fit_kw: Any) -> dict[str, Any] | None:
    """Fit the query-side map on the fit voters, compare base vs tuned ``feedback_auc`` on held-out voters.

    ``{"voters", "votes", "fit_voters", "held_out_voters", "base_auc", "tuned_auc", "used", "reason"}``;
    None without votes. ``used``: the tuned embedder ranked the held-out voters' votes better.
    """
    from soundmates.model.feedback_metrics import feedback_metrics
    from soundmates.model.feedback_tuning import fit_feedback_weight

    if not votes:
        return None
    ids = rows["user_id"].astype(str).tolist()
    q, c = _vectors(base, rows)
    fit = [v for v in votes if not is_held_out(v[0])]
    held = [v for v in votes if is_held_out(v[0])]
    weight, _ = fit_feedback_weight(
        q, c, ids, [(u, o) for u, o, s in fit if s > 0], [(u, o) for u, o, s in fit if s < 0], **fit_kw
    )
    tuned_q = q @ weight
    tuned_q /= np.maximum(np.linalg.norm(tuned_q, axis=1, keepdims=True), 1e-12)
    before, after = feedback_metrics(q, c, ids, held), feedback_metrics(tuned_q, c, ids, held)
    out: dict[str, Any] = {
        "voters": len({v[0] for v in votes}),
        "votes": len(votes),
        "fit_voters": len({v[0] for v in fit}),
        "held_out_voters": before["auc_voters"],
        "base_auc": _json_number(before["feedback_auc"]),
        "tuned_auc": _json_number(after["feedback_auc"]),
        "base": getattr(base, "name", "embedder"),
    }
    if not fit:
        return out | {"used": False, "reason": "every voter is held out: nothing to fit on"}
    if before["auc_voters"] < MIN_HELD_OUT_VOTERS:
        reason = f"{before['auc_voters']} held-out voters with both an up and a down vote (need {MIN_HELD_OUT_VOTERS})"
        return out | {"used": False, "reason": reason}
    used = bool(after["feedback_auc"] > before["feedback_auc"])
    verdict = "beats" if used else "does not beat"
    reason = f"tuned feedback_auc {after['feedback_auc']:.4f} {verdict} base {before['feedback_auc']:.4f} on held-out voters"
    return out | {"used": used, "reason": reason}


def training_feedback(settings: Any, base, frame: pd.DataFrame) -> tuple[dict[str, Any] | None, Any]:
    """Training's feedback record for the embedder the gate chose (``base``), and the embedder to serve
    tuned on every vote (None unless the held-out decision said ``used``); ``(None, None)`` when nobody voted.

    The votes are read once, so the decision and the served fit see the same votes (a person removed
    before the read is in neither).
    """
    from soundmates.model.feedback_tuning import tune_on_feedback

    votes = stored_votes(settings)
    if not votes:
        return None, None
    if base is None:
        return {"votes": len(votes), "used": False, "reason": "no embedder was chosen to serve: nothing to tune"}, None
    rows = full_rows(frame)
    record = {"served_embedder": embedder_feedback(base, rows, votes), **(feedback_decision(base, rows, votes) or {})}
    record["tuned_served"] = False  # until the model stage has registered the tuned embedder
    if not record.get("used"):
        return record, None
    tuned = tune_on_feedback(base, rows, [(u, o) for u, o, s in votes if s > 0], [(u, o) for u, o, s in votes if s < 0])
    return record | {"served_fit_votes": tuned.votes}, tuned
