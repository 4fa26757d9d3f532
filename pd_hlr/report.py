"""What a run would cost (:class:`Estimate`) and what it did (:class:`RunReport`).

Both are small frozen values that read well wherever they land: ``str()`` is a sentence for a
terminal, ``_repr_html_`` a table in a notebook, ``to_dict()`` plain data (the report's is
JSON-safe, money as exact decimal strings, for files, ``attrs`` and ``--json``).

>>> est = Estimate(rows=4, missing=1, invalid=1, skipped=0, distinct=2, cached=0, to_look_up=2,
...                price=Decimal("0.006"))
>>> est.cost, est.to_dict()["to_look_up"]
(Decimal('0.012'), 2)
>>> print(est)  # doctest: +ELLIPSIS
4 rows: 1 missing, 1 invalid, 0 skipped; 2 distinct numbers, 0 cached, 2 to look up ≈ 0.012 ...
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal
from typing import Any

import pandas as pd

__all__ = ["Estimate", "RunReport", "stats_delta"]


def money(value: Decimal, price: Decimal | None = None) -> str:
    """An amount for people, thousands separated. One rule for a run: every amount shows the
    decimals of the ``price`` per lookup (at least 2, at most 6), so a spend, a cost and a
    budget line up (``0.000``, ``14.274``, ``0.006``). Without a price: 2 to 4 decimals.

    >>> price = Decimal("0.006")
    >>> money(Decimal("0"), price), money(Decimal("14.274"), price), money(Decimal("30.9"), price)
    ('0.000', '14.274', '30.900')
    >>> money(Decimal("0.084")), money(Decimal("30.9")), money(Decimal("0"))
    ('0.084', '30.90', '0.00')
    """
    if price is not None:
        exponent = price.normalize().as_tuple().exponent
        places = min(max(-exponent if isinstance(exponent, int) else 2, 2), 6)
        return f"{value.quantize(Decimal(1).scaleb(-places)):,f}"
    text = f"{value.quantize(Decimal('0.0001')):,f}"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0").ljust(2, "0")
    return f"{whole}.{frac}"


def plural(n: int, word: str, words: str | None = None) -> str:
    """``n`` and the word, singular for one.

    >>> plural(1, "distinct number"), plural(2_379, "distinct number")
    ('1 distinct number', '2,379 distinct numbers')
    >>> plural(1, "retry", "retries"), plural(0, "retry", "retries")
    ('1 retry', '0 retries')
    """
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


def _ambiguous_text(n: int) -> str:
    """", N ambiguous" in the one-line texts, only when there are any (the usual case is 0)."""
    return f"{n:,} ambiguous, " if n else ""


def _per_second(rate: float | None) -> str:
    """A rate for people; "unthrottled" for None.

    >>> _per_second(38.25), _per_second(None)
    ('38.2/s', 'unthrottled')
    """
    return "unthrottled" if rate is None else f"{rate:,.1f}/s"


def _html_table(title: str, rows: list[tuple[str, str]], note: str = "") -> str:
    body = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
        f"<td style='text-align:right'>{html.escape(v)}</td></tr>"
        for k, v in rows
    )
    foot = f"<p style='margin:0.3em 0'>{note}</p>" if note else ""
    return (
        f"<div class='pd-hlr'><table><caption style='text-align:left'><b>{html.escape(title)}"
        f"</b></caption>{body}</table>{foot}</div>"
    )


@dataclass(frozen=True)
class Estimate:
    """What a run would look up and cost. No request is sent to compute it.

    ``distinct`` numbers would be sent; of those, ``cached`` are served from the cache and
    ``to_look_up`` are paid lookups, priced at ``price`` each (:attr:`cost`).

    >>> est = df.hlr.estimate("phone", default_region="GB", client=client, cache=cache_dir)
    >>> est.distinct, est.to_look_up, est.cost
    (2, 2, Decimal('0.012'))
    """

    rows: int
    missing: int
    invalid: int
    skipped: int
    distinct: int
    cached: int
    to_look_up: int
    price: Decimal
    ambiguous: int = 0
    regions: dict[str, int] = field(default_factory=dict)
    region_fallback: str | None = None

    @property
    def cost(self) -> Decimal:
        """Estimated cost of the lookups still to pay for."""
        return self.price * self.to_look_up

    def to_dict(self) -> dict[str, Any]:
        """The figures, with ``cost``: counts as ints, money as ``Decimal`` (exact; for JSON,
        ``json.dumps(..., default=str)`` writes them as decimal strings).

        >>> Estimate(1, 0, 0, 0, 1, 0, 1, Decimal("0.006")).to_dict()["cost"]
        Decimal('0.006')
        """
        fields_ = asdict(self)
        ambiguous = fields_.pop("ambiguous")  # among the last fields (it has a default)
        regions, fallback = fields_.pop("regions"), fields_.pop("region_fallback")
        out: dict[str, Any] = {}
        for key, value in fields_.items():
            out[key] = value
            if key == "invalid":  # shown with the other local verdicts
                out["ambiguous"] = ambiguous
        out["cost"] = self.cost
        if regions:  # with region_column: rows per outcome, flat (one line each in the CLI)
            for outcome in ("own", "blank", "unrecognised"):
                out[f"region_{outcome}"] = int(regions.get(outcome, 0))
            out["region_fallback"] = fallback
        return out

    def to_series(self) -> pd.Series:
        """The figures as a Series (for ``pd.concat`` of several estimates)."""
        return pd.Series(self.to_dict(), name="estimate", dtype=object)

    def __str__(self) -> str:
        text = (
            f"{plural(self.rows, 'row')}: {self.missing:,} missing, {self.invalid:,} invalid, "
            f"{_ambiguous_text(self.ambiguous)}"
            f"{self.skipped:,} skipped; {plural(self.distinct, 'distinct number')}, "
            f"{self.cached:,} cached, {self.to_look_up:,} to look up "
            f"≈ {money(self.cost, self.price)} at {self.price} each"
        )
        regions = _regions_text(self.regions, self.region_fallback)
        return f"{text}\n{regions}" if regions else text

    def __repr__(self) -> str:
        return f"<Estimate: {self}>"

    def _repr_html_(self) -> str:
        rows = [
            ("rows", f"{self.rows:,}"),
            ("missing (empty cells)", f"{self.missing:,}"),
            ("invalid (never sent)", f"{self.invalid:,}"),
            ("ambiguous (never sent; see the ambiguous option)", f"{self.ambiguous:,}"),
            ("skipped (only_mobile)", f"{self.skipped:,}"),
            ("distinct numbers", f"{self.distinct:,}"),
            ("served from the cache", f"{self.cached:,}"),
            ("to look up (paid)", f"{self.to_look_up:,}"),
            ("estimated cost", f"{money(self.cost, self.price)} at {self.price} per lookup"),
        ]
        return _html_table(
            "pd-hlr estimate (nothing was sent)",
            rows + _regions_rows(self.regions, self.region_fallback),
        )


def stats_delta(before: Any, after: Any) -> dict[str, Any]:
    """What a client's counters (:class:`~pd_hlr.client.ClientStats`) added between two
    snapshots: ``requests``, ``retries``, ``throttled``, ``possibly_charged``,
    ``limit_signals`` and ``failures`` (failure kind → count; empty when the client does not
    count kinds); and the limiter's ``rate`` and ``rate_peak`` at ``after`` (None when the
    client has no such figures).

    >>> from pd_hlr.client import ClientStats
    >>> stats_delta(ClientStats(requests=2), ClientStats(requests=5, retries=1))["requests"]
    3
    """
    out: dict[str, Any] = {}
    for name in ("requests", "retries", "throttled", "possibly_charged", "limit_signals"):
        out[name] = int(getattr(after, name, 0) or 0) - int(getattr(before, name, 0) or 0)
    for name in ("rate", "rate_peak"):
        value = getattr(after, name, None)
        out[name] = None if value is None else round(float(value), 3)
    was: Mapping[str, int] = getattr(before, "failures", None) or {}
    now: Mapping[str, int] = getattr(after, "failures", None) or {}
    out["failures"] = {
        str(kind): int(n) - int(was.get(kind, 0))
        for kind, n in sorted(now.items())
        if int(n) - int(was.get(kind, 0))
    }
    return out


@dataclass(frozen=True)
class RunReport:
    """What one ``validate`` did: counts, money, time and where the answers came from.

    Every ``validate`` leaves one: ``out.hlr.report()``, in ``out.attrs["pd_hlr"]["report"]``,
    in the ``b"pd_hlr"`` metadata of ``out.hlr.to_parquet`` files, and as ``.report`` on an
    error that stopped the run.

    * ``rows``: input rows, of which ``missing``, ``invalid``, ``ambiguous`` and ``skipped``
      were never sent;
    * ``distinct``: distinct numbers to answer: ``cached`` from the cache, ``looked_up`` answered
      by the API in this run (paid), ``failed`` without an answer after retries, and
      ``not_looked_up`` never sent because the run stopped (``stopped`` names the error);
    * ``failures``: failed attempts by kind, retried ones included, and ``possibly_charged``:
      attempts the server may have billed without an answer reaching us (both from the
      client's counters over this run, as are ``requests``, ``retries`` and ``throttled``);
    * ``limit_signals``: the server's "too many requests" (429s, ``Retry-After``, quota
      answers) in this run; ``rate``: the requests/second the client's limiter allowed at the
      end (None: unthrottled: no limit met and no ``rate_limit``); ``rate_peak``: the most
      answers the client counted in one second (since its counters were last reset);
    * ``spend``: ``looked_up × price``; ``spend_max`` adds the possibly charged attempts;
    * ``regions`` (with ``region_column``): rows whose country was recognised (``own``),
      ``blank`` or ``unrecognised``; those two were read in ``region_fallback`` (the
      ``default_region``) or, without one, with no region;
    * ``api_host``, and ``sandbox``: True when that host is a loopback address (the embedded
      sandbox: synthetic answers).

    >>> out = df.hlr.validate("phone", default_region="GB", client=client, cache=cache_dir)
    >>> report = out.hlr.report()
    >>> report.looked_up, report.cached, report.sandbox, report.spend
    (2, 0, True, Decimal('0.012'))
    """

    rows: int
    distinct: int
    cached: int
    looked_up: int
    failed: int = 0
    not_looked_up: int = 0
    missing: int = 0
    invalid: int = 0
    skipped: int = 0
    ambiguous: int = 0
    regions: dict[str, int] = field(default_factory=dict)
    region_fallback: str | None = None
    failures: dict[str, int] = field(default_factory=dict)
    possibly_charged: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    limit_signals: int = 0
    rate: float | None = None
    rate_peak: float | None = None
    price: Decimal = Decimal("0")
    duration: float = 0.0
    api_host: str = ""
    sandbox: bool = False
    started_at: str = ""
    stopped: str | None = None

    @property
    def spend(self) -> Decimal:
        """Estimated spend: the answers received, at ``price`` each."""
        return self.price * self.looked_up

    @property
    def spend_max(self) -> Decimal:
        """``spend`` plus every possibly charged attempt."""
        return self.price * (self.looked_up + self.possibly_charged)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (money as exact decimal strings); :meth:`from_dict` reads it back.

        >>> RunReport(rows=1, distinct=1, cached=1, looked_up=0).to_dict()["spend"]
        '0'
        """
        out: dict[str, Any] = asdict(self)
        out["failures"] = dict(self.failures)
        out["regions"] = dict(self.regions)
        out["price"] = str(self.price)
        out["spend"] = str(self.spend)
        out["spend_max"] = str(self.spend_max)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunReport:
        """The report from :meth:`to_dict` output (unknown keys ignored, e.g. from a newer
        pd-hlr; missing ones take their defaults).

        >>> report = RunReport(rows=3, distinct=2, cached=1, looked_up=1, price=Decimal("0.01"))
        >>> RunReport.from_dict(report.to_dict()) == report
        True
        """
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        if "price" in kwargs:
            kwargs["price"] = Decimal(str(kwargs["price"]))
        if "regions" in kwargs:
            kwargs["regions"] = {str(k): int(v) for k, v in dict(kwargs["regions"]).items()}
        if "failures" in kwargs:
            kwargs["failures"] = {str(k): int(v) for k, v in dict(kwargs["failures"]).items()}
        return cls(**kwargs)

    def _failed_text(self) -> str:
        kinds = ", ".join(f"{kind}: {n:,}" for kind, n in self.failures.items())
        return f"{self.failed:,} failed" + (f" (failed attempts: {kinds})" if kinds else "")

    def _spend_text(self) -> str:
        text = f"spend ≈ {money(self.spend, self.price)} at {self.price} per lookup"
        if self.possibly_charged:
            text += (
                f" (up to {money(self.spend_max, self.price)} with "
                f"{plural(self.possibly_charged, 'possibly charged attempt')})"
            )
        return text

    def _rate_text(self) -> str:
        """The pace: "" when unthrottled and no limit signal."""
        if self.rate is None and not self.limit_signals:
            return ""
        text = f"; {self.limit_signals:,} limit signals"
        if self.rate is not None:
            text += f", rate {self.rate:,.1f}/s"
        if self.rate_peak:
            text += f" (peak {self.rate_peak:,.1f}/s)"
        return text

    def _where_text(self) -> str:
        where = f"API {self.api_host or '(none)'}"
        return where + (" — SANDBOX: synthetic answers" if self.sandbox else "")

    def __str__(self) -> str:
        lines = [
            f"pd-hlr run: {plural(self.rows, 'row')} ({self.missing:,} missing, {self.invalid:,} "
            f"invalid, {_ambiguous_text(self.ambiguous)}{self.skipped:,} skipped), "
            f"{plural(self.distinct, 'distinct number')}: "
            f"{self.cached:,} cached, {self.looked_up:,} looked up, {self._failed_text()}",
            f"{self._spend_text()}; {plural(self.requests, 'request')}, "
            f"{plural(self.retries, 'retry', 'retries')}, "
            f"{self.throttled:,} throttled{self._rate_text()}; {self.duration:,.1f} s; "
            f"{self._where_text()}",
        ]
        if self.regions:
            lines.append(_regions_text(self.regions, self.region_fallback))
        if self.stopped:
            lines.append(
                f"stopped by {self.stopped}: {self.not_looked_up:,} numbers not looked up"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<RunReport\n{self}>"

    def _repr_html_(self) -> str:
        rows = [
            ("rows", f"{self.rows:,}"),
            ("never sent: missing / invalid / ambiguous / skipped",
             f"{self.missing:,} / {self.invalid:,} / {self.ambiguous:,} / {self.skipped:,}"),
            ("distinct numbers", f"{self.distinct:,}"),
            ("served from the cache", f"{self.cached:,}"),
            ("looked up (paid)", f"{self.looked_up:,}"),
            ("failed after retries", f"{self.failed:,}"),
            *_regions_rows(self.regions, self.region_fallback),
        ]
        rows += [(f"failed attempts: {kind}", f"{n:,}") for kind, n in self.failures.items()]
        if self.stopped:
            rows.append((f"not looked up (stopped by {self.stopped})", f"{self.not_looked_up:,}"))
        rows += [
            ("possibly charged attempts", f"{self.possibly_charged:,}"),
            ("estimated spend", f"{money(self.spend, self.price)} at {self.price} per lookup"),
            ("requests / retries / throttled",
             f"{self.requests:,} / {self.retries:,} / {self.throttled:,}"),
            ("limit signals / rate at the end / peak",
             f"{self.limit_signals:,} / {_per_second(self.rate)} / "
             f"{_per_second(self.rate_peak) if self.rate_peak else '-'}"),
            ("duration", f"{self.duration:,.1f} s"),
            ("API host", self.api_host or "(none)"),
        ]
        note = (
            "<b style='color:#b71c1c'>SANDBOX: these answers are synthetic.</b>"
            if self.sandbox
            else ""
        )
        return _html_table("pd-hlr run report", rows, note)


# --- with region_column: the rows per region outcome -------------------------------------------
def _regions_text(regions: Mapping[str, int], fallback: str | None) -> str:
    """How the rows' regions were read (``region_column``), or "" without one.

    >>> _regions_text({"own": 5, "blank": 1, "unrecognised": 2}, "GB")
    'regions: 5 rows read in their own country, 1 blank and 2 unrecognised read in GB'
    >>> _regions_text({"own": 5, "blank": 0, "unrecognised": 2}, None)
    'regions: 5 rows read in their own country, 0 blank and 2 unrecognised read with no region'
    """
    if not regions:
        return ""
    where = f"read in {fallback}" if fallback else "read with no region"
    return (
        f"regions: {regions.get('own', 0):,} rows read in their own country, "
        f"{regions.get('blank', 0):,} blank and {regions.get('unrecognised', 0):,} "
        f"unrecognised {where}"
    )


def _regions_rows(regions: Mapping[str, int], fallback: str | None) -> list[tuple[str, str]]:
    if not regions:
        return []
    where = f"read in {fallback}" if fallback else "read with no region"
    return [
        ("rows read in their own country", f"{regions.get('own', 0):,}"),
        (f"rows with a blank country ({where})", f"{regions.get('blank', 0):,}"),
        (f"rows with an unrecognised country ({where})", f"{regions.get('unrecognised', 0):,}"),
    ]
