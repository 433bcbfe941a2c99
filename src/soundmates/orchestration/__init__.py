"""Airflow glue for Soundmates: assets, the new-users trigger and sensor, task helpers.

This package, not ``dags/``, holds everything Airflow processes other than the
DAG processor must import: the triggerer never puts the dags folder on
``sys.path`` (see ../shared/airflow/NOTES.md), so a trigger class defined in a
DAG file works under ``dag.test()`` but fails in ``airflow standalone``.

Importing this package is cheap; the submodules that need Airflow import it
themselves (``assets``, ``triggers``, ``sensors``), and the pipeline stages are
imported only inside the functions that run them.
"""

from __future__ import annotations

# The DAG ids other tools (run.sh, the dashboard, the tests) refer to.
BOOTSTRAP_DAG_ID = "soundmates_bootstrap"
NEW_USERS_DAG_ID = "soundmates_new_users"
RETRAIN_DAG_ID = "soundmates_retrain"
INDEX_REBUILD_DAG_ID = "soundmates_index_rebuild"
DAG_IDS = (BOOTSTRAP_DAG_ID, NEW_USERS_DAG_ID, RETRAIN_DAG_ID, INDEX_REBUILD_DAG_ID)

# The pool every task that calls the Spotify API runs in; run.sh and the tests create it.
SPOTIFY_POOL = "spotify_api"
SPOTIFY_POOL_SLOTS = 2
SPOTIFY_CONN_ID = "spotify_default"
