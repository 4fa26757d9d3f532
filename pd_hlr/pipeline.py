"""The engine-agnostic path of one ``validate`` call, as separate steps any face can reuse.

1. :func:`normalize_column` — cells → lookup keys and local verdicts (pure).
2. :func:`distinct_numbers` — each key once.
3. :func:`resolve` — cache hits, then paid lookups for the misses, every answer journalled to
   the cache the moment it arrives; returns one row per distinct number.
4. :func:`join_results` — per-number results onto the rows, on the original index (pure).
5. :func:`assemble` — caller's columns untouched + result columns, in a new frame.

The pandas accessor runs all five on one frame; the Dask face runs 1 and 4 per partition and 2
and 3 once, in the calling process.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import schema
from ._spec import DEFAULT_BASE_URL
from .cache import CacheWriter, Entry, HLRCache, default_cache_path
from .errors import (
    AuthenticationError,
    BudgetExceededError,
    HLRError,
    InsufficientBalanceError,
)
from .normalize import normalize
from .settings import BASE_URL_ENV, ValidateSettings

if TYPE_CHECKING:
    from .client import HLRClient

#: Columns of the per-number table :func:`resolve` returns, besides the mode's API columns.
_RESOLVED_META = ("hlr_extra", "hlr_checked_at", "hlr_source", "hlr_error")


# --- 1. normalise --------------------------------------------------------------------------
def normalize_column(values: pd.Series, settings: ValidateSettings) -> pd.DataFrame:
    """Local verdicts and lookup keys for one column (see :func:`pd_hlr.normalize.normalize`)."""
    return normalize(
        values,
        default_region=settings.default_region,
        msisdn=settings.options.msisdn,
        strict=settings.strict,
        only_mobile=settings.only_mobile,
    )


# --- 2. distinct -----------------------------------------------------------------------------
def distinct_numbers(normalized: pd.DataFrame | pd.Series) -> list[str]:
    """The distinct lookup keys, in first-seen order."""
    numbers = normalized["hlr_number"] if isinstance(normalized, pd.DataFrame) else normalized
    return [str(n) for n in numbers.dropna().unique()]


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


@contextlib.contextmanager
def client_for(client: HLRClient | None, settings: ValidateSettings) -> Iterator[HLRClient]:
    """The given client, or one made for this call and closed after it."""
    if client is not None:
        if settings.rate_limit is not None:
            warnings.warn(
                "rate_limit is ignored when a client is given: set it on the HLRClient",
                UserWarning,
                stacklevel=4,
            )
        yield client
        return
    own = make_client(settings)
    try:
        yield own
    finally:
        own.close()


# --- estimate --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """What a run would do and cost. No request is sent to compute it."""

    rows: int
    missing: int
    invalid: int
    skipped: int
    distinct: int
    cached: int
    to_look_up: int
    price: Decimal

    @property
    def cost(self) -> Decimal:
        """Estimated cost of the lookups still to pay for."""
        return self.price * self.to_look_up

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "missing": self.missing,
            "invalid": self.invalid,
            "skipped": self.skipped,
            "distinct": self.distinct,
            "cached": self.cached,
            "to_look_up": self.to_look_up,
            "price": self.price,
            "cost": self.cost,
        }

    def to_series(self) -> pd.Series:
        return pd.Series(self.to_dict(), name="estimate", dtype=object)

    def __str__(self) -> str:
        return (
            f"{self.rows:,} rows: {self.missing:,} missing, {self.invalid:,} invalid, "
            f"{self.skipped:,} skipped; {self.distinct:,} distinct numbers, {self.cached:,} "
            f"cached, {self.to_look_up:,} to look up ≈ {self.cost:.4f} at {self.price} each"
        )


def count_sources(normalized: pd.DataFrame) -> dict[str, int]:
    counts = normalized["hlr_source"].value_counts(dropna=True)
    return {k: int(counts.get(k, 0)) for k in ("missing", "invalid", "skipped")}


def cached_numbers(
    numbers: list[str], settings: ValidateSettings, cache: HLRCache | None, api: str
) -> pd.DataFrame:
    """Servable cache entries for ``numbers`` (empty when refreshing or without a cache).

    ``attrs["pd_hlr.cache_seq"]`` is the cache's write sequence read before the lookup: answers
    written after it were paid for during this run (by another process sharing the folder)."""
    detailed = settings.options.detailed
    if cache is None or not len(numbers):
        return _empty_resolved(detailed)
    since = cache.sequence()
    if settings.refresh:
        hits = _empty_resolved(detailed)
    else:
        found = cache.get(
            numbers,
            settings.options.key(),
            api,
            max_age=settings.max_age,
            include_temporary=not settings.retry_temporary,
            columns=[f.column for f in schema.api_fields(detailed)],
        )
        hits = _shape_resolved(found, detailed, source="cache")
    hits.attrs["pd_hlr.cache_seq"] = since
    return hits


def estimate_from(
    rows: int,
    sources: Mapping[str, int],
    numbers: list[str],
    settings: ValidateSettings,
    cache: HLRCache | None,
    api: str,
) -> Estimate:
    cached = len(cached_numbers(numbers, settings, cache, api))
    return Estimate(
        rows=rows,
        missing=sources["missing"],
        invalid=sources["invalid"],
        skipped=sources["skipped"],
        distinct=len(numbers),
        cached=cached,
        to_look_up=len(numbers) - cached,
        price=settings.price,
    )


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


def _progress_enabled(progress: bool | None) -> bool:
    if progress is not None:
        return bool(progress)
    if _in_notebook():
        return True
    stream = sys.stderr
    return bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class _Progress:
    """A ``tqdm.auto`` bar over distinct numbers with cached / failed counts; thread-safe."""

    def __init__(self, total: int, enabled: bool, desc: str = "HLR lookups") -> None:
        self._lock = threading.Lock()
        self.cached = 0
        self.failed = 0
        self.bar = None
        if enabled and total:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="number", dynamic_ncols=True)

    def _postfix(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix(cached=self.cached, failed=self.failed, refresh=False)

    def hits(self, n: int) -> None:
        with self._lock:
            self.cached += n
            if self.bar is not None and n:
                self._postfix()
                self.bar.update(n)

    def done(self, failed: bool) -> None:
        with self._lock:
            self.failed += int(failed)
            if self.bar is not None:
                if failed:
                    self._postfix()
                self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self._postfix()
            self.bar.close()


@dataclass
class _Collector:
    """Receives outcomes from the client's worker threads: journal first, then progress."""

    writer: CacheWriter | None
    options: str
    api: str
    progress: _Progress

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
    join: Any = None,
    rows: int | None = None,
    sources: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """One row per distinct number: its answer (cache or API) or why it has none.

    Checks the budget before any request. On 401/402 (or Ctrl-C) everything already paid for is
    in the cache; a 401/402 is re-raised with ``.partial`` set to ``join(resolved)`` when a
    ``join`` callable is given (the accessor passes one that builds the row frame).
    """
    detailed = settings.options.detailed
    with client_for(client, settings) as cl:
        api = api_namespace(cl)
        hits = cached_numbers(numbers, settings, cache, api)
        if len(hits) == len(numbers):  # hits ⊆ numbers, one per number: every number is cached
            misses: list[str] = []
        else:
            hit_set = set(hits.index)
            misses = [n for n in numbers if n not in hit_set]
            del hit_set
        if settings.budget is not None and len(misses) > settings.budget:
            sources = sources or {}
            est = Estimate(
                rows=len(numbers) if rows is None else rows,
                missing=sources.get("missing", 0),
                invalid=sources.get("invalid", 0),
                skipped=sources.get("skipped", 0),
                distinct=len(numbers),
                cached=len(hits),
                to_look_up=len(misses),
                price=settings.price,
            )
            raise BudgetExceededError(
                f"this run needs {len(misses):,} paid lookups but budget={settings.budget:,}; "
                f"nothing was sent (estimated cost {est.cost:.4f}). Raise the budget, or validate "
                f"fewer numbers.",
                estimate=est,
            )
        progress = _Progress(len(numbers), _progress_enabled(settings.progress))
        progress.hits(len(hits))
        # The writer opens (and writes to) its journal first: an unwritable cache folder is a
        # CacheNotWritableError before any request. Misses are claimed in the cache folder, so
        # processes sharing it pay once per number (pd_hlr.cache.ClaimedLookups).
        writer_cm = cache.writer() if cache is not None and misses else contextlib.nullcontext()
        claimed = None
        stop: HLRError | None = None
        try:
            with writer_cm as writer:
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
                            since = hits.attrs.get("pd_hlr.cache_seq")
                            claimed = cache.claimed(settings.options.key(), api, since=since)
                            claimed.run(misses, lookup, on_served=progress.hits)
                    except (InsufficientBalanceError, AuthenticationError) as exc:
                        stop = exc
        finally:
            progress.close()
        served = claimed.served() if claimed is not None else None
        served_by_others = claimed.served_numbers if claimed is not None else set()
        errors = {n: str(e) for n, e in collector.errors.items()}
        if stop is not None:
            reason = type(stop).__name__
            for n in misses:
                if n not in collector.results and n not in errors and n not in served_by_others:
                    errors[n] = f"not looked up: the run stopped ({reason})"
        resolved = _concat_resolved(
            [
                hits,
                hits[:0] if served is None else _shape_resolved(served, detailed, source="cache"),
                _api_frame(collector, detailed),
                _error_frame(errors, detailed),
            ],
            detailed,
        )
        if stop is not None:
            done = len(collector.results)
            remaining = len(misses) - done - len(collector.errors) - len(served_by_others)
            stop.looked_up = done  # type: ignore[attr-defined]
            stop.remaining = remaining  # type: ignore[attr-defined]
            stop.add_note(
                f"pd-hlr: {done:,} numbers were looked up and saved"
                f"{' to the cache' if cache is not None else ''}; {remaining:,} remain. "
                "Re-run after fixing the cause: only the rest will be looked up."
            )
            stop.partial = join(resolved) if join is not None else resolved  # type: ignore[attr-defined]
            raise stop
        return resolved


# --- 4. join ---------------------------------------------------------------------------------
def join_results(normalized: pd.DataFrame, resolved: pd.DataFrame, detailed: bool) -> pd.DataFrame:
    """Result columns of one mode for each row of ``normalized``, on its index."""
    dtypes = schema.pandas_dtypes(detailed)
    n = len(normalized)

    def arrow(values: Any) -> pa.Array:  # strings as one Arrow array (zero-copy when Arrow)
        arr = values.__arrow_array__() if hasattr(values, "__arrow_array__") else values
        arr = pa.array(arr, from_pandas=True) if not isinstance(arr, pa.ChunkedArray) else arr
        return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr

    if len(resolved):  # one hash join: each row's position in ``resolved`` (null: none)
        keys = arrow(normalized["hlr_number"].array)
        keys = keys if pa.types.is_string(keys.type) else keys.cast(pa.large_string())
        positions = pc.index_in(keys, value_set=arrow(resolved.index.array).cast(keys.type))
        indexer = positions.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.intp)
    else:
        indexer = np.full(n, -1, dtype=np.intp)
    found = indexer >= 0
    everywhere, nowhere = bool(found.all()), not found.any()
    where = pa.array(indexer, mask=~found)  # positions in ``resolved``, null where none

    def take(col: str) -> Any:
        """``resolved[col]`` for each row. Strings with few distinct values (status, network
        names) are gathered from their dictionary: the same strings, without random reads
        across the per-number table."""
        values = resolved[col].array
        if dtypes[col] != schema.PANDAS_DTYPES["string"]:
            return values.take(indexer, allow_fill=True)
        arr = arrow(values)
        if arr.null_count == len(arr):
            return pd.array(pa.nulls(n, arr.type), dtype=dtypes[col])
        enc = pc.dictionary_encode(arr)
        if len(enc.dictionary) * 8 > len(arr):
            return values.take(indexer, allow_fill=True)
        return pd.array(enc.dictionary.take(enc.indices.take(where)), dtype=dtypes[col])

    out: dict[str, Any] = {}
    for f in schema.fields(detailed):
        col = f.column
        local_only = nowhere and col in ("hlr_source", "hlr_error")
        if local_only or col in ("hlr_number", "hlr_region", "hlr_number_type", "hlr_note"):
            out[col] = normalized[col].astype(dtypes[col]).array
        elif nowhere:
            out[col] = pd.array([None] * n, dtype=dtypes[col])
        elif col in ("hlr_source", "hlr_error") and not everywhere:
            local = arrow(normalized[col].astype(dtypes[col]).array)
            remote = arrow(take(col)).cast(local.type)
            out[col] = pd.array(pc.if_else(pa.array(found), remote, local), dtype=dtypes[col])
        else:
            out[col] = take(col)
    result = pd.DataFrame(out, index=normalized.index, copy=False)
    # A row to look up that got no outcome at all is a bug; say so rather than show nothing.
    lost = normalized["hlr_number"].notna().to_numpy() & ~found
    if lost.any():
        result.loc[lost, "hlr_source"] = "error"
        result.loc[lost, "hlr_error"] = "no outcome recorded for this number"
    return result


# --- 5. assemble -----------------------------------------------------------------------------
def result_names(detailed: bool, prefix: str) -> list[str]:
    return [prefix + c for c in schema.output_columns(detailed)]


def assemble(frame: pd.DataFrame, results: pd.DataFrame, prefix: str = "") -> pd.DataFrame:
    """A new frame: the caller's columns (less any stale result columns), then the results."""
    results = results.add_prefix(prefix) if prefix else results
    stale = [c for c in results.columns if c in frame.columns]
    if stale:
        warnings.warn(
            f"replacing existing result columns {stale} (re-run of validate?)",
            UserWarning,
            stacklevel=4,
        )
        frame = frame.drop(columns=stale)
    out = pd.concat([frame, results.set_axis(frame.index)], axis=1)
    return out


# --- the whole path for one pandas column ------------------------------------------------------
def validate_series(
    values: pd.Series,
    settings: ValidateSettings,
    *,
    client: HLRClient | None = None,
    cache: Any = None,
) -> pd.DataFrame:
    """Steps 1–4 for one column: the result columns on the column's index."""
    normalized = normalize_column(values, settings)
    numbers = distinct_numbers(normalized)
    detailed = settings.options.detailed
    if not numbers:
        return join_results(normalized, _empty_resolved(detailed), detailed)
    resolved = resolve(
        numbers,
        settings,
        client=client,
        cache=resolve_cache(cache),
        join=lambda r: join_results(normalized, r, detailed),
        rows=len(values),
        sources=count_sources(normalized),
    )
    return join_results(normalized, resolved, detailed)


def estimate_series(
    values: pd.Series,
    settings: ValidateSettings,
    *,
    client: HLRClient | None = None,
    cache: Any = None,
) -> Estimate:
    """What :func:`validate_series` would send and cost; sends nothing."""
    normalized = normalize_column(values, settings)
    numbers = distinct_numbers(normalized)
    api = api_namespace(client)
    return estimate_from(
        len(values), count_sources(normalized), numbers, settings, resolve_cache(cache), api
    )
