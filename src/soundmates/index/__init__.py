"""The user index: ANN versions (Annoy or Voyager) published atomically, a fresh buffer for users added since, sticky removals.

``UserIndex(settings)``: ``.build(user_ids, vectors, meta) -> version``, ``.query(vector, k, exclude)``
-> ``[(user_id, cosine)]`` (index ∪ fresh buffer − removed users), ``.add_fresh(user_id, vector, model_version)``,
``.remove(user_id)``, ``.is_removed(user_id)``, ``.manifest()``, ``.status()``. The ANN library is imported
only when an index is built or loaded.
"""

from __future__ import annotations

from soundmates.index.annoy_backend import cosine_from_angular
from soundmates.index.errors import IndexCorrupt, IndexNotBuilt, RemovalsUnreadable
from soundmates.index.fresh import FreshBuffer
from soundmates.index.tombstones import Tombstones
from soundmates.index.tuning import (
    TARGET_RECALL,
    calibrate_search_k,
    choose_n_trees,
    exact_top_k,
    recall_at_k,
)
from soundmates.index.user_index import Hit, SearchResult, UserIndex

__all__ = [
    "TARGET_RECALL",
    "FreshBuffer",
    "Hit",
    "IndexCorrupt",
    "IndexNotBuilt",
    "RemovalsUnreadable",
    "SearchResult",
    "Tombstones",
    "UserIndex",
    "calibrate_search_k",
    "choose_n_trees",
    "cosine_from_angular",
    "exact_top_k",
    "recall_at_k",
]
