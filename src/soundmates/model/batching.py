"""Batches of (view a, view b) pairs: a seeded ``DataLoader`` that slices pre-built tensors by index."""

from __future__ import annotations

from typing import Any, cast


class _PairDataset:
    """Index-only dataset: the collate function slices the pre-built tensors."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def pair_loader(tensors: dict[str, dict[str, Any]], n: int, *, batch_size: int, shuffle: bool, seed: int):
    """A loader of ``{"a": {...}, "b": {...}}`` batches over ``n`` users' ``tensors`` (views ``a`` and ``b``).

    Shuffled (training) batches have ``batch_size`` users and drop a short last batch; unshuffled
    ones (validation, test) are one batch of everyone, so held-out users are ranked together.
    """
    import torch
    from torch.utils.data import DataLoader, Dataset

    def collate(ids: list[int]):
        ix = torch.tensor(ids, dtype=torch.long)
        return {"a": {k: v[ix] for k, v in tensors["a"].items()}, "b": {k: v[ix] for k, v in tensors["b"].items()}}

    gen = torch.Generator().manual_seed(seed)
    # validation sees all held-out users in one ranking, so one batch
    bs = batch_size if shuffle else max(n, 1)
    return DataLoader(
        cast(Dataset[int], _PairDataset(n)),  # map-style by protocol (len + getitem), not by base class
        batch_size=bs,
        shuffle=shuffle,
        collate_fn=collate,
        generator=gen,
        drop_last=shuffle and n > bs,
        num_workers=0,
    )
