"""The engine-agnostic path of one ``validate`` call, as functions any face can reuse, and the
faces' shared helpers (faces never import each other).

The six steps: **normalise** (:func:`normalize_cells`, :func:`normalize_column`;
pure), **distinct** (:func:`distinct_numbers`), **cache** and **look up** (:func:`resolve`:
cached answers first, the budget checked before anything is sent, each answer journalled as it
arrives; a run-stopping error or an interrupt carries ``.partial``, ``.looked_up``,
``.remaining``, ``.report``), **flatten** (typed columns) and **join back**
(:func:`join_results`, :func:`assemble`: on the original index, the caller's columns untouched,
in a new frame). :func:`validate_frame` runs all six on one pandas frame; the Dask face runs 1
and 6 per partition, 2 to 5 once. Each step and the shared helpers: ``docs/internals/pipeline.md``.

>>> out = validate_frame(df, "phone", ValidateSettings.from_kwargs(default_region="GB"),
...                      client=client, cache=False)
>>> out["hlr_source"].tolist()
['api', 'api', 'missing', 'invalid']
"""

from __future__ import annotations

import contextlib
import numbers as _numbers
import os
import signal
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import schema
from ._spec import DEFAULT_BASE_URL
from ._warnings import warn
from .cache import CacheWriter, Entry, HLRCache, default_cache_path
from .errors import BudgetExceededError, ColumnConflictError, HLRError, RunInterrupted
from .normalize import LOCAL_VERDICTS, normalize
from .normalize import normalize_cells as normalize_cells_
from .progress import Progress, progress_enabled
from .regions import RegionColumn, resolve_regions
from .report import Estimate, RunReport, money, stats_delta
from .schema import ATTRS_KEY
from .settings import BASE_URL_ENV, ValidateSettings, is_loopback_host, split_options

if TYPE_CHECKING:
    from .client import HLRClient

#: The name a face gives a Series of phone numbers to validate it as a one-column frame.
SERIES_COLUMN = "__pd_hlr_phone__"

#: Columns of the per-number table :func:`resolve` returns, besides the mode's API columns.
_RESOLVED_META = ("hlr_extra", "hlr_checked_at", "hlr_source", "hlr_error")


# --- 1. normalise --------------------------------------------------------------------------
def _normalize_options(settings: ValidateSettings) -> dict[str, Any]:
    return {
        "default_region": settings.default_region,
        "msisdn": settings.options.msisdn,
        "strict": settings.strict,
        "only_mobile": settings.only_mobile,
        "ambiguous": settings.ambiguous,
    }


def normalize_column(
    values: pd.Series, settings: ValidateSettings, regions: Any = None
) -> pd.DataFrame:
    """Local verdicts and lookup keys for one column (see :func:`pd_hlr.normalize.normalize`;
    ``regions``: each row's country, with ``settings.region_column``)."""
    return normalize(values, regions=regions, **_normalize_options(settings))


@dataclass
class Cells:
    """A column as its distinct cells (:func:`pd_hlr.normalize.normalize_cells`):
    ``normalized`` has one line per distinct cell (the last: the missing cell), ``codes`` gives
    each row's line, ``rows`` how many rows each line stands for. A frame's path normalises,
    joins and counts per cell, and lays the results out on the rows once, at the end."""

    codes: np.ndarray
    normalized: pd.DataFrame
    rows: np.ndarray

    def numbers(self) -> list[str]:
        """The distinct lookup keys of the cells some row holds (a categorical's unused
        categories are never looked up)."""
        return distinct_numbers(self.normalized["hlr_number"][self.rows > 0])

    def sources(self) -> dict[str, int]:
        """Rows never sent, by local verdict."""
        return count_sources(self.normalized, self.rows)


def _outcomes(regions: RegionColumn | None) -> dict[str, int]:
    return {} if regions is None else regions.row_outcomes()


def normalize_cells(values: pd.Series, settings: ValidateSettings, regions: Any = None) -> Cells:
    """:func:`normalize_column`, once per distinct cell (with ``regions``: per distinct cell
    and region; see :class:`Cells`)."""
    codes, normalized = normalize_cells_(
        values, regions=regions, **_normalize_options(settings)
    )
    return Cells(codes, normalized, np.bincount(codes, minlength=len(normalized)))


def region_column(frame: pd.DataFrame, settings: ValidateSettings) -> RegionColumn | None:
    """The frame's ``settings.region_column`` read once per distinct value
    (:func:`pd_hlr.regions.resolve_regions`), or ``None`` without one; warns once when some
    values name no region."""
    if settings.region_column is None:
        return None
    column = resolve_regions(check_column(frame, settings.region_column))
    warn_unrecognised(column.unrecognised(), settings)
    return column


def series_options(options: Mapping[str, Any]) -> tuple[Any, Any, ValidateSettings]:
    """``split_options`` for a Series face: ``region_column`` names a frame's column, so a
    Series refuses it (a clear ``TypeError``)."""
    client, cache, settings = split_options(options)
    if settings.region_column is not None:
        raise TypeError(
            "region_column names a column of a frame: call validate on the frame, e.g. "
            "df.hlr.validate('phone', region_column='country')"
        )
    return client, cache, settings


def warn_unrecognised(values: list[Any], settings: ValidateSettings) -> None:
    """One warning naming (some of) the region values that were not recognised."""
    if not values:
        return
    shown = ", ".join(repr(v) for v in values[:5]) + (", ..." if len(values) > 5 else "")
    fallback = (
        f"read in {settings.default_region} (default_region)"
        if settings.default_region
        else "read with no region: national formats not read (no default_region)"
    )
    what = "value names" if len(values) == 1 else "values name"
    warn(
        f"{len(values):,} {what} no region in region column {settings.region_column!r}: "
        f"{shown}; those rows are {fallback}; see hlr_note"
    )


# --- 2. distinct -----------------------------------------------------------------------------
def distinct_numbers(normalized: pd.DataFrame | pd.Series) -> list[str]:
    """The distinct lookup keys, in first-seen order."""
    numbers = normalized["hlr_number"] if isinstance(normalized, pd.DataFrame) else normalized
    return list(map(str, numbers.dropna().unique().tolist()))  # tolist: no per-item access


# --- cache and client plumbing ---------------------------------------------------------------
def resolve_cache(cache: Any, *, memo: bool = True) -> HLRCache | None:
    """``None`` → the default cache folder; ``False`` → no cache; a path → that folder (opened
    with ``memo``, see :class:`HLRCache`); an :class:`HLRCache` is used as it is."""
    if cache is False:
        return None
    if isinstance(cache, HLRCache):
        return cache
    if cache is None or cache is True:
        return HLRCache(default_cache_path(), memo=memo)
    if isinstance(cache, str) or hasattr(cache, "__fspath__"):
        return HLRCache(cache, memo=memo)
    raise TypeError(
        f"cache must be an HLRCache, a folder path, None (default folder) or False (no cache), "
        f"not {type(cache).__name__}"
    )


def api_namespace(client: Any = None) -> str:
    """The cache namespace: the API host (port ignored) of ``client``, else of
    ``PROVERO_BASE_URL``, else the vendor's, so that sandbox answers are never served to
    real-API requests and vice versa."""
    base = getattr(client, "base_url", None) or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    return (urlsplit(base).hostname or base).lower()


def make_client(settings: ValidateSettings) -> HLRClient:
    """A client from the environment (``PROVERO_API_TOKEN``, ``PROVERO_BASE_URL``)."""
    from .client import HLRClient

    kwargs: dict[str, Any] = {"rate_limit": settings.rate_limit}
    if settings.workers is not None:
        kwargs["workers"] = settings.workers
    return HLRClient(**kwargs)


def check_client_options(client: HLRClient | None, settings: ValidateSettings) -> None:
    """Warn (at the caller's line) about options a given client makes moot."""
    if client is not None and settings.rate_limit is not None:
        warn("rate_limit is ignored when a client is given: set it on the HLRClient")


@contextlib.contextmanager
def client_for(client: HLRClient | None, settings: ValidateSettings) -> Iterator[HLRClient]:
    """The given client, or one made for this call and closed after it."""
    if client is not None:
        yield client
        return
    own = make_client(settings)
    try:
        yield own
    finally:
        own.close()


# --- the run around the steps ---------------------------------------------------------------
def count_sources(normalized: pd.DataFrame, weights: Any = None) -> dict[str, int]:
    """Rows never sent, by local verdict (:data:`pd_hlr.normalize.LOCAL_VERDICTS`; ``weights``:
    the rows each line of ``normalized`` stands for, when its lines are distinct cells)."""
    source = normalized["hlr_source"]
    if weights is None:
        counts = source.value_counts(dropna=True)
    else:
        counts = pd.Series(np.asarray(weights), index=source.index).groupby(source).sum()
    return {k: int(counts.get(k, 0)) for k in LOCAL_VERDICTS}


@dataclass
class Run:
    """One ``validate`` call's facts around :func:`resolve`: the face fills in the rows and the
    local verdicts; :func:`resolve` (or :func:`finish_without_lookups`) the report."""

    rows: int
    sources: Mapping[str, int] = field(default_factory=dict)
    regions: Mapping[str, int] = field(default_factory=dict)  # rows per region outcome
    started: float = field(default_factory=time.monotonic)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    report: RunReport | None = None

    def make_report(self, settings: ValidateSettings, api: str, **counts: Any) -> RunReport:
        """The :class:`RunReport` of this run, with ``counts`` from the lookups (if any)."""
        self.report = RunReport(
            rows=self.rows,
            missing=int(self.sources.get("missing", 0)),
            invalid=int(self.sources.get("invalid", 0)),
            skipped=int(self.sources.get("skipped", 0)),
            ambiguous=int(self.sources.get("ambiguous", 0)),
            regions={str(k): int(v) for k, v in self.regions.items()},
            region_fallback=settings.default_region if self.regions else None,
            price=settings.price,
            duration=round(time.monotonic() - self.started, 3),
            api_host=api,
            sandbox=is_loopback_host(api),
            started_at=self.started_at.isoformat(),
            **{"distinct": 0, "cached": 0, "looked_up": 0, **counts},
        )
        return self.report


def finish_without_lookups(run: Run, settings: ValidateSettings, client: Any) -> RunReport:
    """The report of a run that had no number to look up (only empty or invalid cells)."""
    return run.make_report(settings, api_namespace(client))


def make_estimate(
    run: Run, settings: ValidateSettings, *, distinct: int, cached: int
) -> Estimate:
    """The one place an :class:`Estimate` is built (``estimate()`` and the budget check)."""
    return Estimate(
        rows=run.rows,
        missing=int(run.sources.get("missing", 0)),
        invalid=int(run.sources.get("invalid", 0)),
        skipped=int(run.sources.get("skipped", 0)),
        distinct=distinct,
        cached=cached,
        to_look_up=distinct - cached,
        price=settings.price,
        ambiguous=int(run.sources.get("ambiguous", 0)),
        regions={str(k): int(v) for k, v in run.regions.items()},
        region_fallback=settings.default_region if run.regions else None,
    )


def check_budget(settings: ValidateSettings, run: Run, *, distinct: int, cached: int) -> None:
    """Refuse to start (:class:`BudgetExceededError`, nothing sent) beyond ``budget``."""
    to_look_up = distinct - cached
    if settings.budget is None or to_look_up <= settings.budget:
        return
    est = make_estimate(run, settings, distinct=distinct, cached=cached)
    raise BudgetExceededError(
        f"this run needs {to_look_up:,} paid lookups but budget={settings.budget:,}; nothing "
        f"was sent (estimated cost {money(est.cost, settings.price)} at {settings.price} per "
        "lookup). Raise the budget, or validate fewer numbers.",
        estimate=est,
    )


def cached_numbers(
    numbers: list[str], settings: ValidateSettings, cache: HLRCache | None, api: str
) -> pd.DataFrame:
    """Servable cache entries for ``numbers`` (empty when refreshing or without a cache)."""
    detailed = settings.options.detailed
    if cache is None or not len(numbers) or settings.refresh:
        return _empty_resolved(detailed)
    found = cache.get(
        numbers,
        settings.options.key(),
        api,
        max_age=settings.max_age,
        include_temporary=settings.retry_temporary is False,
        temporary_max_age=settings.retry_temporary or None,
        columns=[f.column for f in schema.api_fields(detailed)],
    )
    return _shape_resolved(found, detailed, source="cache")


def estimate_from(
    run: Run,
    numbers: list[str],
    settings: ValidateSettings,
    cache: HLRCache | None,
    api: str,
) -> Estimate:
    """What looking ``numbers`` up would cost, given what ``cache`` holds. Sends nothing."""
    cached = len(cached_numbers(numbers, settings, cache, api))
    return make_estimate(run, settings, distinct=len(numbers), cached=cached)


# --- 3. resolve ------------------------------------------------------------------------------
def _empty_resolved(detailed: bool) -> pd.DataFrame:
    cols = [f.column for f in schema.api_fields(detailed)] + list(_RESOLVED_META)
    dtypes = schema.pandas_dtypes(detailed)
    return pd.DataFrame(
        {c: pd.array([], dtype=dtypes[c]) for c in cols}, index=pd.Index([], dtype=object)
    )


def _shape_resolved(frame: pd.DataFrame, detailed: bool, *, source: str) -> pd.DataFrame:
    """Give a per-number frame exactly the resolved columns and dtypes of the mode."""
    dtypes = schema.pandas_dtypes(detailed)
    n = len(frame)

    def constant(value: str | None, dtype: Any) -> Any:
        if dtype == schema.PANDAS_DTYPES["string"]:  # Arrow-backed: no Python object per row
            scalar = pa.scalar(value, pa.large_string())
            return pd.array(pa.repeat(scalar, n) if value else pa.nulls(n, scalar.type), dtype)
        return pd.array([value] * n, dtype=dtype)

    out: dict[str, Any] = {}
    for col in [f.column for f in schema.api_fields(detailed)] + list(_RESOLVED_META):
        if col == "hlr_source":
            out[col] = constant(source, dtypes[col])
        elif col in frame.columns:
            out[col] = frame[col].astype(dtypes[col]).array
        else:
            out[col] = constant(None, dtypes[col])
    index = frame.index
    if index.dtype != schema.PANDAS_DTYPES["string"]:
        index = pd.Index(index, dtype=object)
    return pd.DataFrame(out, index=index, copy=False)


@dataclass
class _Collector:
    """Receives outcomes from the client's worker threads: journal first, then progress."""

    writer: CacheWriter | None
    options: str
    api: str
    progress: Progress

    def __post_init__(self) -> None:
        self.results: dict[str, dict[str, Any]] = {}
        self.checked_at: dict[str, datetime] = {}
        self.errors: dict[str, HLRError] = {}
        self._lock = threading.Lock()

    def __call__(self, number: str, outcome: Any) -> None:
        now = datetime.now(UTC)
        if isinstance(outcome, Mapping):
            if self.writer is not None:
                self.writer.add(Entry(number, self.options, self.api, outcome, now))
            with self._lock:
                self.results[number] = dict(outcome)
                self.checked_at[number] = now
            self.progress.done(failed=False)
        else:
            with self._lock:
                self.errors[number] = outcome
            self.progress.done(failed=True)


def _api_frame(collector: _Collector, detailed: bool) -> pd.DataFrame:
    numbers = list(collector.results)
    flat = schema.flatten([collector.results[n] for n in numbers], detailed)
    flat.index = pd.Index(numbers, dtype=object)
    flat["hlr_checked_at"] = pd.array(
        [collector.checked_at[n] for n in numbers], dtype=schema.PANDAS_DTYPES["timestamp"]
    )
    return _shape_resolved(flat, detailed, source="api")


def _error_frame(errors: Mapping[str, str], detailed: bool) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"hlr_error": pd.array(list(errors.values()), dtype=schema.PANDAS_DTYPES["string"])},
        index=pd.Index(list(errors), dtype=object),
    )
    return _shape_resolved(frame, detailed, source="error")


def _concat_resolved(parts: list[pd.DataFrame], detailed: bool) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return _empty_resolved(detailed)
    return pd.concat(parts) if len(parts) > 1 else parts[0]


def resolve(
    numbers: list[str],
    settings: ValidateSettings,
    *,
    client: HLRClient | None,
    cache: HLRCache | None,
    join: Callable[[pd.DataFrame, RunReport], Any] | None = None,
    run: Run | None = None,
) -> pd.DataFrame:
    """One row per distinct number: its answer (cache or API) or why it has none.

    Checks the budget before any request, shows the progress bar, and leaves the run's
    :class:`RunReport` in ``run.report``. A run-stopping error (any ``HLRError`` with
    ``stops_run``: 401/403, 402, the API unavailable) is re-raised with ``.looked_up``,
    ``.remaining`` (what a re-run will look up), ``.report`` and ``.partial`` (``join(resolved,
    report)`` when a ``join`` callable is given: the face's kind of frame); everything already
    paid for is in the cache. An interrupt (Ctrl-C, or SIGTERM / SIGHUP, see
    :func:`stop_signals`) waits for the answers in flight and raises
    :class:`~pd_hlr.errors.RunInterrupted` with the same attributes.
    """
    detailed = settings.options.detailed
    run = run if run is not None else Run(rows=len(numbers))
    check_client_options(client, settings)
    with client_for(client, settings) as cl:
        api = api_namespace(cl)
        before = getattr(cl, "stats", None)
        # The write sequence before the read: answers written after it were paid for during
        # this run, by another process sharing the folder (the claims loop serves them).
        since = cache.sequence() if cache is not None else None
        hits = cached_numbers(numbers, settings, cache, api)
        if len(hits) == len(numbers):  # hits ⊆ numbers, one per number: every number is cached
            misses: list[str] = []
        else:
            hit_set = set(hits.index)
            misses = [n for n in numbers if n not in hit_set]
            del hit_set
        check_budget(settings, run, distinct=len(numbers), cached=len(hits))
        progress = Progress(
            len(misses),
            cached=len(hits),
            price=settings.price,
            enabled=progress_enabled(settings.progress),
            rate=getattr(cl, "current_rate", None),
        )
        # The writer opens (and writes to) its journal first: an unwritable cache folder is a
        # CacheNotWritableError before any request. Misses are claimed in the cache folder, so
        # processes sharing it pay once per number (pd_hlr.cache.ClaimedLookups).
        writer_cm = cache.writer() if cache is not None and misses else contextlib.nullcontext()
        claimed = None
        stop: HLRError | None = None
        interrupted: str | None = None  # the signal that stopped the run (SIGINT: Ctrl-C)
        try:
            with writer_cm as writer, stop_signals():
                collector = _Collector(writer, settings.options.key(), api, progress)

                def lookup(batch: list[str]) -> None:
                    cl.lookup_many(
                        batch,
                        **settings.options.request_kwargs(),
                        on_result=collector,
                        workers=settings.workers,
                    )

                if misses:
                    try:
                        if cache is None:
                            lookup(misses)
                        else:
                            claimed = cache.claimed(settings.options.key(), api, since=since)
                            claimed.run(misses, lookup, on_served=progress.served)
                    except HLRError as exc:
                        if not exc.stops_run:
                            raise
                        stop = exc
                    except KeyboardInterrupt as exc:  # the answers in flight were delivered
                        interrupted = getattr(exc, "signal", "SIGINT")
        finally:
            progress.close()
        served = claimed.served() if claimed is not None else None
        served_by_others = claimed.served_numbers if claimed is not None else set()
        errors = {n: str(e) for n, e in collector.errors.items()}
        if stop is not None or interrupted is not None:
            reason = type(stop).__name__ if stop is not None else f"interrupted by {interrupted}"
            for n in misses:
                if n not in collector.results and n not in errors and n not in served_by_others:
                    errors[n] = f"not looked up: the run stopped ({reason})"
        answered = _api_frame(collector, detailed)
        parts = [hits, answered, _error_frame(errors, detailed)]
        if served is not None:  # answered by another process sharing the cache meanwhile
            parts.insert(1, _shape_resolved(served, detailed, source="cache"))
        resolved = _concat_resolved(parts, detailed)
        delta = stats_delta(before, getattr(cl, "stats", None))
        report = run.make_report(
            settings,
            api,
            distinct=len(numbers),
            cached=len(hits) + len(served_by_others),
            looked_up=len(collector.results),
            failed=len(collector.errors),
            not_looked_up=len(misses)
            - len(collector.results)
            - len(collector.errors)
            - len(served_by_others),
            stopped=(
                type(stop).__name__ if stop is not None
                else f"RunInterrupted ({interrupted})" if interrupted is not None
                else None
            ),
            **delta,
        )
        if interrupted is not None:
            run_exc = _interrupted(interrupted, report, answered, settings, cache, len(numbers))
            run_exc.partial = join(resolved, report) if join is not None else resolved
            raise run_exc from None
        if stop is not None:
            _stop_run(stop, report, answered, settings, cache, total=len(numbers))
            stop.partial = join(resolved, report) if join is not None else resolved
            raise stop
        return resolved


def _again_at_once(answered: pd.DataFrame, settings: ValidateSettings) -> int:
    """The temporary answers of this run that a re-run looks up again at once."""
    rt = settings.retry_temporary
    at_once = rt is not False and rt == pd.Timedelta(0)  # looked up again on every run
    return int(schema.is_temporary(answered).sum()) if at_once else 0


def _interrupted(
    signal_name: str,
    report: RunReport,
    answered: pd.DataFrame,
    settings: ValidateSettings,
    cache: HLRCache | None,
    total: int,
) -> RunInterrupted:
    """The short message of an interrupted run: what was saved, what a re-run does."""
    how = "interrupted" if signal_name == "SIGINT" else f"stopped by {signal_name}"
    got = f"{report.looked_up:,} of {total:,} numbers were looked up"
    if cache is None:
        remaining = total
        saved = f"{got} but not kept (no cache): a re-run looks up all {total:,} again"
    elif settings.refresh:
        remaining = total
        saved = f"{got} and saved to the cache; a re-run with refresh=True looks up all again"
    else:
        remaining = report.failed + report.not_looked_up + _again_at_once(answered, settings)
        saved = (
            f"{got} and are saved in the cache ({cache.path}); a re-run continues with the "
            f"{remaining:,} left"
        )
    exc = RunInterrupted(
        f"pd-hlr: {how}: {saved}.",
        signal_name,
    )
    exc.looked_up, exc.remaining, exc.report = report.looked_up, remaining, report
    return exc


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """While the lookups run, SIGTERM and SIGHUP stop the run as Ctrl-C does (the answers in
    flight are delivered and journalled, then :class:`RunInterrupted`), instead of killing the
    process with paid answers unrecorded.

    Only in the main thread, only for a signal whose handler is the default one (a host that
    installed its own, or ignores it, e.g. ``nohup``, keeps it), and the previous handler is
    put back after. A second signal while the run stops is ignored (the first one is obeyed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if fired:
            return
        fired.append(signum)
        exc = KeyboardInterrupt(signal.Signals(signum).name)
        exc.signal = signal.Signals(signum).name  # type: ignore[attr-defined]
        raise exc

    installed = []
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, handler)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            if signal.getsignal(sig) is handler:
                signal.signal(sig, signal.SIG_DFL)


def _stop_run(
    stop: HLRError,
    report: RunReport,
    answered: pd.DataFrame,
    settings: ValidateSettings,
    cache: HLRCache | None,
    *,
    total: int,
) -> None:
    """Tell a run-stopping error what was done and what a re-run will look up."""
    stop.looked_up = report.looked_up
    stop.report = report
    if cache is None:
        stop.remaining = total
        stop.add_note(
            f"pd-hlr: {report.looked_up:,} numbers were looked up but not kept (no cache): a "
            f"re-run looks up all {total:,} again. Re-run with a cache to pay only for the rest."
        )
        return
    if settings.refresh:
        stop.remaining = total
        stop.add_note(
            f"pd-hlr: {report.looked_up:,} numbers were looked up and saved to the cache, but a "
            f"re-run with refresh=True looks up all {total:,} again; without refresh= only the "
            "rest is looked up."
        )
        return
    temporary = _again_at_once(answered, settings)
    stop.remaining = report.failed + report.not_looked_up + temporary
    again = (
        f", {temporary:,} of them temporary answers that are looked up again" if temporary else ""
    )
    stop.add_note(
        f"pd-hlr: {report.looked_up:,} numbers were looked up and saved to the cache; "
        f"{stop.remaining:,} remain{again}. Re-run after fixing the cause: only those "
        "will be looked up."
    )


# --- 4. join ---------------------------------------------------------------------------------
#: ``join_results`` looks rows up in the table's own index when the table has more than this
#: many times as many rows (a partition against the whole per-number table).
_SMALL_JOIN = 4


def _arrow(values: Any) -> pa.Array:
    """Values as one Arrow array (zero-copy when they are Arrow-backed)."""
    arr = values.__arrow_array__() if hasattr(values, "__arrow_array__") else values
    arr = pa.array(arr, from_pandas=True) if not isinstance(arr, pa.ChunkedArray) else arr
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _gather(
    values: Any,
    positions: np.ndarray,
    where: pa.Array,
    dtype: Any,
    plain: bool,
    pool: pa.MemoryPool | None = None,
) -> Any:
    """``values[positions]`` (``-1``: missing; ``where``: the positions as Arrow, null where
    missing; ``pool``: where Arrow allocates them). Strings with few distinct values (status,
    network names) are gathered from their dictionary: the same strings, without random reads
    across a big table."""
    if dtype != schema.PANDAS_DTYPES["string"]:
        return values.take(positions, allow_fill=True)
    arr = _arrow(values)
    if arr.null_count == len(arr):
        return pd.array(pa.nulls(len(positions), arr.type), dtype=dtype)
    head = arr.slice(0, 4096)  # a glance first: hashing a column of distinct keys is wasted
    if not plain and pc.count_distinct(head).as_py() * 8 <= len(head):
        enc = pc.dictionary_encode(arr)
        if len(enc.dictionary) * 8 <= len(arr):
            indices = pc.take(enc.indices, where, memory_pool=pool)
            return pd.array(pc.take(enc.dictionary, indices, memory_pool=pool), dtype=dtype)
    return pd.array(pc.take(arr, where, memory_pool=pool), dtype=dtype)


def join_results(
    normalized: pd.DataFrame,
    resolved: pd.DataFrame,
    detailed: bool,
    *,
    cells: Cells | None = None,
    index: pd.Index | None = None,
) -> pd.DataFrame:
    """Result columns of one mode for each row of ``normalized``, on its index; with
    ``cells`` (whose ``normalized`` this is), for each row of the column the cells came from,
    on ``index``: the keys are joined once per distinct cell, and each result column is
    gathered to the rows once.

    The rows' columns are then allocated by the system allocator: they are big, new and kept
    (the caller's result), and on Linux it hands them out in half the time Arrow's default
    (mimalloc) takes (``benchmarks/README.md``, the cache section). Per-cell tables that are
    converted and dropped (Polars) stay with Arrow's pool, which gives memory back at once."""
    dtypes = schema.pandas_dtypes(detailed)
    keyed = len(normalized)
    # A few keys against a big per-number table (a Dask or Polars partition; the table is
    # shared by every partition): look them up in the table's own pandas index, whose hash
    # table is built once and kept with it, and gather plainly. Many keys (one pandas frame):
    # one Arrow hash join, and low-cardinality strings gathered from their dictionary.
    small = keyed * _SMALL_JOIN < len(resolved)
    if len(resolved) and small:
        # pandas-stubs' to_numpy takes a Scalar na_value, not None (which pandas accepts)
        keys = normalized["hlr_number"].to_numpy(object, na_value=None)  # type: ignore[call-overload]
        indexer = resolved.index.get_indexer(keys)
    elif len(resolved):  # one hash join: each key's position in ``resolved`` (null: none)
        keys = _arrow(normalized["hlr_number"].array)
        keys = keys if pa.types.is_string(keys.type) else keys.cast(pa.large_string())
        positions = pc.index_in(keys, value_set=_arrow(resolved.index.array).cast(keys.type))
        indexer = positions.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.intp)
    else:
        indexer = np.full(keyed, -1, dtype=np.intp)

    pool = pa.system_memory_pool() if cells is not None else None
    if cells is None:
        rows = normalized.index if index is None else index

        def local(col: str) -> Any:
            return normalized[col].astype(dtypes[col]).array

    else:
        rows = index if index is not None else pd.RangeIndex(len(cells.codes))
        codes = cells.codes
        indexer = indexer[codes]
        every_cell = pa.array(codes)

        def local(col: str) -> Any:  # the keys are distinct: gathered plainly
            values = normalized[col].astype(dtypes[col]).array
            return _gather(values, codes, every_cell, dtypes[col], col == "hlr_number", pool)

    n = len(indexer)
    found = indexer >= 0
    everywhere, nowhere = bool(found.all()), not found.any()
    where = pa.array(indexer, mask=~found)

    def remote(col: str) -> Any:
        return _gather(resolved[col].array, indexer, where, dtypes[col], small, pool)

    out: dict[str, Any] = {}
    for f in schema.fields(detailed):
        col = f.column
        local_only = nowhere and col in ("hlr_source", "hlr_error")
        if local_only or col in ("hlr_number", "hlr_region", "hlr_number_type", "hlr_note"):
            out[col] = local(col)
        elif nowhere:
            out[col] = pd.array([None] * n, dtype=dtypes[col])
        elif col in ("hlr_source", "hlr_error") and not everywhere:
            here = _arrow(local(col))
            there = _arrow(remote(col)).cast(here.type)
            out[col] = pd.array(pc.if_else(pa.array(found), there, here), dtype=dtypes[col])
        else:
            out[col] = remote(col)
    result = pd.DataFrame(out, index=rows, copy=False)
    # A row to look up that got no outcome at all is a bug; say so rather than show nothing.
    lost = result["hlr_number"].notna().to_numpy() & ~found
    if lost.any():
        result.loc[lost, "hlr_source"] = "error"
        result.loc[lost, "hlr_error"] = "no outcome recorded for this number"
    return result


# --- 6. assemble, and the caller's columns ---------------------------------------------------
def check_column(frame: pd.DataFrame, column: Hashable) -> pd.Series:
    """The column of phone numbers: any hashable label (``0`` after ``read_csv(header=None)``,
    a tuple), present once in ``frame``; else a clear ``KeyError``/``ValueError``/``TypeError``.

    >>> check_column(pd.DataFrame({0: ["+447400123456"]}), 0).tolist()
    ['+447400123456']
    """
    if not isinstance(column, Hashable) or isinstance(column, list | slice):
        raise TypeError(
            f"column must be a column label (a str, an int, ...), not {type(column).__name__} "
            f"{column!r}"
        )
    try:
        present = column in frame.columns
    except TypeError:
        present = False
    if not present:
        available = ", ".join(repr(c) for c in frame.columns) or "(none)"
        hint = column_hint(column, list(frame.columns), sep_option="sep=")
        raise KeyError(
            f"no column {column!r} in the frame{hint}; available columns: {available}"
        )
    values = frame[column]
    if isinstance(values, pd.DataFrame):
        raise ValueError(f"column label {column!r} is not unique in the frame")
    return values


#: Separators a whole header read as one column gives away (a ``;`` file read with ``,``).
_SEPARATORS = {";": "';'", "\t": "'\\t'", "|": "'|'", ",": "','"}


def column_hint(column: Hashable, columns: list[Hashable], *, sep_option: str = "--sep ") -> str:
    """What the user probably meant, for a "no column" message: a column equal to ``column``
    but for case and surrounding spaces, or a close spelling (``" — did you mean 'phone'?"``);
    or, when the header was read as one column holding separators, the separator to pass.
    Empty when there is no good guess.

    >>> column_hint("phone", ["id", "Phone "]), column_hint("phone", ["id", "phnoe"])
    (" — did you mean 'Phone '?", " — did you mean 'phnoe'?")
    >>> column_hint("phone", ["id;name;phone"], sep_option="sep=")
    " — the header looks ';'-separated: pass sep=';'"
    >>> column_hint("phone", ["id", "name"])
    ''
    """
    import difflib

    want = str(column).strip().casefold()
    same = [c for c in columns if str(c).strip().casefold() == want]
    if not same:
        names = {str(c).strip().casefold(): c for c in columns}
        close = difflib.get_close_matches(want, list(names), n=1, cutoff=0.8)
        same = [names[close[0]]] if close else []
    if same:
        return f" — did you mean {same[0]!r}?"
    if len(columns) == 1:
        header = str(columns[0])
        for sep, shown in _SEPARATORS.items():
            if sep in header and want in (p.strip().casefold() for p in header.split(sep)):
                return f" — the header looks {shown}-separated: pass {sep_option}{shown}"
    return ""


def result_columns(settings: ValidateSettings) -> list[str]:
    """The result column names this run adds (with its prefix)."""
    return [settings.prefix + c for c in schema.output_columns(settings.options.detailed)]


def own_columns(frame: pd.DataFrame) -> list[Hashable]:
    """The result columns earlier ``validate`` runs wrote into ``frame``, recognised by their
    record in ``frame.attrs`` (names and dtypes). The record must match the frame exactly:
    after a column of it was dropped, renamed or retyped, nothing is recognised.

    >>> out = df.hlr.validate("phone", client=client, cache=False, default_region="GB")
    >>> own_columns(out)[:3], own_columns(out[["name", "phone", "to"]])
    (['to', 'status', 'live'], [])
    """
    info = frame.attrs.get(ATTRS_KEY)
    recorded = info.get("columns") if isinstance(info, Mapping) else None
    if not isinstance(recorded, Mapping) or not recorded:
        return []
    counts = frame.columns.value_counts()
    for name, dtype in recorded.items():
        if name not in counts.index or counts[name] != 1 or str(frame[name].dtype) != dtype:
            return []
    return list(recorded)


def plan_columns(frame: pd.DataFrame, column: Hashable, settings: ValidateSettings) -> list[Any]:
    """Before anything is sent: the caller's columns the results would overwrite.

    A clash with columns of the caller's own raises :class:`ColumnConflictError` (suggesting
    ``prefix=``). A re-run on ``validate``'s own output (see :func:`own_columns`) replaces the
    earlier run's columns under the same prefix, with a warning; those are returned, to drop.

    >>> plan_columns(pd.DataFrame({"phone": [], "status": []}), "phone",
    ...              ValidateSettings())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pd_hlr.errors.ColumnConflictError: the frame already has columns named like result ...
    """
    return plan_names(list(frame.columns), lambda: own_columns(frame), column, settings)


def plan_names(
    columns: list[Hashable],
    own: Callable[[], Iterable[Hashable]],
    column: Hashable,
    settings: ValidateSettings,
) -> list[Any]:
    """:func:`plan_columns` on a list of column names, for faces whose frames carry no
    ``attrs`` (Polars): ``own()`` gives the result columns of earlier runs, asked only on a
    clash."""
    names = result_columns(settings)
    taken = set(names)
    if column in taken:
        raise ColumnConflictError(
            f"the phone column {column!r} has the name of a result column; pass a prefix for "
            f"the results, e.g. prefix='hlr.', or rename the column",
            columns=[str(column)],
        )
    clashing = [c for c in columns if c in taken]
    if not clashing:
        return []
    mine = set(own())
    foreign = [c for c in clashing if c not in mine]
    if foreign:
        raise ColumnConflictError(
            f"the frame already has columns named like result columns: {foreign}; nothing was "
            "sent. Pass a prefix for the results (e.g. prefix='hlr.'), or rename or drop those "
            "columns.",
            columns=[str(c) for c in foreign],
        )
    mode_names = {settings.prefix + c for d in (False, True) for c in schema.output_columns(d)}
    stale = [c for c in columns if c in mine and c in mode_names]
    warn(f"replacing existing result columns {stale} from an earlier validate() of this frame")
    return stale


def assemble(
    frame: pd.DataFrame, results: pd.DataFrame, prefix: str = "", replace: Iterable[Any] = ()
) -> pd.DataFrame:
    """A new frame: the caller's columns (less ``replace``, see :func:`plan_columns`), then the
    results under ``prefix``. The caller's frame is never modified."""
    results = results.add_prefix(prefix) if prefix else results
    drop = [c for c in replace if c in frame.columns]
    if drop:
        frame = frame.drop(columns=drop)
    left = set(results.columns).intersection(frame.columns)
    if left:  # plan_columns ran before anything was sent; this is a bug if it happens
        raise ColumnConflictError(f"result columns {sorted(left)} would overwrite the caller's")
    return pd.concat([frame, results.set_axis(frame.index)], axis=1)


def _json_label(column: Hashable) -> Any:
    if isinstance(column, bool | str) or column is None:
        return column
    if isinstance(column, _numbers.Integral):
        return int(column)
    if isinstance(column, _numbers.Real):
        return float(column)
    return str(column)


def run_record(
    column: Hashable,
    settings: ValidateSettings,
    report: RunReport,
    columns: Mapping[str, str],
) -> dict[str, Any]:
    """What ``validate`` records in its result's ``attrs[ATTRS_KEY]`` (JSON-safe): the column,
    the options, the run time, the result columns it owns (name → dtype) and the report."""
    return {
        "column": _json_label(column),
        **settings.values(),
        "run_at": report.started_at,
        "columns": dict(columns),
        "report": report.to_dict(),
    }


def record_run(
    out: pd.DataFrame,
    column: Hashable,
    settings: ValidateSettings,
    report: RunReport,
    *,
    kept: Iterable[Any] = (),
) -> pd.DataFrame:
    """Put :func:`run_record` into ``out.attrs``; ``kept``: result columns of earlier runs
    still in ``out`` (under another prefix), which stay recognised as pd-hlr's."""
    owned = [c for c in kept if c in out.columns] + result_columns(settings)
    columns = {str(c): str(out[c].dtype) for c in owned}
    out.attrs[ATTRS_KEY] = run_record(column, settings, report, columns)
    return out


def report_of(frame: pd.DataFrame) -> RunReport:
    """The :class:`RunReport` recorded in a result's ``attrs`` (a clear error if none)."""
    info = frame.attrs.get(ATTRS_KEY)
    data = info.get("report") if isinstance(info, Mapping) else None
    if not isinstance(data, Mapping):
        raise AttributeError(
            "this frame carries no pd-hlr run report: it is not the output of "
            "df.hlr.validate(...) (or an operation dropped its attrs, e.g. a merge of frames "
            "with different attrs, or a CSV round trip)"
        )
    return RunReport.from_dict(data)


# --- the whole path for one pandas frame -------------------------------------------------------
def validate_frame(
    frame: pd.DataFrame,
    column: Hashable,
    settings: ValidateSettings,
    *,
    client: HLRClient | None = None,
    cache: Any = None,
    label: Hashable | None = None,
    results_only: bool = False,
) -> pd.DataFrame:
    """All six steps on one pandas frame: a new frame with the caller's columns, then the
    result columns, and the run recorded in ``attrs`` (``label``: the column name to record,
    default ``column``; ``results_only``: the result columns alone, as the Series face gives).
    """
    values = check_column(frame, column)
    stale = plan_columns(frame, column, settings)
    kept = [c for c in own_columns(frame) if c not in stale]
    regions = region_column(frame, settings)
    cells = normalize_cells(values, settings, regions)
    numbers = cells.numbers()
    detailed = settings.options.detailed
    run = Run(rows=len(values), sources=cells.sources(), regions=_outcomes(regions))
    label = column if label is None else label

    def finish(resolved: pd.DataFrame, report: RunReport) -> pd.DataFrame:
        results = join_results(
            cells.normalized, resolved, detailed, cells=cells, index=values.index
        )
        if results_only:
            out = results.add_prefix(settings.prefix) if settings.prefix else results
        else:
            out = assemble(frame, results, settings.prefix, replace=stale)
        return record_run(out, label, settings, report, kept=kept)

    if not numbers:
        check_client_options(client, settings)
        return finish(_empty_resolved(detailed), finish_without_lookups(run, settings, client))
    resolved = resolve(
        numbers, settings, client=client, cache=resolve_cache(cache), join=finish, run=run
    )
    assert run.report is not None
    return finish(resolved, run.report)


def estimate_frame(
    frame: pd.DataFrame,
    column: Hashable,
    settings: ValidateSettings,
    *,
    client: HLRClient | None = None,
    cache: Any = None,
) -> Estimate:
    """What :func:`validate_frame` would look up and cost; sends nothing."""
    values = check_column(frame, column)
    regions = region_column(frame, settings)
    cells = normalize_cells(values, settings, regions)
    run = Run(rows=len(values), sources=cells.sources(), regions=_outcomes(regions))
    numbers = cells.numbers()
    return estimate_from(run, numbers, settings, resolve_cache(cache), api_namespace(client))
