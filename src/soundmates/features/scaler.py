"""The scaler of the ``combined`` vector: fitted on training users, persisted, reused at serving time.

Stored as JSON (no pickle: readable, diffable, safe to load) at
``<data_dir>/features/scaler.json``, with what it was fitted on (users, their
profile hashes, the encoder, the layout). Every fit also keeps a numbered copy
``scaler-v<N>.json``, so rows scaled by an older version can be traced.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from soundmates.atomic import atomic_write_text
from soundmates.config import Settings

SCALER_FILENAME = "scaler.json"


class ScalerError(RuntimeError):
    """No scaler fitted yet, or one that does not fit these rows."""


def scaler_dir(settings: Settings) -> Path:
    return settings.data_dir / "features"


def scaler_path(settings: Settings) -> Path:
    return scaler_dir(settings) / SCALER_FILENAME


@dataclass
class CombinedScaler:
    """Per-dimension standardisation; NaN (missing) becomes 0, i.e. the fitted mean."""

    mean: np.ndarray
    scale: np.ndarray
    encoder_model: str
    encoder_dim: int
    version: int = 0
    fitted_on: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def fit(
        cls, matrix: np.ndarray, *, user_ids: list[str], profile_hashes: list[str], encoder_model: str, encoder_dim: int
    ) -> CombinedScaler:
        x = np.asarray(matrix, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ScalerError(f"cannot fit the scaler on {x.shape[0] if x.ndim else 0} rows: need at least one user")
        # NaN is ignored when fitting; a column with no value at all gets mean 0, scale 1.
        mean, scale = _standardise(x)
        mean = np.nan_to_num(mean, nan=0.0)
        scale = np.nan_to_num(scale, nan=1.0)
        scale[scale == 0] = 1.0
        digest = hashlib.sha256("\n".join(f"{u}\t{h}" for u, h in sorted(zip(user_ids, profile_hashes))).encode()).hexdigest()
        return cls(
            mean=mean,
            scale=scale,
            encoder_model=encoder_model,
            encoder_dim=encoder_dim,
            fitted_on={
                "n_users": len(user_ids),
                "users_sha256": digest,
                "fitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )

    def transform(self, matrix: np.ndarray) -> np.ndarray:
        x = np.asarray(matrix, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.shape[1] != self.dim:
            raise ScalerError(
                f"combined vectors have {x.shape[1]} values, the scaler was fitted on {self.dim} "
                f"(encoder {self.encoder_model}, dim {self.encoder_dim}); rebuild with `soundmates features build --force`"
            )
        return np.nan_to_num((x - self.mean) / self.scale, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

    def matches(self, encoder_model: str, encoder_dim: int, combined_dim: int) -> bool:
        return self.encoder_model == encoder_model and self.encoder_dim == encoder_dim and self.dim == combined_dim

    # --- persistence ------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "encoder_model": self.encoder_model,
                "encoder_dim": self.encoder_dim,
                "dim": self.dim,
                "fitted_on": self.fitted_on,
                "mean": [float(v) for v in self.mean],
                "scale": [float(v) for v in self.scale],
            }
        )

    def save(self, settings: Settings) -> Path:
        """Write as the next version and make it current (atomic writes)."""
        current = load_scaler(settings)
        previous = max([current.version if current else 0, *_numbered_versions(settings)])
        self.version = previous + 1
        text = self.to_json()
        atomic_write_text(scaler_dir(settings) / f"scaler-v{self.version}.json", text)
        path = scaler_path(settings)
        atomic_write_text(path, text)
        return path

    @classmethod
    def from_json(cls, text: str, source: str = "scaler") -> CombinedScaler:
        try:
            d = json.loads(text)
            mean = np.array(d["mean"], dtype=np.float64)
            scale = np.array(d["scale"], dtype=np.float64)
            if mean.shape != scale.shape or mean.ndim != 1 or d.get("dim", mean.shape[0]) != mean.shape[0]:
                raise ValueError(f"mean {mean.shape} and scale {scale.shape} disagree")
            return cls(mean, scale, d["encoder_model"], int(d["encoder_dim"]), int(d.get("version", 0)), d.get("fitted_on", {}))
        except (ValueError, KeyError, TypeError) as exc:
            raise ScalerError(
                f"{source} is not a valid scaler file ({exc}); rebuild with `soundmates features build --force`"
            ) from exc


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and scale ignoring NaN, as ``sklearn.preprocessing.StandardScaler().fit(x)`` gives them.

    The same operations in the same order as scikit-learn's ``_incremental_mean_and_var`` (first call,
    corrected two-pass variance) and its near-constant test (scale 1), so the values are identical,
    without importing scikit-learn (seconds of a features build).
    """
    if np.isinf(x).any():
        raise ValueError("Input X contains infinity or a value too large for dtype('float64').")
    nan = np.isnan(x)
    count = x.shape[0] - np.nansum(nan.astype(np.float64), axis=0)
    total = np.nansum(x, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / count
        temp = x - total / count
        correction = np.nansum(temp, axis=0)
        temp **= 2
        var = (np.nansum(temp, axis=0) - correction**2 / count) / count
        eps = np.finfo(np.float64).eps
        constant = var <= count * eps * var + (count * mean * eps) ** 2
        scale = np.sqrt(var)
    scale[constant] = 1.0
    return mean, scale


def _numbered_versions(settings: Settings) -> list[int]:
    out = []
    for p in scaler_dir(settings).glob("scaler-v*.json"):
        try:
            out.append(int(p.stem.removeprefix("scaler-v")))
        except ValueError:
            pass
    return out


def load_scaler(settings: Settings) -> CombinedScaler | None:
    """The current scaler, or None when none was fitted yet."""
    path = scaler_path(settings)
    if not path.exists():
        return None
    return CombinedScaler.from_json(path.read_text(encoding="utf-8"), str(path))
