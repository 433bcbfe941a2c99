"""The user index: Annoy (angular) built per version, a fresh buffer for users added since, tombstones.

``UserIndex(settings)``: ``.build(user_ids, vectors, meta) -> version``, ``.query(vector, k, exclude)``
-> ``[(user_id, cosine)]`` (Annoy ∪ fresh buffer − tombstones), ``.add_fresh(user_id, vector)``,
``.remove(user_id)``, ``.manifest()``. Annoy itself is imported only when an index is built or loaded.
"""

from __future__ import annotations

from soundmates.index.annoy_index import (
    Hit,
    IndexCorrupt,
    IndexNotBuilt,
    SearchResult,
    UserIndex,
    cosine_from_angular,
)
from soundmates.index.fresh import FreshBuffer
from soundmates.index.tombstones import Tombstones
from soundmates.index.tuning import TARGET_RECALL, calibrate_search_k, choose_n_trees, exact_top_k, recall_at_k

__all__ = [
    "FreshBuffer",
    "Hit",
    "IndexCorrupt",
    "IndexNotBuilt",
    "SearchResult",
    "TARGET_RECALL",
    "Tombstones",
    "UserIndex",
    "calibrate_search_k",
    "choose_n_trees",
    "cosine_from_angular",
    "exact_top_k",
    "recall_at_k",
]
