"""``dask.dataframe`` face: the ``hlr`` accessor on Dask DataFrames and Series.

Enable it with ``import pd_hlr.dask`` (``import pd_hlr`` alone never imports Dask). It needs the
``dask`` extra: ``pip install 'pd-hlr[dask]'``.

>>> import dask, dask.dataframe as dd, pd_hlr.dask
>>> ddf = dd.from_pandas(df, npartitions=2)  # or dd.read_parquet("calls/")
>>> with dask.config.set(scheduler="sync"):
...     est = ddf.hlr.estimate("phone", default_region="GB", client=client, cache=cache_dir)
...     out = ddf.hlr.validate("phone", default_region="GB", client=client, cache=cache_dir,
...                            budget=50_000)
...     out.to_parquet("enriched/", write_index=False)
>>> est.to_look_up, out.hlr.report().looked_up
(2, 2)

Invariants: the paid part runs once, in the calling process (scan the partitions for distinct
numbers, resolve them through :func:`pd_hlr.pipeline.resolve`, then a lazy join), so a number
in a thousand partitions costs one lookup; workers never open the cache; the result's ``meta``
is the pandas accessor's output (same columns, order, dtypes; index and divisions kept); a
stopped run's ``.partial`` is a lazy frame of what was answered, everything paid for already
in the cache. How a call runs, and why: ``docs/dask.md``.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, Unpack

try:
    import dask
    import dask.base
    import dask.dataframe as dd
    from dask.dataframe.extensions import (
        register_dataframe_accessor,
        register_series_accessor,
    )
except ImportError as _exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "pd_hlr.dask needs Dask (dask[dataframe] and distributed): pip install 'pd-hlr[dask]'"
    ) from _exc

import pandas as pd

from . import analysis, pipeline, schema
from .cache import HLRCache
from .normalize import LOCAL_VERDICTS
from .options import ValidateOptions
from .regions import resolve_regions
from .settings import ValidateSettings, split_options, takes_options

if TYPE_CHECKING:
    from .client import HLRClient
    from .report import Estimate, RunReport

__all__ = ["HLRDaskFrameAccessor", "HLRDaskSeriesAccessor"]



# --- per-partition functions (module level: pickled by reference to the workers) -------------
def _normalize_partition(values: pd.Series, settings: ValidateSettings) -> pd.DataFrame:
    return pipeline.normalize_column(values, settings)


def _normalize_regional(
    part: pd.DataFrame, column: Hashable, settings: ValidateSettings
) -> pd.DataFrame:
    """A partition's cells, each read in its row's region (``settings.region_column``)."""
    return pipeline.normalize_column(part[column], settings, _regions(part, settings))


def _regions(part: pd.DataFrame, settings: ValidateSettings) -> pd.Series | None:
    if settings.region_column is None:
        return None
    return pipeline.check_column(part, settings.region_column)


def _enrich_partition(
    part: pd.DataFrame,
    resolved: pd.DataFrame,
    column: Hashable,
    settings: ValidateSettings,
    run_info: dict[str, Any],
    replace: list[Any],
    results_only: bool = False,
) -> pd.DataFrame:
    """One partition of the output: exactly what the pandas accessor does after resolving
    (``replace``: an earlier run's result columns, found once in the calling process)."""
    normalized = pipeline.normalize_column(part[column], settings, _regions(part, settings))
    results = pipeline.join_results(normalized, resolved, settings.options.detailed)
    if results_only:
        out = results.add_prefix(settings.prefix) if settings.prefix else results
    else:
        out = pipeline.assemble(part, results, settings.prefix, replace=replace)
    out.attrs[analysis.ATTRS_KEY] = dict(run_info)
    return out


# --- the three steps -------------------------------------------------------------------------
def _normalized(ddf: dd.DataFrame, column: Hashable, settings: ValidateSettings) -> dd.DataFrame:
    if settings.region_column is None:
        values = ddf[column]
        meta = pipeline.normalize_column(values._meta, settings)
        return values.map_partitions(_normalize_partition, settings, meta=meta)
    pair = ddf[list(dict.fromkeys([column, settings.region_column]))]
    meta = _normalize_regional(pair._meta, column, settings)
    return pair.map_partitions(_normalize_regional, column, settings, meta=meta)


def _scan(
    ddf: dd.DataFrame, column: Hashable, settings: ValidateSettings
) -> tuple[list[str], pipeline.Run]:
    """Distinct lookup keys and the run's counts (rows, local verdicts, regions): one compute."""
    normalized = _normalized(ddf, column, settings)
    keys = normalized["hlr_number"].dropna().drop_duplicates(split_out=1)
    sources = normalized["hlr_source"].value_counts(dropna=True, split_out=1)
    rows = normalized.shape[0]
    if settings.region_column is None:
        keys, sources, rows = dask.compute(keys, sources, rows)
        regions = {}
    else:
        values = ddf[settings.region_column].value_counts(dropna=False, split_out=1)
        keys, sources, rows, values = dask.compute(keys, sources, rows, values)
        column_ = resolve_regions(pd.Series(values.index.to_numpy(dtype=object), dtype=object))
        pipeline.warn_unrecognised(column_.unrecognised(), settings)
        regions = column_.weighted_outcomes(values.to_numpy())
    counts = {k: int(sources.get(k, 0)) for k in LOCAL_VERDICTS}
    # Already non-null and distinct: one list of str, without pipeline.distinct_numbers'
    # second unique() pass and its temporary copy (this list is per distinct number, the
    # largest object the calling process holds besides the per-number table).
    numbers = keys.tolist()
    del keys
    return numbers, pipeline.Run(rows=int(rows), sources=counts, regions=regions)


def _cache(cache: Any) -> HLRCache | None:
    """The cache to use. One named by a path (or the default folder) is opened without the
    in-process part memo: the calling process then holds only the entries this run asks for,
    not the whole cache for the rest of its life. A given :class:`HLRCache` is used as is."""
    return pipeline.resolve_cache(cache, memo=False)


def _distributed_client() -> Any:
    """The ``distributed`` client that will run the graph (the default scheduler), or None
    (no client, or ``dask.config.set(scheduler=...)`` picked a local scheduler)."""
    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        client = default_client()
    except ValueError:
        return None
    scheduler = dask.base.get_scheduler()
    return client if getattr(scheduler, "__self__", None) is client else None


def _broadcast(resolved: pd.DataFrame) -> Any:
    """The per-number table as something every partition task can depend on, shipped once per
    worker (a scattered future), or one shared graph literal on a local scheduler."""
    client = _distributed_client()
    if client is not None:
        return client.scatter(resolved, broadcast=True, hash=False)
    return dask.delayed(resolved, name=f"pd-hlr-resolved-{uuid.uuid4().hex}", pure=False)


def _output_meta(
    frame_meta: pd.DataFrame,
    column: Hashable,
    settings: ValidateSettings,
    replace: list[Any],
    results_only: bool,
) -> pd.DataFrame:
    """The pandas accessor's output for an empty frame of the same columns and dtypes."""
    empty = schema.empty_frame(settings.options.detailed, index=pd.Index([], dtype=object))
    return _enrich_partition(frame_meta, empty, column, settings, {}, replace, results_only)


def _lazy_output(
    ddf: dd.DataFrame,
    column: Hashable,
    settings: ValidateSettings,
    resolved: pd.DataFrame,
    meta: pd.DataFrame,
    run_info: dict[str, Any],
    replace: list[Any],
    results_only: bool,
) -> dd.DataFrame:
    meta = meta.copy()
    meta.attrs[analysis.ATTRS_KEY] = dict(run_info)  # out.hlr.report() reads the meta's attrs
    return ddf.map_partitions(
        _enrich_partition,
        _broadcast(resolved),
        column,
        settings,
        run_info,
        replace,
        results_only,
        meta=meta,
        align_dataframes=False,
    )


def _validate(
    ddf: dd.DataFrame,
    column: Hashable,
    settings: ValidateSettings,
    *,
    client: HLRClient | None,
    cache: Any,
    label: Hashable | None = None,
    results_only: bool = False,
) -> tuple[dd.DataFrame, dict[str, Any]]:
    """The lazy output and the run's record (``attrs``), after the scan and the lookups."""
    pipeline.check_column(ddf._meta, column)  # the pandas accessor's checks and messages
    pipeline.region_column(ddf._meta, settings)  # the region column exists, before anything
    stale = pipeline.plan_columns(ddf._meta, column, settings)  # before anything is sent
    kept = [c for c in pipeline.own_columns(ddf._meta) if c not in stale]
    meta = _output_meta(ddf._meta, column, settings, stale, results_only)
    label = column if label is None else label

    def record(report: RunReport) -> dict[str, Any]:
        done = pipeline.record_run(meta.copy(), label, settings, report, kept=kept)
        return dict(done.attrs[analysis.ATTRS_KEY])

    def output(resolved: pd.DataFrame, report: RunReport) -> dd.DataFrame:
        args = (resolved, meta, record(report), stale, results_only)
        return _lazy_output(ddf, column, settings, *args)

    numbers, run = _scan(ddf, column, settings)
    if not numbers:
        pipeline.check_client_options(client, settings)
        resolved = schema.empty_frame(settings.options.detailed, index=pd.Index([], dtype=object))
        report = pipeline.finish_without_lookups(run, settings, client)
    else:
        resolved = pipeline.resolve(
            numbers, settings, client=client, cache=_cache(cache), join=output, run=run
        )
        assert run.report is not None
        report = run.report
    info = record(report)
    return _lazy_output(ddf, column, settings, resolved, meta, info, stale, results_only), info


def validate_frame(
    ddf: dd.DataFrame,
    column: Hashable,
    settings: ValidateSettings,
    *,
    client: HLRClient | None = None,
    cache: Any = None,
) -> dd.DataFrame:
    """Steps 1–2 now, step 3 lazily (see the module docstring).

    >>> with dask.config.set(scheduler="sync"):
    ...     out = validate_frame(dd.from_pandas(df, npartitions=2), "phone",
    ...                          ValidateSettings(), client=client, cache=False)
    ...     out["hlr_source"].compute().tolist()
    ['api', 'invalid', 'missing', 'invalid']
    """
    return _validate(ddf, column, settings, client=client, cache=cache)[0]


def estimate_frame(
    ddf: dd.DataFrame,
    column: Hashable,
    settings: ValidateSettings,
    *,
    client: HLRClient | None = None,
    cache: Any = None,
) -> Estimate:
    """What :func:`validate_frame` would look up and cost; sends nothing."""
    pipeline.check_column(ddf._meta, column)
    pipeline.region_column(ddf._meta, settings)
    numbers, run = _scan(ddf, column, settings)
    return pipeline.estimate_from(
        run, numbers, settings, _cache(cache), pipeline.api_namespace(client)
    )


# --- the accessors ---------------------------------------------------------------------------
@register_dataframe_accessor("hlr")
class HLRDaskFrameAccessor:
    """HLR lookups for a Dask DataFrame column (``import pd_hlr.dask`` registers it)."""

    def __init__(self, obj: dd.DataFrame) -> None:
        self._obj = obj

    def __repr__(self) -> str:
        return (
            f"pd-hlr accessor on a Dask DataFrame ({self._obj.npartitions} partitions)\n"
            "  .validate(column, **options): look the numbers up: a lazy frame with result "
            "columns\n  .estimate(column, **options): what validate would look up and cost\n"
            "  .report(): what the validate() run that made this frame did"
        )

    @takes_options
    def validate(self, column: Hashable, **options: Unpack[ValidateOptions]) -> dd.DataFrame:
        """Look up the numbers in ``column``; a lazy Dask DataFrame with the result columns.

        Same options and output as :meth:`pd_hlr.accessor.HLRFrameAccessor.validate`. The scan
        for distinct numbers and the paid lookups run now, from this process (one rate limit,
        one progress bar, one budget check, every answer cached as it arrives); joining the
        answers to the rows runs when the result is computed or written.

        Raises:
            ColumnConflictError: a column is named like a result column; nothing is sent.
            InsufficientBalanceError, AuthenticationError, ServiceUnavailableError: the run
                stopped; every paid answer is in the cache, so a re-run pays only for the rest;
                ``.partial`` is a lazy frame of the rows with what was answered so far.

        >>> with dask.config.set(scheduler="sync"):
        ...     out = dd.from_pandas(df, npartitions=2).hlr.validate(
        ...         "phone", default_region="GB", client=client, cache=False)
        ...     len(out.compute())
        4
        """
        client, cache, settings = split_options(options)
        return validate_frame(self._obj, column, settings, client=client, cache=cache)

    @takes_options
    def estimate(self, column: Hashable, **options: Unpack[ValidateOptions]) -> Estimate:
        """What :meth:`validate` would look up and cost, with the same options. Sends nothing.

        >>> with dask.config.set(scheduler="sync"):
        ...     est = dd.from_pandas(df, npartitions=2).hlr.estimate(
        ...         "phone", default_region="GB", cache=False)
        >>> est.to_look_up
        2
        """
        client, cache, settings = split_options(options)
        return estimate_frame(self._obj, column, settings, client=client, cache=cache)

    def report(self) -> RunReport:
        """What the ``validate`` run that made this lazy frame did (known before computing)."""
        return pipeline.report_of(self._obj._meta)


@register_series_accessor("hlr")
class HLRDaskSeriesAccessor:
    """HLR lookups for a Dask Series: ``s.hlr.validate()`` → the result columns only."""

    def __init__(self, obj: dd.Series) -> None:
        self._obj = obj

    def __repr__(self) -> str:
        return (
            f"pd-hlr accessor on a Dask Series ({self._obj.npartitions} partitions)\n"
            "  .validate(**options): the result columns, on this index\n"
            "  .estimate(**options): what validate would look up and cost"
        )

    @takes_options
    def validate(self, **options: Unpack[ValidateOptions]) -> dd.DataFrame:
        """The result columns for this Series, on its index (same options as the frame's).

        >>> with dask.config.set(scheduler="sync"):
        ...     res = dd.from_pandas(df, npartitions=2)["phone"].hlr.validate(
        ...         default_region="GB", client=client, cache=False)
        >>> list(res.columns[:2]), res.hlr.report().rows
        (['to', 'status'], 4)
        """
        client, cache, settings = pipeline.series_options(options)
        frame = self._obj.to_frame(name=pipeline.SERIES_COLUMN)
        out, _ = _validate(
            frame,
            pipeline.SERIES_COLUMN,
            settings,
            client=client,
            cache=cache,
            label=self._obj.name,
            results_only=True,
        )
        return out

    @takes_options
    def estimate(self, **options: Unpack[ValidateOptions]) -> Estimate:
        """What :meth:`validate` would look up and cost. Sends nothing."""
        client, cache, settings = pipeline.series_options(options)
        frame = self._obj.to_frame(name=pipeline.SERIES_COLUMN)
        return estimate_frame(frame, pipeline.SERIES_COLUMN, settings, client=client, cache=cache)


# --- summary, computed per partition and combined (memory bounded) --------------------------
def summary_parts(out: dd.DataFrame, prefix: str = "") -> dd.DataFrame:
    """Lazy per-partition counts of a validated Dask frame (sum them with
    :func:`summary_from_counts`)."""
    meta = analysis.summary_counts(out._meta, prefix).iloc[:0]
    return out.map_partitions(analysis.summary_counts, prefix, meta=meta, align_dataframes=False)


def summary(out: dd.DataFrame, *, prefix: str = "", top: int = 10) -> pd.DataFrame:
    """The summary table of a validated Dask frame, computed partition by partition."""
    return analysis.summary_from_counts(summary_parts(out, prefix).compute(), top=top)
