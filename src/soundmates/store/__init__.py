"""Feature store: one interface (:class:`FeatureStore`), two backends chosen by configuration.

``get_store(settings)`` returns the embedded Delta Lake store under
``settings.store_dir`` by default (its tables under ``SOUNDMATES_DATA_URL``'s ``store/`` prefix
when that is set: see :mod:`soundmates.objstore`), or Hopsworks when
``SOUNDMATES_STORE_BACKEND=hopsworks`` (which then needs ``HOPSWORKS_API_KEY``).
Nothing heavy is imported here: ``deltalake`` and ``hopsworks`` load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from soundmates.store.base import (
    INBOX_GROUP,
    DataVersionNotFound,
    FeatureStore,
    GroupInfo,
    GroupSpec,
    SchemaMismatch,
    StoreDamaged,
    StoreError,
    StoreUnavailable,
    UnknownGroup,
    group_spec,
    known_groups,
    register_group,
)

if TYPE_CHECKING:
    from soundmates.config import HopsworksSettings, Settings

__all__ = [
    "INBOX_GROUP",
    "DataVersionNotFound",
    "FeatureStore",
    "GroupInfo",
    "GroupSpec",
    "SchemaMismatch",
    "StoreDamaged",
    "StoreError",
    "StoreUnavailable",
    "UnknownGroup",
    "get_store",
    "group_spec",
    "known_groups",
    "register_group",
]


def get_store(settings: Settings | None = None, *, hopsworks: HopsworksSettings | None = None) -> FeatureStore:
    """The configured feature store (embedded unless ``settings.store_backend == "hopsworks"``)."""
    from soundmates.config import get_settings

    settings = settings or get_settings()
    if settings.store_backend == "hopsworks":
        from soundmates.config import HopsworksSettings
        from soundmates.store.hopsworks_store import HopsworksFeatureStore

        return HopsworksFeatureStore(hopsworks or HopsworksSettings())
    if settings.store_backend != "embedded":  # Settings validates this; guard direct construction
        raise StoreUnavailable(f"unknown store backend {settings.store_backend!r} (use 'embedded' or 'hopsworks')")
    from soundmates.objstore import ObjectStore
    from soundmates.store.delta import DeltaFeatureStore

    return DeltaFeatureStore(settings.store_dir, remote=ObjectStore.for_settings(settings, "store"))
