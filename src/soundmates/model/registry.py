"""Model registry under ``settings.models_dir``.

Layout::

    models/
      versions/<version>/model.pt           state dict of the LightningModule
      versions/<version>/preprocessor.json  vocabularies, IDF, dense mean/std (fitted on train)
      versions/<version>/meta.json          config, data version, feature schema, metrics, split, promotion
      versions/<version>/feedback.npz       (kind feedback_tuned) the query-side map fitted on votes
      CURRENT                               the served version (atomic write)

A version is a two-tower model (``kind: two_tower``, method ``two_tower`` or its LSA start
``two_tower_init``; versions written before ``kind`` existed are two-tower ones), a tuned
baseline (``kind: baseline``: ``baseline.json`` + ``baseline.npz``, e.g. ALS item factors), or a
feedback-tuned embedder (``kind: feedback_tuned``, method e.g. ``als+feedback``, version
``fb-als-<stamp>``): ``feedback.npz`` holds the query-side weight matrix, ``base_version`` names
the registered base (model or baseline) whose candidate side it keeps (:meth:`ModelRegistry.candidate_version`).
Saving never promotes: ``current`` moves only through :mod:`soundmates.model.gate`, a step after
evaluation. A version directory is written aside and renamed into place, so a crash never
leaves half a model; nothing already stored is overwritten.

On an object store (``SOUNDMATES_DATA_URL``: :meth:`ModelRegistry.for_settings`) the layout is under
``models/``: files uploaded with ``meta.json`` last (create-only PUT), ``CURRENT`` one atomic PUT, meta
updates compare-and-swap; ``root`` is this host's cache of version files (immutable, so never stale).

When Hopsworks is configured (``HOPSWORKS_API_KEY``), the version is also pushed to its
model registry (lazily imported; a failure there is reported, not fatal).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from soundmates.atomic import atomic_write_text, commit_directory
from soundmates.objstore import ObjectStore

log = logging.getLogger(__name__)

CURRENT = "CURRENT"
FEEDBACK_KIND = "feedback_tuned"
FEEDBACK_FILE = "feedback.npz"
HOPSWORKS_MODEL_NAME = "soundmates_two_tower"


class RegistryError(RuntimeError):
    pass


@dataclass
class LoadedModel:
    version: str
    model: Any  # TwoTowerModel, eval mode
    preprocessor: Any  # FeaturePreprocessor
    meta: dict[str, Any]

    @property
    def dim(self) -> int:
        return int(self.model.dim)


def eval_set_id(user_ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(user_ids)).encode()).hexdigest()[:16]


class ModelRegistry:
    def __init__(self, root: str | Path, remote: ObjectStore | None = None):
        """``remote``: the object-store prefix of the registry (``root`` is then this host's cache)."""
        self.root = Path(root)
        self.versions_dir = self.root / "versions"
        self.remote = remote
        self.where = str(self.root) if remote is None else remote.url()  # for messages

    @classmethod
    def for_settings(cls, settings: Any) -> ModelRegistry:
        """The registry the settings name: ``models_dir``, or ``models/`` of ``SOUNDMATES_DATA_URL``."""
        remote = ObjectStore.for_settings(settings, "models")
        return cls(settings.models_dir) if remote is None else cls(settings.remote_cache_dir / "models", remote)

    # ---- reading
    def versions(self) -> list[str]:
        if self.remote is not None:
            return sorted(k.split("/")[1] for k in self.remote.keys("versions") if k.count("/") == 2 and k.endswith("/meta.json"))
        if not self.versions_dir.exists():
            return []
        return sorted(p.name for p in self.versions_dir.iterdir() if p.is_dir() and (p / "meta.json").exists())

    def _read(self, name: str) -> str | None:
        """The text of ``CURRENT`` or ``versions/<v>/meta.json`` (None: absent), from the store itself."""
        if self.remote is not None:
            return None if (data := self.remote.get(name)) is None else data.decode("utf-8")
        return (self.root / name).read_text() if (self.root / name).exists() else None

    def current_version(self) -> str | None:
        v = (self._read(CURRENT) or "").strip()
        return v if v and self._read(f"versions/{v}/meta.json") is not None else None

    def version_dir(self, version: str) -> Path:
        """The local folder of ``version``'s files (downloaded into this host's cache first, with a store)."""
        d = self.versions_dir / version
        if self.remote is not None and not (d / "meta.json").is_file():
            if not self.remote.download_dir(f"versions/{version}", d):
                raise RegistryError(f"model version {version!r} has no files in {self.where}")
        return d

    def served_version(self) -> str | None:
        """What serving uses: ``current`` (the gate's choice); before any promotion, the newest registered
        baseline (a tuned baseline is always servable); None when nothing is registered."""
        current = self.current_version()
        if current is not None:
            return current
        for v in sorted(self.versions(), key=lambda v: self.meta(v).get("created_at", ""), reverse=True):
            if self.meta(v).get("kind") == "baseline":
                return v
        return None

    def meta(self, version: str) -> dict[str, Any]:
        text = self._read(f"versions/{version}/meta.json")
        if text is None:
            raise RegistryError(
                f"model version {version!r} not found in {self.where}/versions (have: {', '.join(self.versions()) or 'none'})"
            )
        return json.loads(text)

    def candidate_version(self, version: str) -> str:
        """The version whose candidate side ``version`` serves: its base for a feedback-tuned one, else itself."""
        return str(self.meta(version).get("base_version") or version)

    def load(self, version: str | None = None) -> LoadedModel:
        """A two-tower version (old-style versions, without ``kind``, are two-tower ones)."""
        import torch

        from soundmates.model.preprocessing import FeaturePreprocessor
        from soundmates.model.two_tower import TwoTowerModel

        version = version or self.current_version()
        if version is None:
            raise RegistryError(f"no current model in {self.where}: run `soundmates train` first")
        meta = self.meta(version)
        if meta.get("kind", "two_tower") != "two_tower":
            raise RegistryError(
                f"version {version} is a {meta.get('method')} {meta.get('kind')}, not a two-tower model: use load_embedder"
            )
        d = self.version_dir(version)
        pre = FeaturePreprocessor.from_state(json.loads((d / "preprocessor.json").read_text()))
        arch = meta["architecture"]
        model = TwoTowerModel(meta["config"], arch["genre_rows"], arch["artist_rows"], arch["dense_in"])
        state = torch.load(d / "model.pt", map_location="cpu", weights_only=True)
        # item tables are training aids of the item objective: a serving copy may lack them
        missing, unexpected = model.load_state_dict(state, strict=False)
        bad = [k for k in [*missing, *unexpected] if not k.startswith("item_")]
        if bad:
            raise RegistryError(f"model version {version}: weights do not match the architecture ({bad[:3]})")
        model.eval()
        return LoadedModel(version=version, model=model, preprocessor=pre, meta=meta)

    def load_embedder(self, version: str | None = None):
        """The embedder of ``version`` (default: the served one): two-tower, baseline or feedback-tuned."""
        from soundmates.model.baselines import load_baseline
        from soundmates.model.embedder import TwoTowerEmbedder

        version = version or self.served_version()
        if version is None:
            raise RegistryError(f"nothing is registered in {self.where}: run `soundmates train` first")
        meta = self.meta(version)
        if meta.get("kind") == FEEDBACK_KIND:
            return self._load_feedback_tuned(version, meta)
        if meta.get("kind") == "baseline":
            emb = load_baseline(self.version_dir(version), version)
            emb.meta = meta
            return emb
        return TwoTowerEmbedder(self.load(version))

    def _load_feedback_tuned(self, version: str, meta: dict[str, Any]):
        """The base embedder (``base_version``) with the stored query-side map on top."""
        import numpy as np

        from soundmates.model.feedback_tuning import FeedbackTuned

        base_version = meta.get("base_version")
        if not base_version or self.meta(base_version).get("kind") == FEEDBACK_KIND:
            raise RegistryError(f"feedback-tuned version {version}: its base {base_version!r} is not a registered base embedder")
        base = self.load_embedder(base_version)
        with np.load(self.version_dir(version) / FEEDBACK_FILE) as z:
            weight = z["weight"]
        if weight.shape != (base.dim, base.dim):
            raise RegistryError(
                f"feedback-tuned version {version}: map {weight.shape} does not fit base {base_version} (dim {base.dim})"
            )
        emb = FeedbackTuned(base, weight, int(meta.get("votes") or 0), version=version)
        emb.meta = meta
        return emb

    # ---- writing
    def _new_version(self, prefix: str = "tt") -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        v, n = f"{prefix}-{stamp}", 1
        taken = set(self.versions()) if self.remote is not None else set()
        while (self.versions_dir / v).exists() or v in taken:
            n += 1
            v = f"{prefix}-{stamp}-{n}"
        return v

    def _write(self, version: str, meta: dict[str, Any], write_files) -> str:
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.versions_dir))
        try:
            write_files(tmp)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
            commit_directory(tmp, self.versions_dir / version)  # fsynced: a crash leaves no half-written version
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        # meta.json last and only if absent: readers see whole versions, and none is overwritten
        if self.remote is not None and not self.remote.upload_dir(
            self.versions_dir / version, f"versions/{version}", last="meta.json"
        ):
            raise RegistryError(f"model version {version!r} already exists in {self.where}")
        return version

    def save(
        self,
        trained,
        *,
        metrics: dict[str, Any],
        data_version: int | None,
        feature_schema: dict[str, Any],
        method: str = "two_tower",
        model=None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """Save a two-tower version (``model`` overrides ``trained.model``, e.g. its LSA start), unpromoted."""
        import torch

        model = model if model is not None else trained.model
        version = self._new_version("tt" if method == "two_tower" else "tti")
        dm = trained.datamodule
        meta = {
            "version": version,
            "kind": "two_tower",
            "method": method,
            "created_at": datetime.now(UTC).isoformat(timespec="microseconds"),
            "config": trained.config.model_dump(),
            "architecture": {
                "genre_rows": dm.pre.genres.rows,
                "artist_rows": dm.pre.artists.rows,
                "dense_in": dm.pre.dense_dim,
                "dim": int(model.dim),
            },
            "data_version": data_version,
            "feature_schema": feature_schema,
            "metrics": metrics,
            "val_eval_set": eval_set_id(dm.split.val),
            "split_sizes": {k: len(v) for k, v in dm.split.as_dict().items()},
            # held-out users, so `soundmates evaluate` scores the served model on users it never trained on
            "held_out": {"val": dm.split.val, "test": dm.split.test},
            "training": {
                "epochs": trained.epochs_run,
                "best_epoch": trained.best_epoch,
                "seconds_per_epoch": trained.seconds_per_epoch,
                "log_dir": trained.log_dir,
                "notes": trained.notes,
            },
            "promoted": False,
            **(extra or {}),
        }

        def files(tmp: Path) -> None:
            torch.save(model.state_dict(), tmp / "model.pt")
            (tmp / "preprocessor.json").write_text(json.dumps(dm.pre.state()))

        return self._write(version, meta, files)

    def save_baseline(
        self, embedder, *, metrics: dict[str, Any], data_version: int | None, extra: dict[str, Any] | None = None
    ) -> str:
        """Save a fitted baseline as a servable version (``kind: baseline``), unpromoted."""
        from soundmates.model.baselines import save_baseline

        version = self._new_version(f"bl-{embedder.name.replace('_', '')}")
        meta = {
            "version": version,
            "kind": "baseline",
            "method": embedder.name,
            "params": embedder.params,
            "created_at": datetime.now(UTC).isoformat(timespec="microseconds"),
            "dim": int(embedder.dim),
            "data_version": data_version,
            "metrics": metrics,
            "promoted": False,
            **(extra or {}),
        }
        self._write(version, meta, lambda tmp: save_baseline(embedder, tmp))
        embedder.version = version
        return version

    def save_feedback_tuned(
        self, tuned, *, base_version: str, data_version: int | None, extra: dict[str, Any] | None = None
    ) -> str:
        """Save a feedback-tuned embedder (``kind: feedback_tuned``) on the registered ``base_version``, unpromoted."""
        import numpy as np

        base_meta = self.meta(base_version)
        if base_meta.get("kind") == FEEDBACK_KIND:
            raise RegistryError(f"{base_version} is feedback-tuned itself: tune its base {base_meta.get('base_version')}")
        base_method = str(base_meta.get("method", "two_tower"))
        weight = np.asarray(tuned.weight, dtype=np.float32)
        version = self._new_version(f"fb-{base_method.replace('_', '')}")
        meta = {
            "version": version,
            "kind": FEEDBACK_KIND,
            "method": f"{base_method}+feedback",
            "base_version": base_version,
            "base_method": base_method,
            "created_at": datetime.now(UTC).isoformat(timespec="microseconds"),
            "dim": int(weight.shape[1]),
            "votes": int(tuned.votes),
            "data_version": data_version,
            "promoted": False,
            **(extra or {}),
        }
        self._write(version, meta, lambda tmp: np.savez(tmp / FEEDBACK_FILE, weight=weight))
        tuned.version = version
        return version

    def annotate(self, version: str, **fields: Any) -> None:
        """Add (or replace) fields of a version's meta.json (atomic), e.g. training's record of what it registered."""
        self._update_meta(version, **fields)

    def _update_meta(self, version: str, **fields: Any) -> None:
        if self.remote is None:
            meta = self.meta(version)
            meta.update(fields)
            atomic_write_text(self.versions_dir / version / "meta.json", json.dumps(meta, indent=2, default=str))
            return
        key = f"versions/{version}/meta.json"
        for _ in range(20):  # compare-and-swap: a concurrent update of another field is never lost
            got = self.remote.get_versioned(key)
            if got is None:
                raise RegistryError(f"model version {version!r} not found in {self.where}")
            meta = {**json.loads(got[0]), **fields}
            if self.remote.put(key, json.dumps(meta, indent=2, default=str).encode(), if_etag=got[1]):
                return
        raise RegistryError(f"model version {version!r}: meta.json kept changing under this update in {self.where}")

    def promote(self, version: str, reason: str) -> None:
        self.meta(version)  # must exist
        self._update_meta(version, promoted=True, promotion_reason=reason)
        if self.remote is not None:
            self.remote.put(CURRENT, (version + "\n").encode())  # one PUT: readers see the old or the new name
        else:
            atomic_write_text(self.root / CURRENT, version + "\n")

    def mark_not_promoted(self, version: str, reason: str) -> None:
        self._update_meta(version, promotion_reason=reason)

    def register(
        self, trained, *, metrics: dict[str, Any], data_version: int | None, feature_schema: dict[str, Any]
    ) -> dict[str, Any]:
        """Save ``trained`` unpromoted: promotion is the gate's step after evaluation (:mod:`soundmates.model.gate`)."""
        version = self.save(trained, metrics=metrics, data_version=data_version, feature_schema=feature_schema)
        return {
            "version": version,
            "promoted": False,
            "reason": "registered, not promoted: promotion is the step after evaluation",
            "previous": self.current_version(),
            "val_recall@10": float(trained.val_recall_at_10),
        }


def push_to_hopsworks(version_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Also register the version in the Hopsworks model registry (only when configured)."""
    from soundmates.config import HopsworksSettings

    hs = HopsworksSettings()
    if not hs.configured or hs.api_key is None:  # configured implies a key; the second test narrows its type
        return {"hopsworks": "not configured"}
    try:
        import hopsworks

        project = hopsworks.login(api_key_value=hs.api_key.get_secret_value(), host=hs.host, project=hs.project)
        mr = project.get_model_registry()
        flat = {k: float(v) for k, v in (meta.get("metrics", {}).get("val") or {}).items() if isinstance(v, (int, float))}
        model = mr.python.create_model(
            name=HOPSWORKS_MODEL_NAME, metrics=flat, description=f"Soundmates two-tower {meta['version']}"
        )
        model.save(str(version_dir))
        return {"hopsworks": "saved", "hopsworks_version": getattr(model, "version", None)}
    except Exception as e:  # noqa: BLE001 - local registry stays the source of truth
        log.warning("Hopsworks model registry push failed: %s", e)
        return {"hopsworks": f"failed: {e}"}
