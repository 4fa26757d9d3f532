"""``DataFrame.hlr`` and ``Series.hlr``: the pandas face of pd-hlr. Thin and stateless.

pandas builds a new accessor object on every ``df.hlr`` access, so these classes keep only the
object they wrap; clients, caches and settings are made per call or passed in.

>>> import pandas as pd, pd_hlr                                          # doctest: +SKIP
>>> df = pd.DataFrame({"phone": ["+44 7400 123456", "07400 123457", None]})  # doctest: +SKIP
>>> out = df.hlr.validate("phone", default_region="GB", cache="hlr_cache")   # doctest: +SKIP
>>> out.hlr.summary()                                                     # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Hashable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from . import analysis, pipeline
from .errors import AuthenticationError, InsufficientBalanceError
from .settings import ValidateSettings

if TYPE_CHECKING:
    from .client import HLRClient
    from .pipeline import Estimate


def _check_column(frame: pd.DataFrame, column: Any) -> pd.Series:
    if not isinstance(column, str):
        raise TypeError(
            f"column must be the name of a column (a str), not {type(column).__name__} {column!r}"
        )
    if column not in frame.columns:
        available = ", ".join(repr(c) for c in frame.columns) or "(none)"
        raise KeyError(f"no column {column!r} in the frame; available columns: {available}")
    values = frame[column]
    if isinstance(values, pd.DataFrame):
        raise ValueError(f"column name {column!r} is not unique in the frame")
    return values


def _record_run(out: pd.DataFrame, column: str, settings: ValidateSettings) -> pd.DataFrame:
    opts = settings.options
    out.attrs[analysis.ATTRS_KEY] = {
        "column": column,
        "detailed": opts.detailed,
        "roaming": opts.roaming,
        "route": opts.route,
        "msisdn": opts.msisdn,
        "default_region": settings.default_region,
        "strict": settings.strict,
        "only_mobile": settings.only_mobile,
        "prefix": settings.prefix,
        "run_at": datetime.now(UTC).isoformat(),
    }
    return out


@pd.api.extensions.register_dataframe_accessor("hlr")
class HLRFrameAccessor:
    """HLR lookups for a DataFrame column, and helpers for their results."""

    def __init__(self, pandas_obj: pd.DataFrame) -> None:
        if not isinstance(pandas_obj, pd.DataFrame):
            raise TypeError(f"expected a DataFrame, got {type(pandas_obj).__name__}")
        self._obj = pandas_obj

    def validate(
        self,
        column: Hashable,
        *,
        detailed: bool = False,
        roaming: bool = False,
        route: str | None = None,
        msisdn: bool = True,
        default_region: str | None = None,
        strict: bool = False,
        only_mobile: bool = False,
        workers: int | None = None,
        rate_limit: float | None = None,
        progress: bool | None = None,
        client: HLRClient | None = None,
        cache: Any = None,
        max_age: str | pd.Timedelta | None = None,
        refresh: bool = False,
        retry_temporary: bool = True,
        budget: int | None = None,
        price: Any = None,
        prefix: str = "",
    ) -> pd.DataFrame:
        """Look up the numbers in ``column`` and return a new frame with the result columns.

        The caller's columns are kept, untouched and in order, on the original index; the result
        columns (see the README's schema table) follow. Each distinct number is looked up once;
        junk is rejected locally and never sent; answers come from the cache where it has them.

        Args:
            column: the column of phone numbers (str, numbers, categoricals; any format).
            detailed, roaming, route, msisdn: the API's request options.
            default_region: ISO region for numbers written in national format (e.g. "GB").
            strict: also withhold numbers that are possible but not valid per libphonenumber.
            only_mobile: skip numbers that are certainly not mobile.
            workers, rate_limit: concurrency and requests/second (for the client made here).
            progress: a progress bar (None: when in a terminal or notebook).
            client: an :class:`~pd_hlr.HLRClient` to use instead of one from the environment.
            cache: an :class:`~pd_hlr.HLRCache` or folder; None: ``$PD_HLR_CACHE`` or
                ``~/.cache/pd_hlr``; False: no cache.
            max_age: cached answers older than this (e.g. "30D") are looked up again.
            refresh: ignore cached answers (still store the new ones).
            retry_temporary: look temporary outcomes up again instead of serving them.
            budget: refuse to start (``BudgetExceededError``) if more paid lookups are needed.
            price: price per lookup quoted in that error's estimate (default 0.006).
            prefix: put every result column under this prefix.

        Raises:
            InsufficientBalanceError, AuthenticationError: the run stopped; ``.partial`` holds
                the frame with everything answered so far (all of it saved in the cache).

        >>> out = df.hlr.validate("phone", default_region="GB")   # doctest: +SKIP
        """
        values = _check_column(self._obj, column)
        settings = ValidateSettings.from_kwargs(
            detailed=detailed,
            roaming=roaming,
            route=route,
            msisdn=msisdn,
            default_region=default_region,
            strict=strict,
            only_mobile=only_mobile,
            workers=workers,
            rate_limit=rate_limit,
            progress=progress,
            max_age=max_age,
            refresh=refresh,
            retry_temporary=retry_temporary,
            prefix=prefix,
            budget=budget,
            **({} if price is None else {"price": price}),
        )
        try:
            results = pipeline.validate_series(values, settings, client=client, cache=cache)
        except (InsufficientBalanceError, AuthenticationError) as exc:
            partial = getattr(exc, "partial", None)
            if isinstance(partial, pd.DataFrame):
                exc.partial = pipeline.assemble(self._obj, partial, settings.prefix)  # type: ignore[attr-defined]
            raise
        out = pipeline.assemble(self._obj, results, settings.prefix)
        return _record_run(out, str(column), settings)

    def estimate(
        self,
        column: Hashable,
        *,
        client: HLRClient | None = None,
        cache: Any = None,
        price: Any = None,
        **options: Any,
    ) -> Estimate:
        """What :meth:`validate` would look up and cost, with the same options. Sends nothing.

        >>> df.hlr.estimate("phone", default_region="GB").to_look_up   # doctest: +SKIP
        """
        values = _check_column(self._obj, column)
        if price is not None:
            options["price"] = price
        options.pop("progress", None)
        settings = ValidateSettings.from_kwargs(**options)
        return pipeline.estimate_series(values, settings, client=client, cache=cache)

    # -- on the output of validate() ------------------------------------------------------------
    def status(self) -> pd.Series:
        """One status per row: live, dead, out_of_network, unreachable, unknown, invalid,
        missing, skipped or error (rule: :mod:`pd_hlr.analysis`).

        >>> out.hlr.status().value_counts()   # doctest: +SKIP
        """
        return analysis.row_status(self._obj)

    def summary(self, *, by: str | None = None, top: int = 10) -> pd.DataFrame:
        """Tidy counts and shares by status, current network, country; ported/roaming shares.

        >>> out.hlr.summary()   # doctest: +SKIP
        """
        return analysis.summary(self._obj, by=by, top=top)

    def live(self) -> pd.DataFrame:
        """Rows whose number is live (detailed mode: status group DELIVERED)."""
        return analysis.filter_status(self._obj, "live")

    def dead(self) -> pd.DataFrame:
        """Rows whose number is dead (detailed mode: a permanent error)."""
        return analysis.filter_status(self._obj, "dead")

    def invalid(self) -> pd.DataFrame:
        """Rows rejected locally as not a possible phone number (never sent)."""
        return analysis.filter_status(self._obj, "invalid")

    def plot(self, *, top: int = 10) -> Any:
        """A matplotlib figure of the status breakdown and top networks (``plot`` extra)."""
        return analysis.plot(self._obj, top=top)

    def to_parquet(self, path: str | Path, **kwargs: Any) -> None:
        """Write parquet with the run's options and time in the file metadata (``b"pd_hlr"``).

        >>> out.hlr.to_parquet("enriched.parquet")   # doctest: +SKIP
        """
        analysis.to_parquet(self._obj, path, **kwargs)


@pd.api.extensions.register_series_accessor("hlr")
class HLRSeriesAccessor:
    """HLR lookups for a Series of phone numbers: ``s.hlr.validate()`` → result columns only."""

    def __init__(self, pandas_obj: pd.Series) -> None:
        if not isinstance(pandas_obj, pd.Series):
            raise TypeError(f"expected a Series, got {type(pandas_obj).__name__}")
        self._obj = pandas_obj

    def validate(self, **kwargs: Any) -> pd.DataFrame:
        """The result columns for this Series, on its index (same options as the frame's).

        >>> res = df["phone"].hlr.validate(default_region="GB")   # doctest: +SKIP
        """
        name = "__pd_hlr_phone__"
        frame = self._obj.rename(name).to_frame()
        out = frame.hlr.validate(name, **kwargs)
        return out.drop(columns=[name])

    def estimate(self, **kwargs: Any) -> Estimate:
        """What :meth:`validate` would look up and cost. Sends nothing."""
        name = "__pd_hlr_phone__"
        return self._obj.rename(name).to_frame().hlr.estimate(name, **kwargs)
