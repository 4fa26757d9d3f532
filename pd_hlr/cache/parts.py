"""Parquet parts: the one storage schema, entries → table, writing and reading parts.

Every part is written with :data:`CACHE_SCHEMA`, its rows in write order (the numbers of one
run sit together, and a row group's statistics of ``options`` / ``api`` prune the other keys),
and read through the same schema, so an older part with fewer columns still loads (missing
columns read as null; a missing ``seq`` ranks the row below every sequenced one, by
``checked_at``).
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .. import schema
from .entry import BadEntry, Entry, legacy_seq
from .folder import part_name

logger = logging.getLogger("pd_hlr.cache")

#: Bump when the stored columns change meaning. Older parts still load (missing columns read
#: as null through :data:`CACHE_SCHEMA`); their ``raw`` JSON lets new columns be re-derived.
#: 2: the ``seq`` column (the folder's write sequence).
CACHE_SCHEMA_VERSION = 2

KEY_COLUMNS = ("api", "options", "number")
#: Rows per row group of a part: a lookup reads only the row groups that hold a hit.
ROW_GROUP_ROWS = 16384
#: Rows a scan hands over at once (a memo-less read holds one such chunk at a time).
CHUNK_ROWS = 1 << 20


def _union_api_fields() -> list[schema.Field]:
    seen: dict[str, schema.Field] = {}
    for f in (*schema.SUMMARY_FIELDS, *schema.DETAILED_FIELDS):
        seen.setdefault(f.column, f)
    return list(seen.values())


API_FIELDS = _union_api_fields()

#: The one schema every part is written with and every part is read through.
CACHE_SCHEMA = pa.schema(
    [
        pa.field("number", pa.large_string()),
        pa.field("options", pa.large_string()),
        pa.field("api", pa.large_string()),
        pa.field("checked_at", pa.timestamp("us", tz="UTC")),
        pa.field("schema_version", pa.int16()),
        pa.field("temporary", pa.bool_()),
        pa.field("raw", pa.large_string()),
        *(pa.field(f.column, schema.ARROW_TYPES[f.kind]) for f in API_FIELDS),
        pa.field("hlr_extra", pa.large_string()),
        pa.field("seq", pa.int64()),
        pa.field("key", pa.int64()),
    ]
)

#: Columns that are bookkeeping, not API answer columns.
META_COLUMNS = (
    "number",
    "options",
    "api",
    "checked_at",
    "schema_version",
    "temporary",
    "raw",
    "seq",
    "key",
)
#: The answer columns (both modes) and ``hlr_extra``.
ANSWER_COLUMNS = [f.name for f in CACHE_SCHEMA if f.name not in META_COLUMNS]
#: Every column but the raw JSON (the bulk of a part, needed only by to_frame and compaction).
LEAN_COLUMNS = [f.name for f in CACHE_SCHEMA if f.name != "raw"]


@functools.lru_cache(maxsize=256)
def options_detailed(options: str) -> bool:
    """Whether the options key (``LookupOptions.key()``) asks for the detailed answer."""
    from ..settings import LookupOptions

    return LookupOptions.from_key(options).detailed


def key64(numbers: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The number as an int64 (its digits) when it is an E.164 key ("+", then 1 to 18 digits
    without a leading zero), else null. Distinct keys give distinct integers, so lookups join
    on this fixed-width column instead of decoding strings.

    >>> key64(pa.array(["+447400123456", "07400123456", "+0"])).to_pylist()
    [447400123456, None, None]
    """
    ok = pc.match_substring_regex(numbers, r"^\+[1-9][0-9]{0,17}$")
    digits = pc.if_else(ok, pc.utf8_slice_codeunits(numbers, 1), pa.scalar(None, numbers.type))
    return pc.cast(digits, pa.int64())


#: The ``raw`` column's encoder (one for all rows: ``json.dumps`` with arguments makes one each).
_RAW = json.JSONEncoder(separators=(",", ":"), sort_keys=True)


def _flatten(entries: Sequence[Entry]) -> dict[str, pa.Array]:
    """Typed answer columns (+ ``temporary``) of entries of any mix of modes."""
    n = len(entries)
    modes = {o: options_detailed(o) for o in {e.options for e in entries}}  # a few keys
    detailed = np.array([modes[e.options] for e in entries], dtype=bool)
    frames = []
    for mode in (False, True):
        idx = np.flatnonzero(detailed == mode)
        if len(idx):
            flat = schema.flatten([entries[i].result for i in idx.tolist()], detailed=mode)
            flat.index = pd.Index(idx)
            flat["temporary"] = schema.is_temporary(flat)
            frames.append(flat)
    merged = pd.concat(frames).sort_index() if len(frames) > 1 else frames[0]
    out: dict[str, pa.Array] = {}
    for name in ("temporary", *ANSWER_COLUMNS):
        field = CACHE_SCHEMA.field(name)
        if name in merged.columns:
            out[name] = pa.array(merged[name], type=field.type, from_pandas=True)
        else:
            out[name] = pa.nulls(n, field.type)
    return out


def _table(entries: Sequence[Entry]) -> pa.Table:
    n = len(entries)
    cols: dict[str, pa.Array] = {
        "number": pa.array([e.number for e in entries], pa.large_string()),
        "options": pa.array([e.options for e in entries], pa.large_string()),
        "api": pa.array([e.api for e in entries], pa.large_string()),
        "checked_at": pa.array([e.checked_at for e in entries], pa.timestamp("us", tz="UTC")),
        "schema_version": pa.array(np.full(n, CACHE_SCHEMA_VERSION, dtype=np.int16)),
        "raw": pa.array(
            [_RAW.encode(e.result) for e in entries],
            pa.large_string(),
        ),
        "seq": pa.array([e.seq for e in entries], pa.int64()),
    }
    cols["key"] = key64(cols["number"])
    if n:
        cols.update(_flatten(entries))
    table = pa.table(
        {f.name: cols.get(f.name, pa.nulls(n, f.type)) for f in CACHE_SCHEMA}, schema=CACHE_SCHEMA
    )
    return fill_legacy_seq(table)


def entries_to_table(entries: Sequence[Entry]) -> tuple[pa.Table, list[tuple[Entry, str]]]:
    """Entries as a table with :data:`CACHE_SCHEMA`, plus the entries that could not be
    stored and why (each is tried alone when the batch fails, so one bad entry never costs
    the others)."""
    try:
        return _table(entries), []
    except (
        BadEntry,
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        OverflowError,
        pa.ArrowException,
    ) as exc:
        if len(entries) <= 1:
            return _table([]), [(e, f"{type(exc).__name__}: {exc}") for e in entries]
    good: list[pa.Table] = []
    bad: list[tuple[Entry, str]] = []
    for e in entries:
        t, b = entries_to_table([e])
        good.append(t)
        bad.extend(b)
    return pa.concat_tables(good), bad


def fill_legacy_seq(table: pa.Table) -> pa.Table:
    """Give rows without a write sequence (older parts, journals) their legacy rank."""
    seq = table["seq"]
    if seq.null_count == 0:
        return table
    legacy = pc.subtract(
        pc.cast(pc.cast(table["checked_at"], pa.timestamp("us")), pa.int64()),
        pa.scalar(-legacy_seq(0), pa.int64()),
    )
    filled = pc.coalesce(seq, legacy)
    return table.set_column(table.schema.get_field_index("seq"), "seq", filled)


def in_write_order(table: pa.Table) -> pa.Table:
    """Rows by write sequence: the numbers of one run sit together in a few row groups."""
    return table.sort_by([("seq", "ascending")])


#: Columns whose values are (nearly) all distinct: no dictionary encoding, which would only cost.
_DISTINCT = {"number", "key", "seq", "checked_at", "raw", "to", "hlr_extra"}
_DICTIONARY = [name for name in CACHE_SCHEMA.names if name not in _DISTINCT]
#: The join key and the sequence stay uncompressed: a lookup reads them for every entry.
_COMPRESSION = {name: "none" if name in ("key", "seq") else "zstd" for name in CACHE_SCHEMA.names}


def _part_table(table: pa.Table) -> tuple[pa.Table, str]:
    """``table`` as a part stores it (schema, write order, key column) and the part's name."""
    table = in_write_order(table.select(CACHE_SCHEMA.names).cast(CACHE_SCHEMA))
    if table["key"].null_count:  # rows from older parts: derive their key column
        key = pc.coalesce(table["key"], key64(table["number"]))
        table = table.set_column(table.schema.get_field_index("key"), "key", key)
    max_seq = pc.max(table["seq"]).as_py()
    return table, part_name(max_seq if max_seq is not None else 0, table.num_rows)


def _write_parquet(table: pa.Table, sink: Any) -> None:
    pq.write_table(
        table,
        sink,
        compression=_COMPRESSION,
        use_dictionary=_DICTIONARY,
        row_group_size=ROW_GROUP_ROWS,
    )


def encode_part(table: pa.Table) -> tuple[str, bytes] | None:
    """A new part's name and bytes (for an object store, where one PUT publishes it whole);
    None for an empty table."""
    if table.num_rows == 0:
        return None
    table, name = _part_table(table)
    sink = pa.BufferOutputStream()
    _write_parquet(table, sink)
    return name, sink.getvalue().to_pybytes()


def write_part(folder: Path, table: pa.Table, *, fsync: bool = False) -> Path | None:
    """Write ``table`` (in write order) as a new part, atomically. Returns its path."""
    if table.num_rows == 0:
        return None
    table, name = _part_table(table)
    tmp = folder / f".{name}.tmp"
    try:
        _write_parquet(table, tmp)
        os.chmod(tmp, 0o600)
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, folder / name)
    finally:
        tmp.unlink(missing_ok=True)
    return folder / name


def read_part(path: Path, columns: Iterable[str] | None = None) -> pa.Table:
    """One part through :data:`CACHE_SCHEMA` (all columns, or ``columns``). Raises as pyarrow
    does: FileNotFoundError when it is gone, ArrowInvalid when it is corrupt."""
    cols = list(columns) if columns is not None else None
    table = pq.read_table(path, schema=CACHE_SCHEMA, columns=cols)
    return fill_legacy_seq(table) if "seq" in table.column_names else table


def scan(
    paths: Sequence[Path], columns: Sequence[str], options: str | None, api: str | None
) -> Iterator[pa.Table]:
    """One scan over ``paths`` (a pyarrow dataset: no per-part Python work), keeping the rows
    of ``options``/``api`` (row-group statistics prune the rest), in chunks of about
    ``CHUNK_ROWS`` rows (so the caller holds one chunk at a time)."""
    dataset = ds.dataset([str(p) for p in paths], schema=CACHE_SCHEMA, format="parquet")
    flt = None
    if options is not None:
        flt = ds.field("options") == options
    if api is not None:
        flt = (ds.field("api") == api) if flt is None else flt & (ds.field("api") == api)
    batches: list[pa.RecordBatch] = []
    rows = 0
    for batch in dataset.to_batches(columns=list(columns), filter=flt):
        batches.append(batch)
        rows += batch.num_rows
        if rows >= CHUNK_ROWS:
            yield _chunk(batches, columns)
            batches, rows = [], 0
    if batches:
        yield _chunk(batches, columns)


def _chunk(batches: list[pa.RecordBatch], columns: Sequence[str]) -> pa.Table:
    table = pa.Table.from_batches(batches)
    return fill_legacy_seq(table) if "seq" in columns else table


def newest(table: pa.Table, keys: Sequence[str] = KEY_COLUMNS) -> pa.Table:
    """The newest entry (highest ``seq``) per key, in key order (one ``take`` of the table)."""
    if table.num_rows == 0:
        return table
    order = pc.sort_indices(
        table.select([*keys, "seq"]),
        sort_keys=[*((k, "ascending") for k in keys), ("seq", "descending")],
    )
    first_rows = np.zeros(table.num_rows, dtype=bool)
    first_rows[0] = True
    first = pa.array(first_rows)
    for name in keys:
        col = table[name].take(order).combine_chunks()
        prev = pa.concat_arrays([pa.nulls(1, col.type), col.slice(0, len(col) - 1)])
        first = pc.or_(first, pc.fill_null(pc.not_equal(col, prev), True))
        del col, prev
    return table.take(order.filter(first))


def newest_per_number(table: pa.Table) -> pa.Table:
    """The highest-``seq`` row of each number (the table as it is when no number repeats).

    One hash count of the numbers; only the rows of numbers that repeat (a temporary answer
    looked up again, an older version of an answer) are sorted."""
    if table.num_rows < 2:
        return table
    # the int64 key when every row has one (E.164 numbers): hashing integers, not strings
    by = "key" if "key" in table.column_names and table["key"].null_count == 0 else "number"
    counts = pc.value_counts(table[by])
    if len(counts) == table.num_rows:
        return table
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    dup = pc.is_in(table[by], value_set=repeated)
    once = table.filter(pc.invert(dup))
    return pa.concat_tables([once, newest(table.filter(dup), keys=("number",))])


def to_pandas_types(t: pa.DataType) -> Any:
    if pa.types.is_large_string(t) or pa.types.is_string(t):
        return schema.PANDAS_DTYPES["string"]
    if pa.types.is_boolean(t):
        return schema.PANDAS_DTYPES["bool"]
    if pa.types.is_integer(t):
        return schema.PANDAS_DTYPES["int"]
    return None
