"""Stand-ins for the sentence-transformers model behind ``TextEncoder``: no weights to load."""

from __future__ import annotations

import hashlib

import numpy as np


class HashModel:
    """One fixed unit vector per text, seeded by the text's hash, ``dim`` wide (8 unless told)."""

    def __init__(self, dim: int = 8, model_id: str | None = None):
        self.dim = dim
        self.model_id = model_id or f"test-hash-{dim}"

    def encode(self, texts, **_):
        out = []
        for t in texts:
            rng = np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16))
            v = rng.normal(size=self.dim)
            out.append(v / np.linalg.norm(v))
        return np.array(out, dtype=np.float32).reshape(len(out), self.dim)

    def get_sentence_embedding_dimension(self):
        return self.dim


class CountingModel:
    """Wraps a model and records every text it is asked to encode."""

    def __init__(self, inner):
        self.inner = inner
        self.seen: list[str] = []
        self.model_id = getattr(inner, "model_id", "counting")

    def encode(self, texts, **kw):
        self.seen.extend(texts)
        return self.inner.encode(texts, **kw)

    def get_sentence_embedding_dimension(self):
        return self.inner.get_sentence_embedding_dimension()
