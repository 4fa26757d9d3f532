"""``DataFrame.hlr`` and ``Series.hlr``: the pandas face of pd-hlr. Thin and stateless.

pandas builds a new accessor object on every ``df.hlr`` access, so these classes keep only the
object they wrap; clients, caches and settings are made per call or passed in. Every option is
defined once, in :data:`pd_hlr.settings.OPTIONS`.

>>> out = df.hlr.validate("phone", default_region="GB", client=client, cache=cache_dir)
>>> out["hlr_source"].value_counts().to_dict()
{'api': 2, 'missing': 1, 'invalid': 1}
>>> out.hlr.report().looked_up
2
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

import pandas as pd

from . import analysis, pipeline
from .options import ValidateOptions
from .settings import option_names, split_options, takes_options

if TYPE_CHECKING:
    from .report import Estimate, RunReport

_ON_RESULTS = (
    ("report()", "what the run did: counts, spend, duration, API host, sandbox or not"),
    ("summary()", "counts and shares by status, network, country, ported, roaming"),
    ("status()", "one status per row: live, dead, out_of_network, unreachable, …"),
    ("live() / dead() / invalid()", "filters by status"),
    ("plot()", "status breakdown and top networks (the plot extra)"),
    ("to_parquet(path)", "parquet with the run's options and report in its metadata"),
    ("to_excel(path)", "xlsx: the rows, and the run report on a second sheet (excel extra)"),
    ("to_csv(path)", "CSV, text cells safe from spreadsheet formula injection"),
)


def _describe(obj: pd.DataFrame | pd.Series, lookups: list[tuple[str, str]]) -> list[str]:
    kind = "DataFrame" if isinstance(obj, pd.DataFrame) else "Series"
    shape = " × ".join(f"{n:,}" for n in obj.shape)
    lines = [f"pd-hlr accessor on a {kind} ({shape})"]
    lines += [f"  .{name}: {doc}" for name, doc in lookups]
    options = f"options: {', '.join(option_names())} (see help(.validate))"
    lines += textwrap.wrap(options, 96, initial_indent="  ", subsequent_indent="    ")
    if isinstance(obj, pd.DataFrame):
        lines.append("On a validate() result:")
        lines += [f"  .{name}: {doc}" for name, doc in _ON_RESULTS]
        try:
            report = str(pipeline.report_of(obj))
        except AttributeError:
            report = ""
        if report:
            lines.append("This frame is a validate() result:")
            lines += ["  " + line for line in report.splitlines()]
    return lines


def _html(lines: list[str]) -> str:
    return "<pre class='pd-hlr'>" + html.escape("\n".join(lines)) + "</pre>"


@pd.api.extensions.register_dataframe_accessor("hlr")
class HLRFrameAccessor:
    """HLR lookups for a DataFrame column, and helpers for their results."""

    _LOOKUPS = (
        ("validate(column, **options)", "look the numbers up: a new frame with result columns"),
        ("estimate(column, **options)", "what validate would look up and cost; sends nothing"),
    )

    def __init__(self, pandas_obj: pd.DataFrame) -> None:
        if not isinstance(pandas_obj, pd.DataFrame):
            raise TypeError(f"expected a DataFrame, got {type(pandas_obj).__name__}")
        self._obj = pandas_obj

    def __repr__(self) -> str:
        return "\n".join(_describe(self._obj, list(self._LOOKUPS)))

    def _repr_html_(self) -> str:
        return _html(_describe(self._obj, list(self._LOOKUPS)))

    @takes_options
    def validate(self, column: Hashable, **options: Unpack[ValidateOptions]) -> pd.DataFrame:
        """Look up the numbers in ``column`` and return a new frame with the result columns.

        The caller's columns are kept, untouched and in order, on the original index; the result
        columns (the docs' output-columns table) follow. Each distinct number is looked up once;
        junk is rejected locally and never sent; answers come from the cache where it has them.
        ``column`` is any column label (``0`` after ``read_csv(header=None)`` too).

        Raises:
            ColumnConflictError: a column of the frame is named like a result column (nothing
                is sent; use ``prefix=``). A re-run on validate's own output replaces its
                earlier result columns instead, with a warning.
            BudgetExceededError: more paid lookups are needed than ``budget``; nothing is sent.
            InsufficientBalanceError, AuthenticationError, ServiceUnavailableError: the run
                stopped; ``.partial`` holds the frame with everything answered so far (all of it
                in the cache), ``.looked_up``, ``.remaining`` (what a re-run will look up) and
                ``.report``.

        >>> out = df.hlr.validate("phone", default_region="GB", client=client, cache=False)
        >>> list(out.columns[:4]), out["hlr_number"].iloc[0]
        (['name', 'phone', 'to', 'status'], '+447400123456')
        """
        client, cache, settings = split_options(options)
        return pipeline.validate_frame(self._obj, column, settings, client=client, cache=cache)

    @takes_options
    def estimate(self, column: Hashable, **options: Unpack[ValidateOptions]) -> Estimate:
        """What :meth:`validate` would look up and cost, with the same options. Sends nothing.

        >>> df.hlr.estimate("phone", default_region="GB", client=client, cache=False).to_look_up
        2
        """
        client, cache, settings = split_options(options)
        return pipeline.estimate_frame(self._obj, column, settings, client=client, cache=cache)

    # -- on the output of validate() ------------------------------------------------------------
    def report(self) -> RunReport:
        """What the :meth:`validate` run that made this frame did (:class:`~pd_hlr.RunReport`).

        >>> out = df.hlr.validate("phone", default_region="GB", client=client, cache=False)
        >>> out.hlr.report().sandbox
        True
        """
        return pipeline.report_of(self._obj)

    def status(self) -> pd.Series:
        """One status per row: live, dead, out_of_network, unreachable, unknown, invalid,
        missing, skipped or error (rule: :mod:`pd_hlr.analysis`).

        >>> out = df.hlr.validate("phone", default_region="GB", client=client, cache=False)
        >>> out.hlr.status().iloc[2:].tolist()
        ['missing', 'invalid']
        """
        return analysis.row_status(self._obj)

    def summary(self, *, by: str | None = None, top: int = 10) -> pd.DataFrame:
        """Tidy counts and shares by status, current network, country; ported/roaming shares.

        >>> out = df.hlr.validate("phone", default_region="GB", client=client, cache=False)
        >>> int(out.hlr.summary().query("section == 'source'")["rows"].sum())
        4
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
        """Write parquet with the run's options and report in the file metadata (``b"pd_hlr"``).

        >>> out = df.hlr.validate("phone", default_region="GB", client=client, cache=False)
        >>> out.hlr.to_parquet("enriched.parquet")
        >>> import json, pyarrow.parquet as pq
        >>> json.loads(pq.read_schema("enriched.parquet").metadata[b"pd_hlr"])["report"]["sandbox"]
        True
        """
        analysis.to_parquet(self._obj, path, **kwargs)

    def to_excel(self, path: str | Path, *, escape_formulas: bool = True, **kwargs: Any) -> None:
        """Write ``.xlsx`` (the ``excel`` extra): the rows, then the run report on a second
        sheet; timestamps as naive UTC (noted); text that would run as a formula prefixed with
        ``'`` unless ``escape_formulas=False`` (see :func:`pd_hlr.analysis.to_excel`).

        >>> out = df.hlr.validate("phone", default_region="GB", client=client, cache=False)
        >>> out.hlr.to_excel("enriched.xlsx")
        >>> pd.read_excel("enriched.xlsx", sheet_name="report").shape[1]
        3
        """
        analysis.to_excel(self._obj, path, escape_formulas=escape_formulas, **kwargs)

    def to_csv(self, path: str | Path, *, escape_formulas: bool = True, **kwargs: Any) -> None:
        """``to_csv`` (no index; atomic) with text that would run as a spreadsheet formula
        prefixed with ``'`` unless ``escape_formulas=False`` (see
        :func:`pd_hlr.analysis.to_csv`).

        >>> out = df.hlr.validate("phone", default_region="GB", client=client, cache=False)
        >>> out.hlr.to_csv("enriched.csv.gz")
        >>> len(pd.read_csv("enriched.csv.gz"))
        4
        """
        analysis.to_csv(self._obj, path, escape_formulas=escape_formulas, **kwargs)


@pd.api.extensions.register_series_accessor("hlr")
class HLRSeriesAccessor:
    """HLR lookups for a Series of phone numbers: ``s.hlr.validate()`` → result columns only."""

    _LOOKUPS = (
        ("validate(**options)", "look the numbers up: the result columns, on this index"),
        ("estimate(**options)", "what validate would look up and cost; sends nothing"),
    )

    def __init__(self, pandas_obj: pd.Series) -> None:
        if not isinstance(pandas_obj, pd.Series):
            raise TypeError(f"expected a Series, got {type(pandas_obj).__name__}")
        self._obj = pandas_obj

    def __repr__(self) -> str:
        return "\n".join(_describe(self._obj, list(self._LOOKUPS)))

    def _repr_html_(self) -> str:
        return _html(_describe(self._obj, list(self._LOOKUPS)))

    def _frame(self) -> pd.DataFrame:
        return self._obj.rename(pipeline.SERIES_COLUMN).to_frame()

    @takes_options
    def validate(self, **options: Unpack[ValidateOptions]) -> pd.DataFrame:
        """The result columns for this Series, on its index (same options as the frame's).

        >>> res = df["phone"].hlr.validate(default_region="GB", client=client, cache=False)
        >>> res.columns[0], res.hlr.report().rows
        ('to', 4)
        """
        client, cache, settings = pipeline.series_options(options)
        return pipeline.validate_frame(
            self._frame(),
            pipeline.SERIES_COLUMN,
            settings,
            client=client,
            cache=cache,
            label=self._obj.name,
            results_only=True,
        )

    @takes_options
    def estimate(self, **options: Unpack[ValidateOptions]) -> Estimate:
        """What :meth:`validate` would look up and cost. Sends nothing.

        >>> df["phone"].hlr.estimate(default_region="GB", cache=False).distinct
        2
        """
        client, cache, settings = pipeline.series_options(options)
        return pipeline.estimate_frame(
            self._frame(), pipeline.SERIES_COLUMN, settings, client=client, cache=cache
        )
