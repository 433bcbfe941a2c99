"""The two-tower LightningModule: query and candidate towers over a user's feature groups.

Each tower sees
* the genre bag and the artist bag through ``nn.EmbeddingBag`` (sum, per-sample weights =
  the TF-IDF weights of the bag, L2-normalised), tables initialised from a truncated SVD of
  the training TF-IDF matrices (LSA), so the untrained model ranks like an LSA cosine and
  training learns on top of it;
* the dense features (text embeddings of genres/artists/playlists, year histogram and
  statistics) through a small MLP;
and ends in a residual MLP (last layer zero-initialised) and L2 normalisation.

Objectives (``ModelConfig.objective``), in-batch sampled softmax with temperature (Yi et al.,
RecSys 2019), symmetric over the two disjoint views a and b of a user:

* ``items``: the user's half predicts the artists (and genres) of the other half; negatives =
  the items sampled for the rest of the batch, logits corrected by -log Q(item) (popular items
  are sampled more often), the user's own other positives masked. Users who would like the
  same items end up close -- a taste signal, unlike self-retrieval. Query and candidate sides
  are one tower (a user is compared with users).
* ``halves``: find the same user's other half among the batch's users (self-retrieval; every
  other user, however alike, is a negative);
* ``items+halves``: both.
"""

from __future__ import annotations

import copy
import math

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from soundmates.model.config import ModelConfig


class Tower(nn.Module):
    def __init__(
        self,
        cfg: ModelConfig,
        genre_rows: int,
        artist_rows: int,
        dense_in: int,
        genre_table: np.ndarray | None = None,
        artist_table: np.ndarray | None = None,
    ):
        super().__init__()
        self.cfg = cfg
        parts = 0
        self.genre = self.artist = self.dense = None
        if cfg.use_genres:
            self.genre = nn.EmbeddingBag(genre_rows, cfg.genre_dim, mode="sum", padding_idx=0)
            self._init_table(self.genre, genre_table)
            parts += cfg.genre_dim
        if cfg.use_artists:
            self.artist = nn.EmbeddingBag(artist_rows, cfg.artist_dim, mode="sum", padding_idx=0)
            self._init_table(self.artist, artist_table)
            parts += cfg.artist_dim
        if cfg.use_dense and dense_in > 0:
            self.dense = nn.Sequential(
                nn.Linear(dense_in, cfg.hidden), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, cfg.dense_dim)
            )
            parts += cfg.dense_dim
        if parts == 0:
            raise ValueError("the tower has no input: enable genres, artists or dense features")
        self.out_dim = parts
        # group scales: start with the bag groups dominating (their LSA start is already a good ranker)
        self.log_scale = nn.Parameter(torch.tensor([0.0, 0.0, math.log(0.3)]))
        widen, narrow = nn.Linear(parts, cfg.hidden), nn.Linear(cfg.hidden, parts)
        self.residual = nn.Sequential(widen, nn.GELU(), nn.Dropout(cfg.dropout), narrow)
        nn.init.zeros_(narrow.weight)
        nn.init.zeros_(narrow.bias)

    @staticmethod
    def _init_table(bag: nn.EmbeddingBag, table: np.ndarray | None) -> None:
        with torch.no_grad():
            if table is not None:
                if tuple(table.shape) != tuple(bag.weight.shape):
                    raise ValueError(f"initial table shape {table.shape} != embedding {tuple(bag.weight.shape)}")
                bag.weight.copy_(torch.from_numpy(table))
            else:
                nn.init.normal_(bag.weight, 0, 0.05)
                bag.weight[0].zero_()

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        groups = []
        scale = self.log_scale.exp()
        if self.genre is not None:
            groups.append(scale[0] * F.normalize(self.genre(x["g_idx"], per_sample_weights=x["g_w"]), dim=-1))
        if self.artist is not None:
            groups.append(scale[1] * F.normalize(self.artist(x["a_idx"], per_sample_weights=x["a_w"]), dim=-1))
        if self.dense is not None:
            groups.append(scale[2] * F.normalize(self.dense(x["dense"]), dim=-1))
        h = torch.cat(groups, dim=-1)
        return F.normalize(h + self.residual(h), dim=-1)


class TwoTowerModel(L.LightningModule):
    # buffers registered in __init__ (declared so their type is Tensor, not Module.__getattr__'s union)
    log_q_artist: torch.Tensor
    log_q_genre: torch.Tensor

    def __init__(
        self,
        cfg: dict,
        genre_rows: int,
        artist_rows: int,
        dense_in: int,
        genre_table: np.ndarray | None = None,
        artist_table: np.ndarray | None = None,
    ):
        super().__init__()
        # tables are weights, not hyperparameters: keep them out of hparams (and the checkpoint's yaml)
        self.save_hyperparameters(ignore=["genre_table", "artist_table"])
        self.cfg = ModelConfig.from_stored(cfg)
        self.query_tower = Tower(self.cfg, genre_rows, artist_rows, dense_in, genre_table, artist_table)
        shared = self.cfg.shared_towers or self.cfg.objective == "items"  # the item objective trains one user tower
        self.candidate_tower = self.query_tower if shared else copy.deepcopy(self.query_tower)
        self.log_temperature = nn.Parameter(
            torch.tensor(math.log(self.cfg.temperature)), requires_grad=self.cfg.learn_temperature
        )
        # item tables of the item objective: training aids only, never used to embed a user
        self.item_artist = self.item_genre = None
        if self.cfg.objective != "halves":
            d = self.query_tower.out_dim
            self.item_artist = nn.Embedding(artist_rows, d)
            nn.init.normal_(self.item_artist.weight, 0, 0.05)
            if self.cfg.genre_items and self.cfg.use_genres:
                self.item_genre = nn.Embedding(genre_rows, d)
                nn.init.normal_(self.item_genre.weight, 0, 0.05)
        self.register_buffer("log_q_artist", torch.zeros(artist_rows), persistent=False)
        self.register_buffer("log_q_genre", torch.zeros(genre_rows), persistent=False)
        self._val_q: list[torch.Tensor] = []
        self._val_c: list[torch.Tensor] = []

    @property
    def dim(self) -> int:
        return self.query_tower.out_dim

    def embed_query(self, x):
        return self.query_tower(x)

    def embed_candidate(self, x):
        return self.candidate_tower(x)

    def in_batch_softmax_loss(self, a, b) -> torch.Tensor:
        q, c = self.embed_query(a), self.embed_candidate(b)
        logits = q @ c.T / self.log_temperature.exp()
        target = torch.arange(len(q), device=q.device)
        # symmetric: the views are exchangeable halves of one user
        q2, c2 = self.embed_query(b), self.embed_candidate(a)
        logits2 = q2 @ c2.T / self.log_temperature.exp()
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits2, target))

    def init_item_tables(self, dense_dim: int, batch: int = 4096) -> None:
        """Start each item's vector at the user tower's output for a one-item profile of that item,
        so the item objective starts from the LSA geometry instead of random logits."""
        for table, idx_key, w_key in ((self.item_artist, "a_idx", "a_w"), (self.item_genre, "g_idx", "g_w")):
            if table is None:
                continue
            n = table.num_embeddings
            with torch.no_grad():
                for s in range(0, n, batch):
                    rows = torch.arange(s, min(s + batch, n))
                    x = {
                        "a_idx": torch.zeros(len(rows), 1, dtype=torch.long),
                        "a_w": torch.zeros(len(rows), 1),
                        "g_idx": torch.zeros(len(rows), 1, dtype=torch.long),
                        "g_w": torch.zeros(len(rows), 1),
                        "dense": torch.zeros(len(rows), dense_dim),
                    }
                    x[idx_key] = rows[:, None]
                    x[w_key] = torch.ones(len(rows), 1)
                    table.weight[s : s + len(rows)] = self.query_tower(x)

    def set_item_priors(self, log_q_artist: np.ndarray, log_q_genre: np.ndarray) -> None:
        """log of each item's share of the training targets (the logQ correction of sampled softmax)."""
        self.log_q_artist.copy_(torch.as_tensor(log_q_artist, dtype=torch.float32))
        self.log_q_genre.copy_(torch.as_tensor(log_q_genre, dtype=torch.float32))

    def _item_loss(
        self, q: torch.Tensor, idx: torch.Tensor, w: torch.Tensor, table: nn.Embedding, log_q: torch.Tensor
    ) -> torch.Tensor:
        """Sampled softmax of ``item_positives`` items per user over all items sampled in the batch.

        Logits are corrected by -log Q(item) (popular items are sampled as negatives more often);
        a user's own other positives are masked, so a shared item is never pushed away.
        """
        keep = w.sum(1) > 0
        if keep.sum() < 2:
            return q.sum() * 0.0
        q, idx, w = q[keep], idx[keep], w[keep]
        n, p = len(q), self.cfg.item_positives
        pick = torch.multinomial(w, p, replacement=True)  # (n, p) positions in the bag, by tf-idf weight
        items = torch.gather(idx, 1, pick)  # (n, p) item rows
        flat = items.reshape(-1)
        logits = q @ table(flat).T / self.log_temperature.exp() - log_q[flat][None, :]  # (n, n*p)
        own = (flat[None, :, None] == items[:, None, :]).any(-1)  # (n, n*p): item is one of the user's positives
        cols = torch.arange(n, device=q.device)[:, None] * p + torch.arange(p, device=q.device)[None, :]
        losses = []
        for j in range(p):
            mask = own.clone()
            mask[torch.arange(n), cols[:, j]] = False
            losses.append(F.cross_entropy(logits.masked_fill(mask, float("-inf")), cols[:, j]))
        return torch.stack(losses).mean()

    def item_objective(self, a, b) -> torch.Tensor:
        if self.item_artist is None:
            raise ValueError("the item objective needs item tables: the model was built with objective 'halves'")
        terms = []
        for src, dst in ((a, b), (b, a)):
            q = self.embed_query(src)
            terms.append(self._item_loss(q, dst["a_idx"], dst["a_w"], self.item_artist, self.log_q_artist))
            if self.item_genre is not None:
                terms.append(self._item_loss(q, dst["g_idx"], dst["g_w"], self.item_genre, self.log_q_genre))
        return sum(terms[1:], terms[0]) / 2  # same left-to-right sum as adding each term in turn

    def training_step(self, batch, batch_idx):
        loss = 0.0
        if self.cfg.objective in ("halves", "items+halves"):
            loss = loss + self.in_batch_softmax_loss(batch["a"], batch["b"])
        if self.cfg.objective in ("items", "items+halves"):
            loss = loss + self.item_objective(batch["a"], batch["b"])
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch["a"]["g_idx"]))
        return loss

    def validation_step(self, batch, batch_idx):
        self._val_q.append(self.embed_query(batch["a"]))
        self._val_c.append(self.embed_candidate(batch["b"]))

    def on_validation_epoch_end(self):
        q, c = torch.cat(self._val_q), torch.cat(self._val_c)
        self._val_q.clear()
        self._val_c.clear()
        scores = q @ c.T
        # rank of each user's own other view among all held-out candidates
        rank = (scores > scores.diagonal()[:, None]).sum(dim=1)
        self.log("val_recall@10", (rank < 10).float().mean(), prog_bar=True)
        self.log("val_mrr", (1.0 / (rank + 1).float()).mean())

    def configure_optimizers(self):
        bag_params, other = [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            (bag_params if (".genre." in name or ".artist." in name) else other).append(p)
        groups = [{"params": other, "lr": self.cfg.lr}]
        if bag_params:
            scale = self.cfg.bag_lr_scale if self.cfg.svd_init else 1.0
            groups.append({"params": bag_params, "lr": self.cfg.lr * scale, "weight_decay": 0.0})
        return torch.optim.AdamW(groups, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
