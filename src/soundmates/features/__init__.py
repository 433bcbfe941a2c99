"""Taste features: canonical profiles -> vectors and bags for the feature store.

- ``schema``: the column contract of ``user_features`` and ``user_profiles`` (imports only pyarrow).
- ``encoder.TextEncoder``: sentence-transformers with a persistent (model, text) cache.
- ``taste``: per-user features (``taste_bags``, ``features_from_bags``, ``featurize_profiles``).
- ``columns``, ``counts``, ``batch``, ``rows``: ``featurize_profiles``' batch path (flat columns ->
  counts per bag -> vectors -> rows), the same values as the per-user functions, for a whole batch at once.
- ``views.split_views``: two disjoint halves of a user, for training.
- ``scaler.CombinedScaler``: standardisation of ``combined``, persisted under ``<data_dir>/features``.

Nothing heavy is imported here; the stage is wired end to end in ``soundmates.pipelines.features``.
"""
