"""Stable per-user train/val/test splits, and the two views of ``user_features`` aligned by user.

A user's split is a hash of their id and the seed, so it never changes as the population grows
(an incumbent model is never scored on its own training users).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd

from soundmates.features.schema import VIEW_A, VIEW_B


@dataclass(frozen=True)
class Split:
    train: list[str]
    val: list[str]
    test: list[str]

    def as_dict(self) -> dict[str, list[str]]:
        return {"train": self.train, "val": self.val, "test": self.test}


def split_fraction(user_id: str, seed: int) -> float:
    """A user's stable place in [0, 1): a hash of the id and the seed, independent of who else exists."""
    h = hashlib.sha256(f"{seed}:{user_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def split_users(user_ids: list[str], *, seed: int, val_frac: float = 0.1, test_frac: float = 0.2) -> Split:
    """Disjoint train/val/test user lists, stable per user (hash of id + seed).

    A user's split never changes as the population grows, so an incumbent model is never scored
    on its own training users. Tiny populations still get one validation and one test user.
    """
    users = sorted(set(user_ids))
    n = len(users)
    if n < 4:
        raise ValueError(f"{n} users are too few to split into train/val/test ({val_frac=}, {test_frac=})")
    frac = {u: split_fraction(u, seed) for u in users}
    test = [u for u in users if frac[u] < test_frac]
    val = [u for u in users if test_frac <= frac[u] < test_frac + val_frac]
    train = [u for u in users if frac[u] >= test_frac + val_frac]
    by_frac = sorted(users, key=lambda u: frac[u])
    if not test:  # the lowest hash is the most test-like user
        test = [by_frac[0]]
    if not val:
        val = [next(u for u in by_frac if u not in test)]
    train = [u for u in train if u not in test and u not in val]
    if len(train) < 2:
        raise ValueError(f"{n} users are too few to split into train/val/test ({val_frac=}, {test_frac=})")
    return Split(sorted(train), sorted(val), sorted(test))


def paired_views(df: pd.DataFrame, users: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows of view a and view b, aligned by user (users lacking a view are left out)."""
    missing = {"user_id", "view"} - set(df.columns)
    if missing:
        raise KeyError(f"user_features frame lacks column(s) {sorted(missing)}")
    a = df[df["view"] == VIEW_A].drop_duplicates("user_id", keep="last").set_index("user_id")
    b = df[df["view"] == VIEW_B].drop_duplicates("user_id", keep="last").set_index("user_id")
    both = a.index.intersection(b.index)
    if users is not None:
        present = set(both)
        both = [u for u in users if u in present]
    else:
        both = both.sort_values()
    both = pd.Index(list(both), name="user_id")
    return a.loc[both].reset_index(), b.loc[both].reset_index()
