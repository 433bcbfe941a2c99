"""The Assets that chain the Soundmates DAGs (Airflow 3 data-aware scheduling).

    soundmates_new_users  --NEW_FEATURES-->  soundmates_retrain  --MODEL-->  soundmates_index_rebuild
                          --BUFFER_FULL--------------------------------->  soundmates_index_rebuild
    soundmates_bootstrap  --NEW_FEATURES, MODEL, INDEX
    soundmates_index_rebuild --INDEX

URIs name the logical thing, not a path: the data directory differs between a
laptop, CI and docker-compose, while the DAG graph must not.
"""

from __future__ import annotations

from airflow.sdk import Asset

NEW_FEATURES = Asset(name="soundmates_new_features", uri="soundmates://store/user_features")
MODEL = Asset(name="soundmates_model", uri="soundmates://models/current")
BUFFER_FULL = Asset(name="soundmates_fresh_buffer_full", uri="soundmates://index/fresh_buffer")
INDEX = Asset(name="soundmates_index", uri="soundmates://index/current")
