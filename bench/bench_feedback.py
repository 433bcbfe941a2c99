"""Feedback: does training on thumbs up/down move taste_ndcg@10? Simulated votes on a generated world.

World: ``SOUNDMATES_BENCH_FEEDBACK_USERS`` users (default 1,500, world seed 0), features through the
features stage (cached like the model bench). Base embedder: ALS (the best tuned baseline of the
model bench at 5,000 users; factors 64, alpha 10, regularization 0.1), fitted on everyone.
Half the users (seeded draw) are **raters**, the other half never vote (**held out**).

Each round every rater is served their top 10 by the current embedder (query side, everyone else as
candidates) and rates each match: up if it is among the rater's true top 20 by hidden taste, else down
(the latest vote of a pair wins). Then ``soundmates.model.feedback_tuning`` refits its query-side map
``W`` on every vote so far (up = positives, down = hard negatives). Reported per round (0 = no feedback,
1, 3, 10): taste_ndcg@10 of raters and of held-out users, and the feedback metric the product can see,
the share of up votes among the raters' served top 10.

    python -m bench.run_all --only feedback
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

N_USERS = int(os.environ.get("SOUNDMATES_BENCH_FEEDBACK_USERS", "1500"))
ROUNDS = (1, 3, 10)
K, TRUE_K = 10, 20
ALS = {"factors": 64, "alpha": 10.0, "regularization": 0.1}


def _log(msg: str) -> None:
    print(f"bench feedback: {msg}", file=sys.stderr, flush=True)


def _ndcg(top: np.ndarray, taste: np.ndarray, ideal: np.ndarray) -> np.ndarray:
    """taste_ndcg@10 per user (every row a query against everyone)."""
    from soundmates.model.metrics import graded_ndcg

    gains = np.einsum("qd,qkd->qk", taste, taste[top])
    return graded_ndcg(gains, ideal)


def _paired_ci(after: np.ndarray, before: np.ndarray) -> list[float]:
    """Bootstrap 95% interval of the mean per-user change (users resampled, paired)."""
    from soundmates.model.metrics import bootstrap_ci

    return [round(float(x), 4) for x in bootstrap_ci(after - before, seed=0)]


def simulate(full, taste: np.ndarray, *, seed: int = 0, l2: float = 1.0) -> dict:
    """Rounds of simulated feedback over ``full`` (one row per user) with hidden ``taste`` rows aligned."""
    from soundmates.model.baselines import make_baseline
    from soundmates.model.feedback_tuning import fit_feedback_weight
    from soundmates.model.protocol import top_k

    ids = full["user_id"].astype(str).tolist()
    n = len(ids)
    everyone = np.arange(n)
    base = make_baseline("als", ALS, seed=seed).fit(full)
    q0, c = np.asarray(base.embed_query(full), np.float32), np.asarray(base.embed(full), np.float32)
    t = taste / np.maximum(np.linalg.norm(taste, axis=1, keepdims=True), 1e-12)
    true20, _ = top_k(t, t, TRUE_K, everyone)
    _, ideal = top_k(t, t, K, everyone)
    relevant = [set(r) for r in true20]
    rng = np.random.default_rng(seed)
    raters = np.sort(rng.choice(n, size=n // 2, replace=False))
    held = np.setdiff1d(everyone, raters)
    votes: dict[tuple[int, int], int] = {}
    weight = np.eye(q0.shape[1], dtype=np.float32)
    out: dict = {"rounds": {}}
    first: np.ndarray | None = None
    for r in range(max(ROUNDS) + 1):
        q = q0 @ weight
        q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        top, _ = top_k(q, c, K, everyone)
        served = [(int(u), int(v)) for u in raters for v in top[u]]
        up_share = float(np.mean([v in relevant[u] for u, v in served]))
        if r == 0 or r in ROUNDS:
            per_user = _ndcg(top, t, ideal)
            first = per_user if first is None else first
            out["rounds"][str(r)] = {
                "taste_ndcg@10_raters": round(float(np.nanmean(per_user[raters])), 4),
                "taste_ndcg@10_held_out": round(float(np.nanmean(per_user[held])), 4),
                "change_ci95_raters": _paired_ci(per_user[raters], first[raters]),
                "change_ci95_held_out": _paired_ci(per_user[held], first[held]),
                "up_share_of_served_top10": round(up_share, 4),
                "votes": len(votes),
            }
            _log(f"round {r}: {out['rounds'][str(r)]}")
        if r == max(ROUNDS):
            break
        for u, v in served:
            votes[(u, v)] = 1 if v in relevant[u] else -1
        pos = [(ids[u], ids[v]) for (u, v), s in votes.items() if s > 0]
        neg = [(ids[u], ids[v]) for (u, v), s in votes.items() if s < 0]
        weight, _info = fit_feedback_weight(q0, c, ids, pos, neg, l2=l2, seed=seed)
    out.update(users=n, raters=len(raters), held_out=len(held), base=f"als({ALS})", dim=int(q0.shape[1]), l2=l2)
    return out


def _markdown(res: dict) -> str:
    rows = [
        f"| {r} | {v['votes']:,} | {v['up_share_of_served_top10']:.3f} | {v['taste_ndcg@10_raters']:.4f} | "
        f"{v['taste_ndcg@10_held_out']:.4f} |"
        for r, v in res["rounds"].items()
    ]
    r0, r10 = res["rounds"]["0"], res["rounds"][str(max(ROUNDS))]
    d_r = r10["taste_ndcg@10_raters"] - r0["taste_ndcg@10_raters"]
    d_h = r10["taste_ndcg@10_held_out"] - r0["taste_ndcg@10_held_out"]
    ci_r, ci_h = r10["change_ci95_raters"], r10["change_ci95_held_out"]
    return (
        f"Generated world of {N_USERS:,} users (seed 0), {res['users']:,} with a usable profile; base embedder {res['base']} fitted on everyone; "
        f"{res['raters']:,} raters vote on their served top 10 each round (up = in their true top 20 by hidden "
        f"taste), {res['held_out']:,} users never vote. After each round the query-side map of "
        f"`model/feedback_tuning.py` is refitted on all votes (l2 = {res['l2']}).\n\n"
        "| round | votes so far | up share of served top 10 (raters) | taste_ndcg@10 raters | taste_ndcg@10 held out |\n"
        "|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"After {max(ROUNDS)} rounds: raters {d_r:+.4f} (95% interval {ci_r[0]:+.4f} … {ci_r[1]:+.4f}), held-out "
        f"users {d_h:+.4f} ({ci_h[0]:+.4f} … {ci_h[1]:+.4f}) taste_ndcg@10; intervals: bootstrap over users of the "
        "paired per-user change, one world and one rater draw. Most of the gain comes from the first round; later "
        "rounds add few new votes (the served lists barely change)."
    )


def run(out_dir: Path) -> dict:
    from bench.bench_model import world_frame
    from soundmates.sources.world import world_taste

    t0 = time.perf_counter()
    frame, world, steps = world_frame(N_USERS)
    full = frame[frame["view"] == "full"].drop_duplicates("user_id").sort_values("user_id").reset_index(drop=True)
    taste_of = world_taste(world, full["user_id"].astype(str).tolist())
    taste = np.stack([taste_of[u] for u in full["user_id"].astype(str)])
    _log(f"{len(full):,} users ready in {time.perf_counter() - t0:.0f} s ({steps})")
    res = simulate(full, taste)
    res["world_steps"] = steps
    return {"title": "Feedback (simulated thumbs up/down)", "markdown": _markdown(res), **res}


if __name__ == "__main__":
    import json

    print(json.dumps(run(Path("bench/results")), indent=1))
