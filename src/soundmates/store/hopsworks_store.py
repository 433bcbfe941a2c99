"""Hopsworks feature store backend (the official ``hopsworks`` 5.x SDK).

Selected with ``SOUNDMATES_STORE_BACKEND=hopsworks``; credentials come from
``HOPSWORKS_API_KEY`` / ``HOPSWORKS_HOST`` / ``HOPSWORKS_PROJECT``
(:class:`soundmates.config.HopsworksSettings`).

* We refuse to start without an API key *before* importing the SDK:
  ``hopsworks.login()`` without one falls back to an interactive password
  prompt, which would hang an Airflow task forever.
* Feature groups are online-enabled and embedding columns get an explicit
  COSINE similarity (the SDK's default is L2, which ranks un-normalised
  vectors by length as much as by taste).
* The data version is Hopsworks' commit id (a commit timestamp in ms, so it
  increases like the Delta version does); ``read(as_of=commit_id)`` reads
  the group as of that commit.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from soundmates.config import HopsworksSettings
from soundmates.store.base import (
    DataVersionNotFound,
    FeatureStore,
    GroupInfo,
    GroupSpec,
    SchemaMismatch,
    StoreUnavailable,
    empty_frame,
    group_spec,
    known_groups,
    to_arrow,
)

log = logging.getLogger(__name__)

NOT_CONFIGURED = (
    "the Hopsworks feature store is selected (SOUNDMATES_STORE_BACKEND=hopsworks) but HOPSWORKS_API_KEY is unset: "
    "set HOPSWORKS_API_KEY (and HOPSWORKS_HOST, HOPSWORKS_PROJECT for your own cluster), "
    "or unset SOUNDMATES_STORE_BACKEND to use the embedded store"
)


def embedding_index_for(spec: GroupSpec, sample: pd.DataFrame):
    """An ``EmbeddingIndex`` with COSINE similarity for the group's embedding columns, or None.

    The dimension of each column is read from the first non-empty vector of ``sample``
    (the encoder decides it, so it is not in the schema).
    """
    from hsfs import embedding

    columns = [c for c in spec.embedding_columns if c in sample.columns]
    if not columns:
        return None
    index = embedding.EmbeddingIndex()
    for col in columns:
        dim = next((len(v) for v in sample[col] if v is not None and len(v) > 0), 0)
        if dim:
            index.add_embedding(col, dim, similarity_function_type=embedding.SimilarityFunctionType.COSINE)
    return index if index.get_embeddings() else None


class HopsworksFeatureStore(FeatureStore):
    backend = "hopsworks"

    def __init__(self, settings: HopsworksSettings | None = None, *, wait_for_job: bool = True, name_prefix: str = ""):
        """``name_prefix`` is prepended to every feature-group name on the server (tests use it to
        run the contract in a real project without touching its real groups)."""
        self.settings = settings or HopsworksSettings()
        if not self.settings.configured:
            raise StoreUnavailable(NOT_CONFIGURED)
        self.wait_for_job = wait_for_job
        self.name_prefix = name_prefix
        self._project = None
        self._fs = None
        self._groups: dict[tuple[str, int], Any] = {}

    # --- connection -------------------------------------------------------------------
    def _store(self):
        if self._fs is None:
            import hopsworks  # heavy, and only when this backend is actually used

            key = self.settings.api_key.get_secret_value() if self.settings.api_key else ""
            if not key:  # re-checked: login() without a key would prompt for a password
                raise StoreUnavailable(NOT_CONFIGURED)
            try:
                self._project = hopsworks.login(host=self.settings.host, project=self.settings.project, api_key_value=key)
                self._fs = self._project.get_feature_store()
            except Exception as exc:
                where = self.settings.host or "Hopsworks Serverless"
                raise StoreUnavailable(f"could not log in to Hopsworks at {where}: {exc}") from exc
        return self._fs

    def _group(self, spec: GroupSpec, version: int, sample: pd.DataFrame | None = None):
        """The feature group handle; created (from ``sample``) on the first write, None when absent on reads."""
        cached = self._groups.get((spec.name, version))
        if cached is not None:
            return cached
        fs = self._store()
        if sample is None:
            try:
                fg = fs.get_feature_group(self.name_prefix + spec.name, version=version)
            except Exception as exc:  # noqa: BLE001 - RestAPIError "not found" on older servers
                log.debug("feature group %s v%s not found: %s", spec.name, version, exc)
                fg = None
        else:
            fg = fs.get_or_create_feature_group(
                name=self.name_prefix + spec.name,
                version=version,
                description=spec.description,
                primary_key=list(spec.primary_key),
                online_enabled=True,
                embedding_index=embedding_index_for(spec, sample),
            )
        if fg is not None:
            self._groups[(spec.name, version)] = fg
        return fg

    def close(self) -> None:
        if self._project is not None:
            import hopsworks

            try:
                hopsworks.logout()
            finally:
                self._project = self._fs = None
                self._groups.clear()

    # --- the contract -----------------------------------------------------------------------
    def upsert(self, group: str, df: pd.DataFrame, *, version: int = 1) -> int:
        spec = group_spec(group)
        table = to_arrow(group, df, spec.schema, spec.primary_key)
        frame = table.to_pandas()
        fg = self._group(spec, version, sample=frame)
        if spec.schema is None and getattr(fg, "features", None):
            stored = [f.name for f in fg.features]
            if sorted(stored) != sorted(frame.columns):
                raise SchemaMismatch(group, [f"columns {sorted(frame.columns)} differ from the stored {sorted(stored)}"])
        if len(frame):
            fg.insert(frame, operation="upsert", write_options={"wait_for_job": self.wait_for_job})
        latest = self.data_version(group, version=version)
        return latest if latest is not None else 0

    def read(
        self,
        group: str,
        *,
        version: int = 1,
        as_of: int | None = None,
        keys: list[str] | None = None,
    ) -> pd.DataFrame:
        spec = group_spec(group)
        fg = self._group(spec, version)
        if fg is None:
            if as_of is not None:
                raise DataVersionNotFound(f"feature group {group!r} v{version} was never written (asked for as_of={as_of})")
            return empty_frame(spec)
        if as_of is not None:
            commits = self._commits(fg)
            if as_of not in commits:
                latest = max(commits) if commits else None
                raise DataVersionNotFound(f"feature group {group!r} v{version} has no data version {as_of} (latest is {latest})")
            frame = fg.read(wallclock_time=as_of, dataframe_type="pandas")
        else:
            frame = fg.read(dataframe_type="pandas")
        if keys is not None:
            column = "user_id" if "user_id" in frame.columns else spec.primary_key[0]
            frame = frame[frame[column].astype(str).isin([str(k) for k in keys])]
        if spec.schema is not None:
            frame = frame[[c for c in spec.schema.names if c in frame.columns]]
        frame = frame.sort_values(list(spec.primary_key), kind="stable") if len(frame) > 1 else frame
        return frame.reset_index(drop=True)

    def delete(self, group: str, user_ids: list[str], *, version: int = 1) -> int:
        spec = group_spec(group)
        if isinstance(user_ids, str):
            raise TypeError("delete() takes a list of user ids, not one string")
        if not user_ids:
            return 0
        fg = self._group(spec, version)
        if fg is None:
            return 0
        rows = self.read(group, version=version, keys=list(user_ids))
        if rows.empty:
            return 0
        # The offline delete matches on the primary key (plus event time / partitions, which we do not use).
        keys = rows[list(spec.primary_key)]
        if hasattr(fg, "remove_rows"):  # 5.x: both stores of an online-enabled group
            fg.remove_rows(keys)
        else:  # older SDKs
            fg.commit_delete_record(keys)
        return len(keys)

    def data_version(self, group: str, *, version: int = 1) -> int | None:
        fg = self._group(group_spec(group), version)
        if fg is None:
            return None
        commits = self._commits(fg, limit=1)
        return max(commits) if commits else None

    @staticmethod
    def _commits(fg, limit: int | None = None) -> list[int]:
        return sorted(int(c) for c in (fg.commit_details(limit=limit) or {}))

    def groups(self) -> list[GroupInfo]:
        fs = self._store()
        infos = []
        for spec in known_groups():
            try:
                handles = fs.get_feature_groups(self.name_prefix + spec.name) or []
            except Exception as exc:  # noqa: BLE001 - no group of that name yet
                log.debug("no feature group %s: %s", spec.name, exc)
                continue
            for fg in handles:
                self._groups[(spec.name, fg.version)] = fg
                infos.append(
                    GroupInfo(
                        name=spec.name,
                        version=int(fg.version),
                        rows=len(fg.read(dataframe_type="pandas")),
                        data_version=self.data_version(spec.name, version=int(fg.version)),
                        primary_key=list(spec.primary_key),
                    )
                )
        return infos

    # --- beyond the contract: similarity search in Hopsworks' vector index ------------------
    def find_neighbors(
        self, group: str, vector: np.ndarray | list[float], *, k: int = 10, col: str | None = None, version: int = 1
    ) -> list[tuple[float, dict]]:
        """The ``k`` rows whose embedding column ``col`` is most cosine-similar to ``vector``: [(score, row)]."""
        spec = group_spec(group)
        fg = self._group(spec, version)
        if fg is None:
            return []
        names = [f.name for f in fg.features]
        hits = fg.find_neighbors([float(x) for x in np.asarray(vector).ravel()], col=col, k=k)
        return [(float(score), dict(zip(names, values, strict=False))) for score, values in hits]
