"""Checking a batch against a group's schema and converting it to Arrow, shared by the backends.

A batch that does not fit raises :class:`SchemaMismatch` naming every offending column, before
anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from soundmates.store.errors import SchemaMismatch
from soundmates.store.groups import GroupSpec


def _describe_dtype(series: pd.Series) -> str:
    if series.dtype == object:
        sample = series.dropna()
        return f"object ({type(sample.iloc[0]).__name__} values)" if len(sample) else "object (all null)"
    return str(series.dtype)


def _kind(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return "number"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return "list"
    return str(t)


def to_arrow(group: str, df: pd.DataFrame, schema: pa.Schema | None, primary_key: Sequence[str]) -> pa.Table:
    """Check ``df`` against ``schema`` and convert it, or raise :class:`SchemaMismatch` naming every problem.

    ``schema`` None = first write of a group without a declared schema: the
    frame's own (inferred) types become the table's schema. Rows repeating a
    primary key keep the last one (a batch says what the row should become).
    """
    if isinstance(df, pa.Table) and schema is not None:
        return _arrow_checked(group, df, schema, primary_key)
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"upsert into {group!r} needs a pandas DataFrame, got {type(df).__name__}")
    problems: list[str] = []
    columns = [str(c) for c in df.columns]
    if len(set(columns)) != len(columns):
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        problems.append(f"duplicate column(s) {dupes}")
    missing_key = [c for c in primary_key if c not in columns]
    if missing_key:
        problems.append(f"missing primary key column(s) {missing_key}")
    if schema is not None:
        unexpected = [c for c in columns if c not in schema.names]
        if unexpected:
            problems.append(f"unexpected column(s) {unexpected} (expected {schema.names})")
        missing = [c for c in schema.names if c not in columns and c not in primary_key]
        if missing:
            problems.append(f"missing column(s) {missing}")
    if missing_key or len(set(columns)) != len(columns):
        raise SchemaMismatch(group, problems)

    for col in primary_key:
        nulls = int(df[col].isna().sum())
        if nulls:
            problems.append(f"primary key column {col!r} has {nulls} null value(s)")

    arrays: list[pa.Array] = []
    fields: list[pa.Field] = []
    names = [c for c in schema.names if c in columns] if schema is not None else columns
    for name in names:
        series = df[name]
        target = schema.field(name) if schema is not None else None
        try:
            if target is None:
                arr = pa.array(series, from_pandas=True)
                target = pa.field(name, arr.type, nullable=name not in primary_key)
            else:
                arr = _convert(series, target.type)
            if target is not None and not target.nullable and arr.null_count:
                raise pa.ArrowInvalid(f"{arr.null_count} null value(s) in a non-null column")
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError, OverflowError) as exc:
            expected = f" expected {target.type}" if target is not None else ""
            problems.append(f"column {name!r}:{expected} got {_describe_dtype(series)} ({exc})")
            continue
        arrays.append(arr)
        fields.append(target)
    if problems:
        raise SchemaMismatch(group, problems)
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    return _last_row_per_key(table, primary_key)


def _arrow_checked(group: str, table: pa.Table, schema: pa.Schema, primary_key: Sequence[str]) -> pa.Table:
    """:func:`to_arrow` for a batch that is already Arrow (the features stage): same checks, no pandas."""
    problems = []
    unexpected = [c for c in table.column_names if c not in schema.names]
    if unexpected:
        problems.append(f"unexpected column(s) {unexpected} (expected {schema.names})")
    missing = [c for c in schema.names if c not in table.column_names]
    if missing:
        problems.append(f"missing column(s) {missing}")
    if problems:
        raise SchemaMismatch(group, problems)
    arrays = []
    for f in schema:
        col = table.column(f.name)
        try:
            if not _same_kind(col.type, f.type):
                raise pa.ArrowTypeError(f"{col.type} values")
            col = col.cast(f.type, safe=True)
            if not f.nullable and col.null_count:
                raise pa.ArrowInvalid(f"{col.null_count} null value(s) in a non-null column")
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            problems.append(f"column {f.name!r}: expected {f.type} ({exc})")
            continue
        arrays.append(col)
    if problems:
        raise SchemaMismatch(group, problems)
    return _last_row_per_key(pa.Table.from_arrays(arrays, schema=schema), primary_key)


def _same_kind(got: pa.DataType, want: pa.DataType) -> bool:
    if pa.types.is_null(got):
        return True
    if _kind(got) != _kind(want):
        return False
    if _kind(want) == "list":
        return _same_kind(got.value_type, want.value_type)
    return True


def _convert(series: pd.Series, target: pa.DataType) -> pa.Array:
    """Convert a column to ``target`` without losing information, or raise.

    pyarrow's typed conversion silently truncates inside lists ([1.5] into list<int64>
    becomes [1]) and parses text into numbers on cast, so: infer the column's own type,
    insist on the same kind (number, text, bool, timestamp, list of ...), then cast
    safely (1.5 into an int column is an error). Timestamps may drop nanoseconds.
    """
    fast = _numeric_list_array(series, target)
    if fast is not None:
        return fast
    arr = pa.array(series, from_pandas=True)
    if arr.type == target:
        return arr
    if not _same_kind(arr.type, target):
        raise pa.ArrowTypeError(f"{arr.type} values")
    return arr.cast(target, safe=not pa.types.is_timestamp(target))


def _numeric_list_array(series: pd.Series, target: pa.DataType) -> pa.Array | None:
    """Fast path for embedding columns (numpy vectors into list<float32>): one concatenate
    instead of pyarrow converting each vector on its own (8x faster on 3,000 x 384).

    Returns None (use the general conversion) unless every value is a 1-D numpy array of
    a kind that converts without loss.
    """
    if not (pa.types.is_list(target) and series.dtype == object and len(series)):
        return None
    value_type = target.value_type
    if pa.types.is_floating(value_type):
        kinds = "fiu"
    elif pa.types.is_integer(value_type):
        kinds = "iu"
    else:
        return None
    values = series.to_numpy(dtype=object)
    mask = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    present = [v for v, m in zip(values, mask, strict=True) if not m]
    if not present or not all(isinstance(v, np.ndarray) and v.ndim == 1 and v.dtype.kind in kinds for v in present):
        return None
    lengths = np.fromiter((0 if m else len(v) for v, m in zip(values, mask, strict=True)), dtype=np.int64, count=len(values))
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] > np.iinfo(np.int32).max:
        return None
    flat = np.concatenate(present).astype(value_type.to_pandas_dtype(), copy=False)
    return pa.ListArray.from_arrays(
        pa.array(offsets.astype(np.int32)), pa.array(flat, type=value_type), type=target, mask=pa.array(mask)
    )


def _last_row_per_key(table: pa.Table, primary_key: Sequence[str]) -> pa.Table:
    if table.num_rows <= 1:
        return table
    keys = table.select(list(primary_key)).to_pandas()
    keep = ~keys.duplicated(keep="last").to_numpy()
    if keep.all():
        return table
    return table.filter(pa.array(keep))


def check_compatible(group: str, incoming: pa.Schema, stored: pa.Schema) -> None:
    """A table written before (maybe before a schema was declared) must keep its column set and kinds."""
    problems = []
    extra = [n for n in incoming.names if n not in stored.names]
    if extra:
        problems.append(f"unexpected column(s) {extra} (table has {stored.names})")
    lacking = [n for n in stored.names if n not in incoming.names]
    if lacking:
        problems.append(f"missing column(s) {lacking}")
    for f in incoming:
        if f.name in stored.names:
            want = stored.field(f.name).type
            if _kind(f.type) != _kind(want) or (_kind(want) == "list" and _kind(f.type.value_type) != _kind(want.value_type)):
                problems.append(f"column {f.name!r}: stored as {want}, got {f.type}")
    if problems:
        raise SchemaMismatch(group, problems)


def empty_frame(spec: GroupSpec) -> pd.DataFrame:
    """An empty frame with the group's columns (for reads of a group nobody wrote yet)."""
    if spec.schema is not None:
        return spec.schema.empty_table().to_pandas()
    return pd.DataFrame({c: pd.Series(dtype=object) for c in spec.primary_key})
