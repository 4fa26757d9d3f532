"""Polars face: the ``hlr`` namespace on Polars DataFrames, LazyFrames and Series.

Enable it with ``import pd_hlr.polars`` (``import pd_hlr`` alone never imports Polars). It needs
the ``polars`` extra: ``pip install 'pd-hlr[polars]'``.

>>> import polars as pl, pd_hlr.polars
>>> frame = pl.from_pandas(df)  # or pl.read_csv("contacts.csv"), pl.scan_parquet("calls/")
>>> frame.hlr.estimate("phone", default_region="GB", client=client, cache=cache_dir).to_look_up
2
>>> out = frame.hlr.validate("phone", default_region="GB", client=client, cache=cache_dir)
>>> out.get_column("hlr_source").to_list(), out.schema["hlr_checked_at"]
(['api', 'api', 'missing', 'invalid'], Datetime(time_unit='us', time_zone='UTC'))
>>> out.hlr.report().looked_up
2

Invariants: a thin face over :mod:`pd_hlr.pipeline` (the pandas face's normalising, cache,
lookups and join), on the column's distinct values only, so a LazyFrame streams (only the
distinct values and their results are in memory); the caller's columns are kept untouched and
in order, row order kept; Polars frames carry no metadata, so the run's record belongs to the
object ``validate()`` returned (``out.hlr.report()``, ``out.hlr.write_parquet``); an ``int``
column label ``n`` names the column ``str(n)``, never a position. How a call runs, and why:
``docs/polars.md``.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

try:
    import polars as pl
except ImportError as _exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError("pd_hlr.polars needs Polars: pip install 'pd-hlr[polars]'") from _exc

import numpy as np
import pandas as pd
import pyarrow as pa

from . import analysis, pipeline, schema
from ._io import write_atomically
from .options import ValidateOptions
from .regions import resolve_regions
from .settings import ValidateSettings, option_names, split_options, takes_options

if TYPE_CHECKING:
    from .client import HLRClient
    from .report import Estimate, RunReport

__all__ = [
    "HLRFrameNamespace",
    "HLRLazyNamespace",
    "HLRSeriesNamespace",
    "estimate_frame",
    "polars_schema",
    "summary",
    "to_pandas",
    "validate_frame",
]

#: The columns of the distinct cells (and the rows each stands for), and of their positions.
_KEY = "__pd_hlr_key__"
_ROWS = "__pd_hlr_rows__"
_POS = "__pd_hlr_pos__"
_CELL, _REGION = "cell", "region"  # the fields of the key with a region column
#: ``hlr_error`` of a row whose cell was not in the column when ``validate()`` scanned it.
CHANGED_INPUT = "not looked up: the cell was not in the input when validate() ran"
#: Cells (or rows) per batch when normalising, and computing a summary or status with the
#: pandas analysis code: that code's working memory is one batch's.
_BATCH_ROWS = 250_000
#: The result columns the row status and the summary read (:mod:`pd_hlr.analysis`); only
#: these go to pandas, batch by batch (tests compare with the pandas face's summary and status).
_ANALYSED = (
    *analysis._USED,
    *("live", "dead", "out_of_network", "status_group_name", "error_permanent"),
)


def polars_schema(detailed: bool, prefix: str = "") -> pl.Schema:
    """The result columns' Polars types, from the one Arrow schema (:mod:`pd_hlr.schema`).

    >>> polars_schema(False)["live"], polars_schema(False)["hlr_checked_at"]
    (Boolean, Datetime(time_unit='us', time_zone='UTC'))
    """
    empty = pl.from_arrow(schema.arrow_schema(detailed).empty_table())
    assert isinstance(empty, pl.DataFrame)
    return pl.Schema({prefix + name: dtype for name, dtype in empty.schema.items()})


# --- the run's record: on the object validate() returned --------------------------------------
_RECORDS: dict[int, tuple[weakref.ref[Any], dict[str, Any]]] = {}


def _remember(obj: Any, record: dict[str, Any]) -> Any:
    key = id(obj)
    _RECORDS[key] = (weakref.ref(obj, lambda _: _RECORDS.pop(key, None)), record)
    return obj


def _record_of(obj: Any) -> dict[str, Any]:
    entry = _RECORDS.get(id(obj))
    return dict(entry[1]) if entry is not None and entry[0]() is obj else {}


def _schema(obj: pl.DataFrame | pl.LazyFrame) -> pl.Schema:
    return obj.schema if isinstance(obj, pl.DataFrame) else obj.collect_schema()


def _own_columns(obj: pl.DataFrame | pl.LazyFrame) -> list[str]:
    """The result columns an earlier ``validate()`` put in ``obj`` (its record matches the
    frame's names and types exactly), as :func:`pd_hlr.pipeline.own_columns` for pandas."""
    recorded = _record_of(obj).get("columns")
    if not recorded:
        return []
    names = _schema(obj)
    if any(name not in names or str(names[name]) != dtype for name, dtype in recorded.items()):
        return []
    return list(recorded)


def _column_name(names: list[str], column: Hashable) -> str:
    """The phone column's name: a str, or an int ``n`` for the column named ``str(n)``."""
    if isinstance(column, bool) or not isinstance(column, str | int | np.integer):
        raise TypeError(
            f"column must be a column name (a str; an int n means the column named 'n'), not "
            f"{type(column).__name__} {column!r}"
        )
    name = column if isinstance(column, str) else str(int(column))
    if name not in names:
        available = ", ".join(repr(c) for c in names) or "(none)"
        hint = (
            ""
            if isinstance(column, str)
            else f" (Polars names are strings: {column!r} means the column named {name!r}; "
            "for a column by position use frame.columns[i])"
        )
        raise KeyError(f"no column {column!r} in the frame{hint}; available columns: {available}")
    return name


def _key_expr(name: str, dtype: pl.DataType) -> pl.Expr:
    """The value to group and join on: the column itself, categories as their strings."""
    if isinstance(dtype, pl.Categorical | pl.Enum):
        return pl.col(name).cast(pl.String)
    if dtype.is_temporal() or dtype.is_nested() or dtype == pl.Object:
        raise TypeError(
            f"column {name!r} holds {dtype}, not phone numbers: give a column of strings or "
            "integers (or floats, as a CSV reader may leave them)"
        )
    return pl.col(name)


# --- 1. distinct cells, 2. normalise -------------------------------------------------------
@dataclass
class _Scan:
    """The distinct cells of the column, their verdicts, and the run's counts."""

    keys: pl.Series  # one per distinct cell (the null cell last, if any)
    normalized: pd.DataFrame  # pipeline.normalize_column of ``keys``, same order
    run: pipeline.Run
    numbers: list[str]
    resolved: pd.DataFrame | None = None  # the per-number answers, once resolved


def _normalize_batches(
    cells: pl.Series, settings: ValidateSettings, regions: pl.Series | None = None
) -> list[pd.DataFrame]:
    """:func:`pd_hlr.pipeline.normalize_column` of ``cells`` (and their ``regions``, with
    ``region_column``), ``_BATCH_ROWS`` at a time (its working memory stays that of a batch),
    on as many threads as Polars uses: normalising is pure, and its vectorised (Arrow) parts
    release the GIL."""

    def batch(start: int) -> pd.DataFrame:
        part = None if regions is None else regions.slice(start, _BATCH_ROWS).to_pandas()
        return pipeline.normalize_column(
            cells.slice(start, _BATCH_ROWS).to_pandas(), settings, part
        )

    starts = range(0, max(len(cells), 1), _BATCH_ROWS)
    workers = min(len(starts), pl.thread_pool_size())
    if workers < 2:
        return [batch(start) for start in starts]
    with ThreadPoolExecutor(workers, thread_name_prefix="pd-hlr-normalize") as pool:
        return list(pool.map(batch, starts))


def _region_key(key: pl.Expr, names: pl.Schema, settings: ValidateSettings) -> pl.Expr:
    """With ``region_column``: each row's (cell, region value) as one struct key (the region
    as text: "44" for 44, a category's string), so that distinct pairs are read once."""
    if settings.region_column is None:
        return key
    name = _column_name(list(names), settings.region_column)
    dtype = names[name]
    if dtype.is_nested() or dtype == pl.Object:
        raise TypeError(
            f"region column {name!r} holds {dtype}: give a column of country codes, names or "
            "calling codes"
        )
    return pl.struct(key.alias(_CELL), pl.col(name).cast(pl.String).alias(_REGION))


def _scan(lf: pl.LazyFrame, key: pl.Expr, settings: ValidateSettings, streaming: bool) -> _Scan:
    grouped = lf.group_by(key.alias(_KEY)).agg(pl.len().alias(_ROWS))
    counts = grouped.collect(engine="streaming" if streaming else "auto")
    regional = settings.region_column is not None
    # The null cell last, and normalised apart: a null must not turn an int column into floats.
    nulls = (pl.col(_KEY).struct.field(_CELL) if regional else pl.col(_KEY)).is_null()
    counts = pl.concat([counts.filter(~nulls), counts.filter(nulls)])
    keys = counts.get_column(_KEY)
    cells = keys.struct.field(_CELL) if regional else keys
    regions = keys.struct.field(_REGION) if regional else None
    n_null = cells.null_count()
    present = cells.slice(0, len(keys) - n_null)
    parts = _normalize_batches(
        present, settings, None if regions is None else regions.slice(0, len(present))
    )
    if n_null:
        tail = None if regions is None else regions.slice(len(present)).to_pandas()
        parts.append(
            pipeline.normalize_column(pd.Series([None] * n_null, dtype=object), settings, tail)
        )
    normalized = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    weights = counts.get_column(_ROWS).to_numpy().astype(np.int64)
    run = pipeline.Run(
        rows=int(weights.sum()),
        sources=pipeline.count_sources(normalized, weights),
        regions={} if regions is None else _region_outcomes(regions, weights, settings),
    )
    return _Scan(keys, normalized, run, pipeline.distinct_numbers(normalized))


def _region_outcomes(
    regions: pl.Series, weights: np.ndarray, settings: ValidateSettings
) -> dict[str, int]:
    """Rows per region outcome, from the distinct pairs' region values and their rows."""
    column = resolve_regions(regions.to_pandas())
    pipeline.warn_unrecognised(column.unrecognised(), settings)
    return column.weighted_outcomes(weights)


# --- 3. the per-cell result table and the join -----------------------------------------------
def _free_name(names: Any, name: str) -> str:
    """``name``, made unlike any of ``names`` (the caller's columns)."""
    while name in names:
        name += "_"
    return name


def _result_table(scan: _Scan, settings: ValidateSettings) -> pl.DataFrame:
    """One row per distinct cell (in ``scan.keys`` order): its result columns, prefixed.

    One :func:`pd_hlr.pipeline.join_results` of ``scan.normalized`` with ``scan.resolved`` (the
    pipeline's one hash join of a whole frame against the per-number table), which the scan
    then lets go of, and to Polars through Arrow column by column: the inputs, the pandas
    result and the Polars copy never all coexist."""
    detailed = settings.options.detailed
    assert scan.resolved is not None
    results = pipeline.join_results(scan.normalized, scan.resolved, detailed)
    scan.normalized, scan.resolved = scan.normalized.iloc[:0], None  # in ``results`` now
    pa.default_memory_pool().release_unused()
    arrow = pa.Table.from_pandas(results, schema.arrow_schema(detailed), preserve_index=False)
    del results
    columns = []
    for name in arrow.column_names:
        # one chunk each, so that gathers from it are plain takes
        column = pl.from_arrow(arrow.column(name).combine_chunks(), rechunk=False)
        assert isinstance(column, pl.Series)  # an Arrow array gives a Series
        columns.append(column.alias(settings.prefix + name))
        arrow = arrow.drop_columns([name])
        pa.default_memory_pool().release_unused()  # the Arrow column's memory, back now
    return pl.DataFrame(columns)


def _joined(
    lf: pl.LazyFrame,
    key: pl.Expr,
    keys: pl.Series,
    table: pl.DataFrame,
    caller: list[str],
    settings: ValidateSettings,
) -> pl.LazyFrame:
    """The rows (``caller``: their columns to keep), then their cell's result columns, in order.

    Each row finds its cell's position in ``keys`` with a left join on the cell (the right
    side is only the cells and their positions, so the join stays cheap in the streaming
    engine); the result columns are then taken from ``table`` at that position.
    """
    key_name, pos_name = _free_name(caller, _KEY), _free_name(caller, _POS)
    positions = pl.DataFrame(
        [keys.alias(key_name), pl.Series(pos_name, np.arange(len(keys)), dtype=pl.UInt32)]
    )
    pos = pl.col(pos_name)
    changed = pos.is_null()  # a cell not in ``keys``: the input changed since validate()
    fix = {
        settings.prefix + "hlr_source": "error",
        settings.prefix + "hlr_error": CHANGED_INPUT,
    }
    results = []
    for column in table.iter_columns():
        taken = pl.lit(column).gather(pos)
        if column.name in fix:
            taken = pl.when(changed).then(pl.lit(fix[column.name])).otherwise(taken)
        results.append(taken.alias(column.name))
    return (
        lf.select(*caller, key.alias(key_name))
        .join(positions.lazy(), on=key_name, how="left", nulls_equal=True, maintain_order="left")
        .select(*caller, *results)
    )


def _run_record(
    label: Any, settings: ValidateSettings, report: RunReport, names: pl.Schema, kept: list[str]
) -> dict[str, Any]:
    owned = [c for c in kept if c in names] + pipeline.result_columns(settings)
    return pipeline.run_record(label, settings, report, {c: str(names[c]) for c in owned})


def _validate(
    obj: pl.DataFrame | pl.LazyFrame,
    column: Hashable,
    settings: ValidateSettings,
    *,
    client: HLRClient | None,
    cache: Any,
    label: Any = None,
    results_only: bool = False,
) -> pl.DataFrame | pl.LazyFrame:
    lazy = isinstance(obj, pl.LazyFrame)
    names = _schema(obj)
    name = _column_name(list(names), column)
    key = _key_expr(name, names[name])
    stale = pipeline.plan_names(list(names), lambda: _own_columns(obj), name, settings)
    kept = [c for c in _own_columns(obj) if c not in stale] if not results_only else []
    caller = [] if results_only else [c for c in names if c not in stale]
    lf = obj if isinstance(obj, pl.LazyFrame) else obj.lazy()
    label = name if label is None else label
    key = _region_key(key, names, settings)
    scan = _scan(lf, key, settings, streaming=lazy)

    def output(table: pl.DataFrame, report: RunReport) -> pl.DataFrame | pl.LazyFrame:
        joined = _joined(lf, key, scan.keys, table, caller, settings)
        out = joined if lazy else joined.collect()
        return _remember(out, _run_record(label, settings, report, _schema(out), kept))

    def partial(resolved: pd.DataFrame, report: RunReport) -> pl.DataFrame | pl.LazyFrame:
        scan.resolved = resolved
        return output(_result_table(scan, settings), report)

    if not scan.numbers:
        pipeline.check_client_options(client, settings)
        scan.resolved = schema.empty_frame(
            settings.options.detailed, index=pd.Index([], dtype=object)
        )
        report = pipeline.finish_without_lookups(scan.run, settings, client)
    else:
        scan.resolved = pipeline.resolve(
            scan.numbers,
            settings,
            client=client,
            cache=pipeline.resolve_cache(cache, memo=not lazy),
            join=partial,
            run=scan.run,
        )
        assert scan.run.report is not None
        report = scan.run.report
    # Arrow's allocator keeps what the steps before freed (the cache's parts, the distinct
    # numbers): give it back before the next step allocates, so that the peaks do not stack.
    scan.numbers = []
    pa.default_memory_pool().release_unused()
    table = _result_table(scan, settings)
    pa.default_memory_pool().release_unused()  # before the rows stream through
    return output(table, report)


def validate_frame(
    obj: pl.DataFrame | pl.LazyFrame,
    column: Hashable,
    settings: ValidateSettings,
    *,
    client: HLRClient | None = None,
    cache: Any = None,
) -> pl.DataFrame | pl.LazyFrame:
    """The distinct cells, the lookups and (for a DataFrame) the join, now; for a LazyFrame the
    join is lazy. See the module docstring.

    >>> lf = pl.from_pandas(df).lazy()
    >>> out = validate_frame(lf, "phone", ValidateSettings(), client=client, cache=False)
    >>> out.collect().get_column("hlr_source").to_list()
    ['api', 'invalid', 'missing', 'invalid']
    """
    return _validate(obj, column, settings, client=client, cache=cache)


def estimate_frame(
    obj: pl.DataFrame | pl.LazyFrame,
    column: Hashable,
    settings: ValidateSettings,
    *,
    client: HLRClient | None = None,
    cache: Any = None,
) -> Estimate:
    """What :func:`validate_frame` would look up and cost; sends nothing."""
    lazy = isinstance(obj, pl.LazyFrame)
    names = _schema(obj)
    name = _column_name(list(names), column)
    key = _region_key(_key_expr(name, names[name]), names, settings)
    scan = _scan(obj.lazy(), key, settings, streaming=lazy)
    cache = pipeline.resolve_cache(cache, memo=not lazy)
    return pipeline.estimate_from(
        scan.run, scan.numbers, settings, cache, pipeline.api_namespace(client)
    )


# --- on a validate() result: report, summary, status, files ----------------------------------
def _report(obj: Any) -> RunReport:
    data = _record_of(obj).get("report")
    if not data:
        raise AttributeError(
            "this frame carries no pd-hlr run report: Polars frames have no metadata, so the "
            "report belongs to the object validate() returned (out.hlr.collect() of a lazy "
            "result keeps it, and out.hlr.write_parquet / sink_parquet write it into the file); "
            "a filter, select or plain collect() makes a new frame without it"
        )
    from .report import RunReport

    return RunReport.from_dict(data)




def _prefix(obj: pl.DataFrame | pl.LazyFrame, prefix: str | None = None) -> tuple[str, list[str]]:
    """The result columns' prefix (given, or by the pandas rule, :func:`analysis.detect_prefix`)
    and the result columns in ``obj`` that the analysis reads."""
    names = list(_schema(obj))
    if prefix is None:
        stand_in = pd.DataFrame(columns=pd.Index(names, dtype=object))
        stand_in.attrs[analysis.ATTRS_KEY] = _record_of(obj)
        prefix = analysis.detect_prefix(stand_in)
    return prefix, [prefix + c for c in _ANALYSED if prefix + c in names]


_TO_PANDAS = {
    pa.large_string(): schema.PANDAS_DTYPES["string"],
    pa.string(): schema.PANDAS_DTYPES["string"],
    pa.bool_(): schema.PANDAS_DTYPES["bool"],
    pa.int64(): schema.PANDAS_DTYPES["int"],
}


def to_pandas(frame: pl.DataFrame) -> pd.DataFrame:
    """A Polars frame of result columns as the pandas face would give them (through Arrow:
    ``string``, ``boolean``, ``Int64``, ``datetime64[us, UTC]``; nulls as ``<NA>``/``NaT``).

    >>> out = pl.from_pandas(df).hlr.validate("phone", client=client, cache=False)
    >>> to_pandas(out.select("hlr_source", "live")).dtypes.astype(str).tolist()
    ['string', 'boolean']
    """
    return frame.to_arrow().to_pandas(types_mapper=_TO_PANDAS.get)


def _batches(obj: pl.DataFrame | pl.LazyFrame, columns: list[str]) -> Iterator[pd.DataFrame]:
    """``columns`` of ``obj`` as pandas frames of at most ``_BATCH_ROWS`` rows (at least one)."""
    if isinstance(obj, pl.LazyFrame):
        parts: Any = obj.select(columns).collect_batches(chunk_size=_BATCH_ROWS)
    else:
        parts = obj.select(columns).iter_slices(_BATCH_ROWS)
    empty = True
    for part in parts:
        empty = False
        yield to_pandas(part)
    if empty:
        yield to_pandas(pl.DataFrame(schema=_schema(obj.select(columns))))


def summary(
    obj: pl.DataFrame | pl.LazyFrame,
    *,
    prefix: str | None = None,
    by: str | None = None,
    top: int = 10,
) -> analysis.Summary:
    """The summary table (:func:`pd_hlr.analysis.summary`) of a frame with result columns,
    computed ``_BATCH_ROWS`` rows at a time from those columns only (``prefix``: theirs,
    default: found as the pandas face finds it).

    >>> out = pl.from_pandas(df).hlr.validate("phone", client=client, cache=False, prefix="r_")
    >>> out.hlr.write_parquet("enriched.parquet")
    >>> table = summary(pl.scan_parquet("enriched.parquet"), prefix="r_")
    >>> int(table.query("section == 'source'")["rows"].sum())
    4
    """
    found, columns = _prefix(obj, prefix)
    counts = [analysis.summary_counts(part, found, by=by) for part in _batches(obj, columns)]
    return analysis.summary_from_counts(pd.concat(counts, ignore_index=True), top=top)


def _status(frame: pl.DataFrame) -> pl.Series:
    prefix, columns = _prefix(frame)
    labels = np.asarray(analysis.STATUS_ORDER)
    parts = [
        labels[analysis.row_status(part, prefix).cat.codes.to_numpy()]
        for part in _batches(frame, columns)
    ]
    values = np.concatenate(parts) if parts else np.array([], dtype=labels.dtype)
    return pl.Series("hlr_status", values, dtype=pl.Enum(list(analysis.STATUS_ORDER)))


def _file_metadata(obj: Any, metadata: dict[str, Any] | None) -> dict[str, str]:
    """The ``pd_hlr`` key-value metadata of a written file (as :func:`analysis.to_parquet`)."""
    from ._version import __version__

    info = _record_of(obj)
    info.setdefault("written_at", datetime.now(UTC).isoformat())
    info["pd_hlr_version"] = __version__
    info.update(metadata or {})
    return {analysis.ATTRS_KEY: json.dumps(info, default=str, sort_keys=True)}


def _arrow_schema(obj: Any, meta: dict[str, str]) -> Any:
    """The Arrow schema of ``obj`` carrying ``meta`` and ``PANDAS_ATTRS`` (what
    ``pd.read_parquet`` restores as ``.attrs``, as the pandas face writes it): pyarrow reads a
    file's schema metadata from its ``ARROW:schema``, not from the key-value pairs, so without
    it ``pd.read_parquet(f).hlr.report()`` would find no report in a Polars-written file."""
    schema = obj.collect_schema() if isinstance(obj, pl.LazyFrame) else obj.schema
    record = meta[analysis.ATTRS_KEY]
    attrs = f'{{"{analysis.ATTRS_KEY}": {record}}}'
    return pl.DataFrame(schema=schema).to_arrow().schema.with_metadata(
        {**meta, "PANDAS_ATTRS": attrs}
    )


def _describe(kind: str, lookups: list[tuple[str, str]], on_results: list[tuple[str, str]]) -> str:
    lines = [f"pd-hlr namespace on a Polars {kind}"]
    lines += [f"  .{name}: {doc}" for name, doc in lookups]
    lines.append(f"  options: {', '.join(option_names())} (see help(.validate))")
    if on_results:
        lines.append("On a validate() result:")
        lines += [f"  .{name}: {doc}" for name, doc in on_results]
    return "\n".join(lines)


_LOOKUPS = [
    ("validate(column, **options)", "look the numbers up: a new frame with result columns"),
    ("estimate(column, **options)", "what validate would look up and cost; sends nothing"),
]


# --- the namespaces --------------------------------------------------------------------------
@pl.api.register_dataframe_namespace("hlr")
class HLRFrameNamespace:
    """HLR lookups for a Polars DataFrame column, and helpers for their results."""

    def __init__(self, df: pl.DataFrame) -> None:
        self._df = df

    def __repr__(self) -> str:
        return _describe(
            f"DataFrame ({self._df.height:,} × {self._df.width:,})",
            _LOOKUPS,
            [
                ("report()", "what the run did: counts, spend, duration, API host, sandbox"),
                ("summary()", "counts and shares by status, network, country, source"),
                ("status() / live() / dead() / invalid()", "row status, and filters by it"),
                ("plot()", "status breakdown and top networks (the plot extra)"),
                ("write_parquet(path)", "parquet with the run's record in its metadata"),
            ],
        )

    @takes_options
    def validate(self, column: Hashable, **options: Unpack[ValidateOptions]) -> pl.DataFrame:
        """Look up the numbers in ``column``; a new DataFrame with the result columns.

        The same run as the pandas face (:meth:`pd_hlr.accessor.HLRFrameAccessor.validate`):
        the caller's columns untouched and in order, then the result columns with the same
        names, as ``pl.String``, ``pl.Boolean``, ``pl.Int64`` and ``pl.Datetime("us", "UTC")``,
        nulls as null. Each distinct number is looked up once; junk is never sent.

        Raises:
            ColumnConflictError: a column is named like a result column; nothing is sent.
            BudgetExceededError: more paid lookups are needed than ``budget``; nothing is sent.
            InsufficientBalanceError, AuthenticationError, ServiceUnavailableError: the run
                stopped; ``.partial`` is a Polars DataFrame with everything answered so far
                (all of it in the cache), ``.looked_up``, ``.remaining``, ``.report``.

        >>> out = pl.from_pandas(df).hlr.validate("phone", default_region="GB", client=client,
        ...                                       cache=False)
        >>> out.columns[:4], out.schema["live"]
        (['name', 'phone', 'to', 'status'], Boolean)
        """
        client, cache, settings = split_options(options)
        out = validate_frame(self._df, column, settings, client=client, cache=cache)
        assert isinstance(out, pl.DataFrame)
        return out

    @takes_options
    def estimate(self, column: Hashable, **options: Unpack[ValidateOptions]) -> Estimate:
        """What :meth:`validate` would look up and cost, with the same options. Sends nothing.

        >>> pl.from_pandas(df).hlr.estimate("phone", default_region="GB", cache=False).distinct
        2
        """
        client, cache, settings = split_options(options)
        return estimate_frame(self._df, column, settings, client=client, cache=cache)

    def report(self) -> RunReport:
        """What the :meth:`validate` run that returned this frame did.

        >>> out = pl.from_pandas(df).hlr.validate("phone", client=client, cache=False)
        >>> out.hlr.report().rows, out.hlr.report().sandbox
        (4, True)
        """
        return _report(self._df)

    def summary(self, *, by: str | None = None, top: int = 10) -> analysis.Summary:
        """The pandas face's summary table (:func:`pd_hlr.analysis.summary`), computed in
        batches from the result columns of any frame that has them.

        >>> out = pl.from_pandas(df).hlr.validate("phone", default_region="GB", client=client,
        ...                                       cache=False)
        >>> int(out.hlr.summary().query("section == 'source'")["rows"].sum())
        4
        """
        return summary(self._df, by=by, top=top)

    def status(self) -> pl.Series:
        """One status per row (``pl.Enum``; the rule of :func:`pd_hlr.analysis.row_status`).

        >>> out = pl.from_pandas(df).hlr.validate("phone", default_region="GB", client=client,
        ...                                       cache=False)
        >>> out.hlr.status().to_list()
        ['live', 'live', 'missing', 'invalid']
        """
        return _status(self._df)

    def _having(self, *statuses: str) -> pl.DataFrame:
        return self._df.filter(self.status().is_in(list(statuses)))

    def live(self) -> pl.DataFrame:
        """Rows whose number is live."""
        return self._having("live")

    def dead(self) -> pl.DataFrame:
        """Rows whose number is dead."""
        return self._having("dead")

    def invalid(self) -> pl.DataFrame:
        """Rows rejected locally as not a possible phone number (never sent)."""
        return self._having("invalid")

    def plot(self, *, top: int = 10) -> Any:
        """The pandas face's figure (:func:`pd_hlr.analysis.plot`; needs the ``plot`` extra)."""
        prefix, columns = _prefix(self._df)
        frame = to_pandas(self._df.select(columns))
        frame.attrs[analysis.ATTRS_KEY] = {"prefix": prefix}
        return analysis.plot(frame, top=top)

    def write_parquet(self, path: str | Path, *, metadata: dict[str, Any] | None = None,
                      **kwargs: Any) -> None:
        """``write_parquet`` (to a temp file, then renamed into place) with the run's record
        in the file's metadata under ``b"pd_hlr"``, as the pandas face writes it.

        >>> out = pl.from_pandas(df).hlr.validate("phone", client=client, cache=False)
        >>> out.hlr.write_parquet("enriched.parquet")
        >>> import pyarrow.parquet as pq
        >>> json.loads(pq.read_metadata("enriched.parquet").metadata[b"pd_hlr"])["column"]
        'phone'
        """
        meta = _file_metadata(self._df, metadata)
        schema = _arrow_schema(self._df, meta)
        write_atomically(
            path,
            lambda tmp: self._df.write_parquet(tmp, metadata=meta, arrow_schema=schema, **kwargs),
        )


@pl.api.register_lazyframe_namespace("hlr")
class HLRLazyNamespace:
    """HLR lookups for a Polars LazyFrame column: the paid part now, the join lazily."""

    def __init__(self, lf: pl.LazyFrame) -> None:
        self._lf = lf

    def __repr__(self) -> str:
        return _describe(
            "LazyFrame",
            _LOOKUPS,
            [
                ("report()", "what the run did (known before collecting)"),
                ("collect(**kwargs)", "collect, keeping the run's record"),
                ("sink_parquet(path)", "stream to parquet with the run's record in its metadata"),
                ("summary()", "counts and shares, computed batch by batch"),
            ],
        )

    @takes_options
    def validate(self, column: Hashable, **options: Unpack[ValidateOptions]) -> pl.LazyFrame:
        """Look up the numbers in ``column`` now; a LazyFrame that joins them to the rows.

        The distinct values of the column are found with the streaming engine (the frame is
        never held in memory) and looked up at once, from this process, as in
        :meth:`HLRFrameNamespace.validate`; the result joins each row to its value's result
        columns when it is collected or sunk, keeping the row order. ``.partial`` of a
        run-stopping error is a LazyFrame.

        >>> out = pl.from_pandas(df).lazy().hlr.validate("phone", default_region="GB",
        ...                                              client=client, cache=False)
        >>> out.hlr.report().looked_up, out.collect().height
        (2, 4)
        """
        client, cache, settings = split_options(options)
        out = validate_frame(self._lf, column, settings, client=client, cache=cache)
        assert isinstance(out, pl.LazyFrame)
        return out

    @takes_options
    def estimate(self, column: Hashable, **options: Unpack[ValidateOptions]) -> Estimate:
        """What :meth:`validate` would look up and cost (one streaming pass). Sends nothing."""
        client, cache, settings = split_options(options)
        return estimate_frame(self._lf, column, settings, client=client, cache=cache)

    def report(self) -> RunReport:
        """What the :meth:`validate` run that returned this LazyFrame did."""
        return _report(self._lf)

    def collect(self, **kwargs: Any) -> pl.DataFrame:
        """``LazyFrame.collect(**kwargs)``, the result keeping the run's record (report)."""
        return _remember(self._lf.collect(**kwargs), _record_of(self._lf))

    def sink_parquet(self, path: str | Path, *, metadata: dict[str, Any] | None = None,
                     **kwargs: Any) -> None:
        """``sink_parquet`` (streaming; to a temp file, then renamed into place) with the run's
        record in the file's metadata under ``b"pd_hlr"``.

        >>> out = pl.from_pandas(df).lazy().hlr.validate("phone", client=client, cache=False)
        >>> out.hlr.sink_parquet("enriched.parquet")
        >>> pl.read_parquet("enriched.parquet").height
        4
        """
        meta = _file_metadata(self._lf, metadata)
        schema = _arrow_schema(self._lf, meta)
        write_atomically(
            path,
            lambda tmp: self._lf.sink_parquet(tmp, metadata=meta, arrow_schema=schema, **kwargs),
        )

    def summary(self, *, by: str | None = None, top: int = 10) -> analysis.Summary:
        """The summary table, computed batch by batch (memory bounded; reads the input again)."""
        return summary(self._lf, by=by, top=top)


@pl.api.register_series_namespace("hlr")
class HLRSeriesNamespace:
    """HLR lookups for a Polars Series: ``s.hlr.validate()`` → the result columns only."""

    def __init__(self, s: pl.Series) -> None:
        self._s = s

    def __repr__(self) -> str:
        return _describe(
            f"Series ({self._s.len():,})",
            [
                ("validate(**options)", "look the numbers up: a DataFrame of result columns"),
                ("estimate(**options)", "what validate would look up and cost; sends nothing"),
            ],
            [],
        )

    @takes_options
    def validate(self, **options: Unpack[ValidateOptions]) -> pl.DataFrame:
        """A DataFrame of the result columns, one row per element (same options as frames).

        >>> res = pl.Series("phone", ["+44 7400 123456", None]).hlr.validate(client=client,
        ...                                                                  cache=False)
        >>> res.columns[0], res.get_column("hlr_source").to_list(), res.hlr.report().rows
        ('to', ['api', 'missing'], 2)
        """
        client, cache, settings = pipeline.series_options(options)
        out = _validate(
            self._s.to_frame(pipeline.SERIES_COLUMN),
            pipeline.SERIES_COLUMN,
            settings,
            client=client,
            cache=cache,
            label=self._s.name,
            results_only=True,
        )
        assert isinstance(out, pl.DataFrame)
        return out

    @takes_options
    def estimate(self, **options: Unpack[ValidateOptions]) -> Estimate:
        """What :meth:`validate` would look up and cost. Sends nothing."""
        client, cache, settings = pipeline.series_options(options)
        frame = self._s.to_frame(pipeline.SERIES_COLUMN)
        return estimate_frame(
            frame, pipeline.SERIES_COLUMN, settings, client=client, cache=cache
        )
