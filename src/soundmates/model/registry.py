"""Model registry under ``settings.models_dir``.

Layout::

    models/
      versions/<version>/model.pt           state dict of the LightningModule
      versions/<version>/preprocessor.json  vocabularies, IDF, dense mean/std (fitted on train)
      versions/<version>/meta.json          config, data version, feature schema, metrics, split, promotion
      CURRENT                               the served version (atomic write)

Promotion gate: a new model becomes ``current`` only if its validation recall@10 is not
worse than the current model's **on the same evaluation set** (the current model is
re-scored on the new model's validation users); otherwise it is kept but not served and
the result says why. A version directory is written aside and renamed into place, so a
crash never leaves half a model; nothing already stored is overwritten.

When Hopsworks is configured (``HOPSWORKS_API_KEY``), the version is also pushed to its
model registry (lazily imported; a failure there is reported, not fatal).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from soundmates.profiles import atomic_write_text

log = logging.getLogger(__name__)

CURRENT = "CURRENT"
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
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.versions_dir = self.root / "versions"

    # ---- reading
    def versions(self) -> list[str]:
        if not self.versions_dir.exists():
            return []
        return sorted(p.name for p in self.versions_dir.iterdir() if p.is_dir() and (p / "meta.json").exists())

    def current_version(self) -> str | None:
        p = self.root / CURRENT
        if not p.exists():
            return None
        v = p.read_text().strip()
        return v if v and (self.versions_dir / v / "meta.json").exists() else None

    def meta(self, version: str) -> dict[str, Any]:
        p = self.versions_dir / version / "meta.json"
        if not p.exists():
            raise RegistryError(f"model version {version!r} not found in {self.versions_dir} (have: {', '.join(self.versions()) or 'none'})")
        return json.loads(p.read_text())

    def load(self, version: str | None = None) -> LoadedModel:
        import torch

        from soundmates.model.datamodule import FeaturePreprocessor
        from soundmates.model.two_tower import TwoTowerModel

        version = version or self.current_version()
        if version is None:
            raise RegistryError(f"no current model in {self.root}: run `soundmates train` first")
        meta = self.meta(version)
        d = self.versions_dir / version
        pre = FeaturePreprocessor.from_state(json.loads((d / "preprocessor.json").read_text()))
        arch = meta["architecture"]
        model = TwoTowerModel(meta["config"], arch["genre_rows"], arch["artist_rows"], arch["dense_in"])
        model.load_state_dict(torch.load(d / "model.pt", map_location="cpu", weights_only=True))
        model.eval()
        return LoadedModel(version=version, model=model, preprocessor=pre, meta=meta)

    # ---- writing
    def _new_version(self) -> str:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        v, n = f"tt-{stamp}", 1
        while (self.versions_dir / v).exists():
            n += 1
            v = f"tt-{stamp}-{n}"
        return v

    def save(self, trained, *, metrics: dict[str, Any], data_version: int | None, feature_schema: dict[str, Any]) -> str:
        import torch

        self.versions_dir.mkdir(parents=True, exist_ok=True)
        version = self._new_version()
        dm = trained.datamodule
        meta = {
            "version": version,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "config": trained.config.model_dump(),
            "architecture": {"genre_rows": dm.pre.genres.rows, "artist_rows": dm.pre.artists.rows,
                             "dense_in": dm.pre.dense_dim, "dim": int(trained.model.dim)},
            "data_version": data_version,
            "feature_schema": feature_schema,
            "metrics": metrics,
            "val_eval_set": eval_set_id(dm.split.val),
            "split_sizes": {k: len(v) for k, v in dm.split.as_dict().items()},
            # held-out users, so `soundmates evaluate` scores the served model on users it never trained on
            "held_out": {"val": dm.split.val, "test": dm.split.test},
            "training": {"epochs": trained.epochs_run, "best_epoch": trained.best_epoch,
                         "seconds_per_epoch": trained.seconds_per_epoch, "log_dir": trained.log_dir, "notes": trained.notes},
            "promoted": False,
        }
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.versions_dir))
        try:
            torch.save(trained.model.state_dict(), tmp / "model.pt")
            (tmp / "preprocessor.json").write_text(json.dumps(dm.pre.state()))
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
            os.replace(tmp, self.versions_dir / version)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return version

    def _update_meta(self, version: str, **fields: Any) -> None:
        meta = self.meta(version)
        meta.update(fields)
        atomic_write_text(self.versions_dir / version / "meta.json", json.dumps(meta, indent=2, default=str))

    def promote(self, version: str, reason: str) -> None:
        self.meta(version)  # must exist
        self._update_meta(version, promoted=True, promotion_reason=reason)
        atomic_write_text(self.root / CURRENT, version + "\n")

    def register(self, trained, *, metrics: dict[str, Any], data_version: int | None, feature_schema: dict[str, Any]) -> dict[str, Any]:
        """Save ``trained``; promote it if it passes the gate. Returns version, promoted, reason."""
        from soundmates.model.evaluate import embed_rows
        from soundmates.model.metrics import retrieval_metrics

        new_val = float(trained.val_recall_at_10)
        current = self.current_version()
        version = self.save(trained, metrics=metrics, data_version=data_version, feature_schema=feature_schema)
        if current is None:
            promoted, reason, current_val = True, "first model in the registry", None
        else:
            try:
                old = self.load(current)
                qa, qb = trained.datamodule.pairs["val"]
                # the same evaluation set: score the current model on the new model's validation users
                q = embed_rows(old.model, old.preprocessor, qa, tower="query")
                c = embed_rows(old.model, old.preprocessor, qb, tower="candidate")
                current_val = retrieval_metrics(q @ c.T)["recall@10"]
            except Exception as e:  # noqa: BLE001 - an unreadable current model must not block a good new one
                log.warning("current model %s could not be scored: %s", current, e)
                current_val = None
            if current_val is None:
                promoted, reason = True, f"current model {current} could not be loaded or scored"
            elif new_val >= current_val:
                promoted, reason = True, f"validation recall@10 {new_val:.4f} >= current {current}'s {current_val:.4f} on the same users"
            else:
                promoted, reason = False, (f"kept but not served: validation recall@10 {new_val:.4f} < current {current}'s "
                                           f"{current_val:.4f} on the same users")
        if promoted:
            self.promote(version, reason)
        else:
            self._update_meta(version, promotion_reason=reason)
        return {"version": version, "promoted": promoted, "reason": reason, "previous": current,
                "previous_val_recall@10": current_val, "val_recall@10": new_val}


def push_to_hopsworks(version_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Also register the version in the Hopsworks model registry (only when configured)."""
    from soundmates.config import HopsworksSettings

    hs = HopsworksSettings()
    if not hs.configured:
        return {"hopsworks": "not configured"}
    try:
        import hopsworks

        project = hopsworks.login(api_key_value=hs.api_key.get_secret_value(), host=hs.host, project=hs.project)
        mr = project.get_model_registry()
        flat = {k: float(v) for k, v in (meta.get("metrics", {}).get("val") or {}).items() if isinstance(v, (int, float))}
        model = mr.python.create_model(name=HOPSWORKS_MODEL_NAME, metrics=flat, description=f"Soundmates two-tower {meta['version']}")
        model.save(str(version_dir))
        return {"hopsworks": "saved", "hopsworks_version": getattr(model, "version", None)}
    except Exception as e:  # noqa: BLE001 - local registry stays the source of truth
        log.warning("Hopsworks model registry push failed: %s", e)
        return {"hopsworks": f"failed: {e}"}
