"""How the features stage writes rows: Arrow tables of row dicts, and a scaler refit's batches stored together.

A refit rescales every user's ``combined`` vector, so no row may be stored before the scaler that
scaled it is fitted, and none may be stored under a scaler that is never saved: everything is
written at the end, features first, then the scaler, then the profile hashes (which say "stored").
Only the feature rows are kept between batches, as Arrow tables with the raw ``combined`` vectors
apart: holding every profile at once took 23 GB for 99,000 users, and a row is a small part of one.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from soundmates.features import schema as S


def arrow_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Rows (dicts, numpy vectors inside) as an Arrow table of ``schema``, without pandas."""
    arrays = []
    for f in schema:
        values = [r[f.name] for r in rows]
        if (
            pa.types.is_list(f.type)
            and pa.types.is_floating(f.type.value_type)
            and values
            and all(isinstance(v, np.ndarray) for v in values)
        ):
            offsets = np.zeros(len(values) + 1, dtype=np.int32)
            np.cumsum([len(v) for v in values], out=offsets[1:])
            flat = np.concatenate(values).astype(np.float32, copy=False) if offsets[-1] else np.zeros(0, np.float32)
            arrays.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=f.type.value_type), type=f.type))
        else:
            arrays.append(pa.array([v.tolist() if isinstance(v, np.ndarray) else v for v in values], type=f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


class RefitBatches:
    """Collects featurized batches (:meth:`add`); :meth:`store` fits the scaler on them all and writes them."""

    def __init__(self, settings, encoder, seed: int):
        self.settings, self.encoder, self.seed = settings, encoder, seed
        self._features: list[pa.Table] = []
        self._profiles: list[pa.Table] = []
        self._raw: list[np.ndarray] = []
        self._full_ids: list[str] = []
        self._full_hashes: list[str] = []
        self._full_rows: list[np.ndarray] = []
        self._no_views: list[str] = []
        self._rows = 0

    def add(self, part, hashes: dict[str, str]) -> dict:
        """Featurize one batch of profiles and keep its rows; the batch's ``computed``, ``no_views``, ``rejected``."""
        from soundmates.features.taste import featurize_profiles

        batch = featurize_profiles(
            part, self.encoder, top_n=self.settings.top_n_artists, views=True, seed=self.seed, hashes=hashes
        )
        rows = batch.feature_rows
        if rows:
            self._raw.append(np.stack([r["combined"] for r in rows]))
            full = [i for i, r in enumerate(rows) if r["view"] == S.VIEW_FULL]
            self._full_rows.append(np.asarray(full, dtype=np.int64) + self._rows)
            self._full_ids += [rows[i]["user_id"] for i in full]
            self._full_hashes += [rows[i]["profile_hash"] for i in full]
            empty = np.zeros(0, dtype=np.float32)
            self._features.append(arrow_table([{**r, "combined": empty} for r in rows], S.USER_FEATURES_SCHEMA))
            self._profiles.append(arrow_table(batch.profile_rows, S.USER_PROFILES_SCHEMA))
            self._rows += len(rows)
        self._no_views += batch.no_views
        return {"computed": {r["user_id"] for r in rows}, "no_views": len(batch.no_views), "rejected": batch.rejected}

    def store(self, store, stored_hash: dict[str, str]):
        """Fit the scaler on every full view, scale and write all rows, save the scaler; returns it (None: no rows)."""
        from soundmates.features.scaler import CombinedScaler

        if not self._rows:
            return None
        raw = np.concatenate(self._raw)
        self._raw = []
        scaler = CombinedScaler.fit(
            raw[np.concatenate(self._full_rows)],
            user_ids=self._full_ids,
            profile_hashes=self._full_hashes,
            encoder_model=self.encoder.model_id,
            encoder_dim=self.encoder.dim,
        )
        scaled = scaler.transform(raw)
        del raw
        field = S.USER_FEATURES_SCHEMA.field("combined")
        at = np.cumsum([len(t) for t in self._features])[:-1]  # one chunk per batch: int32 offsets stay in range
        combined = pa.chunked_array([_f32_lists(m, field.type) for m in np.split(scaled, at)], type=field.type)
        del scaled
        table = pa.concat_tables(self._features)
        self._features = []
        table = table.set_column(table.schema.get_field_index("combined"), field, combined)
        drop_stale_halves(store, [u for u in self._no_views if u in stored_hash])
        store.upsert_arrow(S.USER_FEATURES, table)
        scaler.save(self.settings)  # after the rows it scaled are stored: a crash before leaves the old pair intact
        store.upsert_arrow(S.USER_PROFILES, pa.concat_tables(self._profiles))
        return scaler


def _f32_lists(matrix: np.ndarray, type_: pa.DataType) -> pa.Array:
    """The rows of ``matrix`` as an Arrow list<float32> array."""
    flat = np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1)
    offsets = np.arange(0, matrix.shape[0] * matrix.shape[1] + 1, matrix.shape[1], dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=type_.value_type), type=type_)


def drop_stale_halves(store, users: list[str]) -> None:
    """Users who had a/b rows before but are now too small to split: their old halves go first."""
    if not users:
        return
    old = store.read(S.USER_FEATURES, keys=users)
    stale = sorted(set(old.loc[old["view"] != S.VIEW_FULL, "user_id"]))
    if stale:
        store.delete(S.USER_FEATURES, stale)
