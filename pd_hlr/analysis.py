"""After the lookups: a row status, a summary, a plot and a parquet export with metadata.

The row status (:func:`row_status`) is one of ``live``, ``dead``, ``out_of_network``,
``unreachable``, ``unknown`` for rows with an answer, and ``invalid``, ``ambiguous``,
``missing``, ``skipped``, ``error`` for rows without one (``hlr_source`` says why). The rule:

* summary mode: the API's ``live`` / ``dead`` / ``out_of_network`` booleans, in that order;
* detailed mode: **live** when ``status_group_name`` is ``DELIVERED``; otherwise **dead** when the
  error is permanent, **unreachable** when it is temporary (``error_permanent`` false, e.g.
  absent subscriber, carrier overload: worth another try later).

>>> out = df.hlr.validate(
...     "phone", default_region="GB", client=client, cache=cache_dir, progress=False
... )
>>> out.hlr.status().tolist()
['live', 'live', 'missing', 'invalid']
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .schema import ATTRS_KEY

STATUS_ORDER = (
    "live",
    "dead",
    "out_of_network",
    "unreachable",
    "unknown",
    "invalid",
    "ambiguous",
    "missing",
    "skipped",
    "error",
)

#: ``hlr_source`` values of rows that have an answer; every other row was never answered.
ANSWERED_SOURCES = ("api", "cache")
#: The order of the ``source`` section (values not listed here follow, by rows).
SOURCE_ORDER = (*ANSWERED_SOURCES, "invalid", "ambiguous", "missing", "skipped", "error")

#: The value for an answered row without one (a network without a name, mostly dead numbers;
#: a number without a region). Never ranked among the top values: always listed last.
UNKNOWN = "(unknown)"
#: The value pooling everything after the ``top`` ranked values of a section (or groups).
OTHER = "(other)"

#: What each section's share is a share of: ``"rows"`` (all rows; of the group with ``by=``)
#: or ``"answered"`` (the rows with an answer). The table's ``of`` column holds that count.
SECTION_BASE = {
    "rows": "rows",
    "status": "rows",
    "network": "answered",
    "country": "answered",
    "ported": "answered",
    "roaming": "answered",
    "source": "rows",
}

#: What :func:`summary` can split by: the number's country (``hlr_region``) or the row status.
BY = ("country", "status")

#: Bar colour of each row status in :func:`plot`.
STATUS_COLORS = {
    "live": "#2e7d32",
    "dead": "#c62828",
    "out_of_network": "#ef6c00",
    "unreachable": "#f9a825",
    "unknown": "#9e9e9e",
    "invalid": "#6a1b9a",
    "ambiguous": "#ab47bc",
    "missing": "#bdbdbd",
    "skipped": "#90a4ae",
    "error": "#000000",
}


def _col(frame: pd.DataFrame, name: str, prefix: str) -> pd.Series | None:
    full = prefix + name
    return frame[full] if full in frame.columns else None


def detect_prefix(frame: pd.DataFrame) -> str:
    """The prefix validate() put on the result columns (from the frame's attrs or columns).

    >>> detect_prefix(df.hlr.validate("phone", client=client, progress=False, prefix="hlr."))
    'hlr.'
    """
    info = frame.attrs.get(ATTRS_KEY) or {}
    prefix = info.get("prefix")
    if isinstance(prefix, str) and prefix + "hlr_source" in frame.columns:
        return prefix
    if "hlr_source" in frame.columns:
        return ""
    candidates = [c[: -len("hlr_source")] for c in frame.columns if str(c).endswith("hlr_source")]
    if len(candidates) == 1:
        return candidates[0]
    raise AttributeError(
        "this frame has no pd-hlr result columns (no 'hlr_source'); call "
        "df.hlr.validate(column) first"
    )


def _answered(frame: pd.DataFrame, prefix: str) -> np.ndarray:
    source = frame[prefix + "hlr_source"]
    return source.isin(ANSWERED_SOURCES).fillna(False).to_numpy(dtype=bool)


def row_status(frame: pd.DataFrame, prefix: str | None = None) -> pd.Series:
    """One status per row (see the module docstring for the rule), as a categorical.

    >>> out = df.hlr.validate("phone", default_region="GB", client=client, progress=False)
    >>> row_status(out).value_counts().head(3).to_dict()
    {'live': 2, 'invalid': 1, 'missing': 1}
    """
    prefix = detect_prefix(frame) if prefix is None else prefix
    source = frame[prefix + "hlr_source"]
    status = np.full(len(frame), "unknown", dtype=object)
    answered = _answered(frame, prefix)
    group = _col(frame, "status_group_name", prefix)
    if group is not None:  # detailed mode
        live = group.eq("DELIVERED").fillna(False).to_numpy(dtype=bool)
        perm = _col(frame, "error_permanent", prefix)
        assert perm is not None  # detailed results carry both columns
        permanent = perm.eq(True).fillna(False).to_numpy(dtype=bool)
        temporary = perm.eq(False).fillna(False).to_numpy(dtype=bool)
        status[answered & ~live & temporary] = "unreachable"
        status[answered & ~live & permanent] = "dead"
        status[answered & live] = "live"
    else:
        for name in ("out_of_network", "dead", "live"):  # later wins: live first in priority
            flag = _col(frame, name, prefix)
            if flag is not None:
                status[answered & flag.eq(True).fillna(False).to_numpy(dtype=bool)] = name
    for name in ("invalid", "ambiguous", "missing", "skipped", "error"):
        status[source.eq(name).fillna(False).to_numpy(dtype=bool)] = name
    return pd.Series(
        pd.Categorical(status, categories=list(STATUS_ORDER)),
        index=frame.index,
        name="hlr_status",
    )


def _ported(frame: pd.DataFrame, prefix: str) -> pd.Series:
    """Detailed mode: the rows whose current network is the ported-to one."""
    ported_to = _blank_to_na(frame[prefix + "ported_network_name"])
    return frame[prefix + "ported"].eq(True).fillna(False).astype(bool) & ported_to.notna()


def current_network(frame: pd.DataFrame, prefix: str | None = None) -> pd.Series:
    """The name of the network serving each number now (the ported-to one when ported).

    >>> out = df.hlr.validate(
    ...     "phone", default_region="GB", detailed=True, route="detailed", client=client,
    ...     progress=False,
    ... )
    >>> out["original_network_name"].tolist(), out["ported"].tolist()
    (['Three', 'Three', <NA>, <NA>], [False, True, <NA>, <NA>])
    >>> current_network(out).tolist()
    ['Three', 'O2', <NA>, <NA>]
    """
    prefix = detect_prefix(frame) if prefix is None else prefix
    summary_mode = _col(frame, "current_network", prefix)
    if summary_mode is not None:
        return _blank_to_na(summary_mode)
    original = _blank_to_na(frame[prefix + "original_network_name"])
    ported_to = _blank_to_na(frame[prefix + "ported_network_name"])
    return ported_to.where(_ported(frame, prefix), original)


def _blank_to_na(values: pd.Series) -> pd.Series:
    """The API sends ``""`` for an unknown name: make that ``<NA>``."""
    return values.mask(values.astype("string").str.strip().eq("").fillna(False))


def _region_of(country_prefix: Any, number_region: Any) -> Any:
    """The ISO region of a network from its country dialling prefix (``"49"`` → ``"DE"``).

    A prefix that several regions share (``"44"``: GB, GG, IM, JE) is read as the number's own
    region when that is one of them, else as the prefix's main region. Without a usable prefix,
    the number's region (``None`` when that is unknown too).
    """
    import phonenumbers

    number_region = None if pd.isna(number_region) else str(number_region)
    digits = "" if pd.isna(country_prefix) else str(country_prefix).strip().lstrip("+")
    if digits.isdigit():
        regions = phonenumbers.region_codes_for_country_code(int(digits))
        regions = tuple(r for r in regions if r != phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY)
        if regions:
            return number_region if number_region in regions else regions[0]
    return number_region


def _coded(*columns: pd.Series) -> tuple[np.ndarray, list[tuple[Any, ...]]]:
    """Each row's distinct combination of ``columns`` (``<NA>`` → None): codes and the
    combinations, so per-combination work runs once per distinct value, not per row."""
    if not len(columns[0]):
        return np.zeros(0, dtype="int64"), []
    key = np.zeros(len(columns[0]), dtype="int64")
    uniques = []
    for col in columns:
        codes, values = pd.factorize(col, use_na_sentinel=True)
        uniques.append([*(None if pd.isna(v) else v for v in values), None])
        key = key * (len(values) + 1) + np.where(codes < 0, len(values), codes)
    combos, inverse = np.unique(key, return_inverse=True)
    out = []
    for combo in combos.tolist():
        parts = []
        for values in reversed(uniques):
            combo, i = divmod(combo, len(values))
            parts.append(values[i])
        out.append(tuple(reversed(parts)))
    return inverse.reshape(-1).astype("int64"), out


def _network_codes(frame: pd.DataFrame, prefix: str) -> tuple[np.ndarray, list[Any]]:
    """Each row's :func:`network_label` as codes into the distinct labels (None: no name)."""
    name = current_network(frame, prefix)
    region = frame[prefix + "hlr_region"]
    if _col(frame, "original_network_country_prefix", prefix) is None:  # summary mode
        codes, combos = _coded(name, region)
        country = [r for _, r in combos]
    else:
        original = frame[prefix + "original_network_country_prefix"]
        ported = frame[prefix + "ported_network_country_prefix"]
        country_prefix = ported.where(_ported(frame, prefix), original)
        codes, triples = _coded(name, country_prefix, region)
        combos = [(n, _region_of(cc, r)) for n, cc, r in triples]
        country = [c for _, c in combos]
    labels = [
        None if n is None else (f"{n} ({c})" if c else str(n)) for (n, _), c in zip(combos, country)
    ]
    return codes, labels


def network_label(frame: pd.DataFrame, prefix: str | None = None) -> pd.Series:
    """Each row's current network with its country, as :func:`summary` and :func:`plot` show
    it: ``"T-Mobile (DE)"`` and ``"T-Mobile (NL)"`` are two networks (``<NA>``: no name).

    The country is the network's, from the answer (``*_network_country_prefix``) in detailed
    mode; summary mode has none, so the number's own region (``hlr_region``) stands in.

    >>> out = df.hlr.validate(
    ...     "phone", default_region="GB", detailed=True, route="detailed", client=client,
    ...     progress=False,
    ... )
    >>> network_label(out).tolist()
    ['Three (GB)', 'O2 (GB)', <NA>, <NA>]
    """
    prefix = detect_prefix(frame) if prefix is None else prefix
    codes, labels = _network_codes(frame, prefix)
    values = np.array(labels, dtype=object)[codes] if len(codes) else []
    return pd.Series(values, index=frame.index, dtype="string", name="hlr_network")


# --- summary ---------------------------------------------------------------------------------
#: Pseudo-sections of :func:`summary_counts` that carry totals, not values.
ROWS_KEY, ANSWERED_KEY, HAS_KEY = "__rows__", "__answered__", "__has__"
COUNT_COLUMNS = ["section", "value", "rows"]
SUMMARY_COLUMNS = ["section", "value", "rows", "of", "share"]


def _check_by(by: str | None) -> None:
    if by is not None and by not in BY:
        raise ValueError(f"by={by!r}: choose one of {list(BY)} (or None)")


def summary(frame: pd.DataFrame, *, by: str | None = None, top: int = 10) -> Summary:
    """Counts and shares of rows by status, current network (with its country) and country,
    ported and roaming shares where those columns exist, and the rows by ``hlr_source``.

    Each section's share has one denominator, given in the ``of`` column and in the displayed
    table: all rows for ``status`` and ``source``; the rows with an answer (``api`` or
    ``cache``) for ``network``, ``country``, ``ported`` and ``roaming``. ``network`` and
    ``country`` list the ``top`` values by rows, then ``"(other)"`` (the rest pooled), then
    ``"(unknown)"`` (answered, but no name / region); :func:`plot` shows the same rows.

    ``by="country"`` (the number's region) or ``by="status"`` repeats the sections within each
    group (a first column named after ``by``; shares within the group; ``source`` is left out;
    a ``rows`` section gives the group's rows and its share of all rows). With ``by="country"``
    the ``top`` largest countries get a group each and the rest are pooled in ``"(other)"``.

    The result is a :class:`Summary`: a DataFrame with numeric shares that displays them as
    percentages. Computed from additive :func:`summary_counts`, so the Dask face gets the same
    table partition by partition.

    >>> out = df.hlr.validate(
    ...     "phone", default_region="GB", client=client, cache=cache_dir, progress=False
    ... )
    >>> table = out.hlr.summary(by="status")
    >>> table[table["section"] == "network"][["status", "value", "rows", "of", "share"]]
      status       value  rows  of  share
    1   live     O2 (GB)     1   2    0.5
    2   live  Three (GB)     1   2    0.5
    """
    prefix = detect_prefix(frame)
    return summary_from_counts(summary_counts(frame, prefix, by=by), top=top)


def _tally(
    section: str,
    groups: np.ndarray,
    group_labels: Sequence[Any],
    values: np.ndarray,
    labels: Sequence[Any],
) -> pd.DataFrame:
    """Rows per (group, value) of one section from codes into labels (None → "(unknown)")."""
    width = max(len(labels), 1)
    pairs, counts = np.unique(groups * width + values, return_counts=True)
    name = np.array([UNKNOWN if v is None else str(v) for v in labels] or [""], dtype=object)
    group = np.array([UNKNOWN if v is None else str(v) for v in group_labels], dtype=object)
    return pd.DataFrame(
        {
            "group": group[pairs // width] if len(pairs) else np.array([], dtype=object),
            "section": np.full(len(pairs), section, dtype=object),
            "value": name[pairs % width] if len(pairs) else np.array([], dtype=object),
            "rows": counts.astype("int64"),
        }
    )


#: The result columns :func:`summary_counts` reads from the answered rows.
_USED = (
    "hlr_source",
    "hlr_region",
    "current_network",
    "original_network_name",
    "original_network_country_prefix",
    "ported",
    "ported_network_name",
    "ported_network_country_prefix",
    "roaming",
)


def summary_counts(
    part: pd.DataFrame, prefix: str | None = None, *, by: str | None = None
) -> pd.DataFrame:
    """Additive counts of one frame (or partition): summed over any split of the rows, they
    give :func:`summary_from_counts` the same table as :func:`summary` of the whole.

    Columns ``section``, ``value``, ``rows``; with ``by``, a first column named after it.

    >>> out = df.hlr.validate("phone", default_region="GB", client=client, progress=False)
    >>> parts = [summary_counts(out.iloc[:2]), summary_counts(out.iloc[2:])]
    >>> summary_from_counts(pd.concat(parts)).equals(summary(out))
    True
    """
    _check_by(by)
    prefix = detect_prefix(part) if prefix is None else prefix
    status = row_status(part, prefix)
    status_codes = status.cat.codes.to_numpy(dtype="int64")
    n = len(part)
    answered = _answered(part, prefix)
    if by == "status":
        groups, group_labels = status_codes, list(STATUS_ORDER)
    elif by == "country":
        groups, combos = _coded(part[prefix + "hlr_region"])
        group_labels = [c[0] for c in combos]
    else:
        groups, group_labels = np.zeros(n, dtype="int64"), [""]
    used = [prefix + c for c in _USED if prefix + c in part.columns]
    sub, g_ans = part[used][answered], groups[answered]
    zeros = np.zeros(n, dtype="int64")  # every row has the one value [""] of a total
    pieces = [
        _tally(ROWS_KEY, groups, group_labels, zeros, [""]),
        _tally(ANSWERED_KEY, g_ans, group_labels, zeros[answered], [""]),
    ]
    if by != "status":
        pieces.append(_tally("status", groups, group_labels, status_codes, list(STATUS_ORDER)))
    codes, labels = _network_codes(sub, prefix)
    pieces.append(_tally("network", g_ans, group_labels, codes, labels))
    if by != "country":
        codes, combos = _coded(sub[prefix + "hlr_region"])
        pieces.append(_tally("country", g_ans, group_labels, codes, [c[0] for c in combos]))
    for flag in ("ported", "roaming"):
        col = _col(sub, flag, prefix)
        if col is not None:
            yes = col.eq(True).fillna(False).to_numpy(dtype=bool)
            known = col.notna().to_numpy(dtype=bool)
            sub_zeros = zeros[answered]
            pieces.append(_tally(flag, g_ans[yes], group_labels, sub_zeros[yes], ["true"]))
            pieces.append(_tally(HAS_KEY, g_ans[known], group_labels, sub_zeros[known], [flag]))
    if by is None:
        codes, combos = _coded(part[prefix + "hlr_source"])
        pieces.append(_tally("source", groups, group_labels, codes, [c[0] for c in combos]))
    out = pd.concat(pieces, ignore_index=True)
    if by is None:
        return out.drop(columns="group")
    return out.rename(columns={"group": by})


def _ranked(
    counts: pd.Series, top: int | None, order: Sequence[str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """Display order and pooling of one section's values (or of the groups).

    With ``order`` (status, source), values follow it, the unlisted ones after by rows. Else
    values go by rows (ties by name): the first ``top``, then ``"(other)"`` pooling the rest,
    then ``"(unknown)"``. Returns the labels in order and each value's label.
    """
    counts = counts[counts > 0]
    if order is not None:
        rank = {v: i for i, v in enumerate(order)}
        keys = sorted(counts.index, key=lambda v: (rank.get(v, len(rank)), -int(counts[v]), v))
        return keys, {v: v for v in keys}
    named = sorted(
        (v for v in counts.index if v not in (UNKNOWN, OTHER)), key=lambda v: (-int(counts[v]), v)
    )
    keep = named if top is None or len(named) <= top else named[:top]
    mapping = {v: v for v in keep}
    mapping.update({v: OTHER for v in named[len(keep) :]})
    labels = list(keep)
    if len(keep) < len(named) or OTHER in counts.index:
        mapping[OTHER] = OTHER
        labels.append(OTHER)
    if UNKNOWN in counts.index:
        mapping[UNKNOWN] = UNKNOWN
        labels.append(UNKNOWN)
    return labels, mapping


def _rows(section: str, values: list[str], rows: Any, of: int) -> pd.DataFrame:
    rows = np.asarray(rows, dtype="int64")
    return pd.DataFrame(
        {
            "section": section,
            "value": values,
            "rows": rows,
            "of": of,
            "share": rows / of if of else np.full(len(rows), np.nan),
        }
    )


def _section_rows(section: str, counts: pd.Series, total: int, top: int | None) -> pd.DataFrame:
    order = {"status": STATUS_ORDER, "source": SOURCE_ORDER}.get(section)
    labels, mapping = _ranked(counts, None if order else top, order)
    pooled = counts.groupby(counts.index.map(mapping)).sum().reindex(labels)
    return _rows(section, labels, pooled.to_numpy(dtype="int64"), total)


def _group_table(totals: pd.Series, n_all: int, by: str | None, top: int | None) -> list[Any]:
    """The sections of one group (or of the whole frame) from its summed counts."""

    def section(name: str) -> pd.Series:
        if name in totals.index.get_level_values(0):
            return totals.xs(name, level="section")
        return pd.Series(dtype="int64")

    n = int(section(ROWS_KEY).sum())
    n_answered = int(section(ANSWERED_KEY).sum())
    parts: list[pd.DataFrame] = []
    if by is not None:
        parts.append(_rows("rows", ["all"], [n], n_all))
    if by != "status":
        parts.append(_section_rows("status", section("status"), n, None))
    parts.append(_section_rows("network", section("network"), n_answered, top))
    if by != "country":
        parts.append(_section_rows("country", section("country"), n_answered, top))
    has = section(HAS_KEY)
    for flag in ("ported", "roaming"):
        if int(has.get(flag, 0)):
            parts.append(_rows(flag, ["true"], [int(section(flag).get("true", 0))], n_answered))
    if by is None:
        parts.append(_section_rows("source", section("source"), n, None))
    return [p for p in parts if len(p)]


def summary_from_counts(counts: pd.DataFrame, *, top: int = 10) -> Summary:
    """The summary table from :func:`summary_counts` rows (of one frame or of many parts).

    With counts made ``by=`` a column, the table is split the same way (the column's name
    says which).
    """
    extra = [c for c in counts.columns if c not in COUNT_COLUMNS]
    by = str(extra[0]) if extra else None
    _check_by(by)
    counts = counts.assign(rows=counts["rows"].astype("int64"))
    n_all = int(counts.loc[counts["section"] == ROWS_KEY, "rows"].sum())
    if by is None:
        totals = counts.groupby(["section", "value"])["rows"].sum()
        frames = _group_table(totals, n_all, None, top)
    else:
        sizes = counts[counts["section"] == ROWS_KEY].groupby(by)["rows"].sum()
        order = STATUS_ORDER if by == "status" else None
        labels, mapping = _ranked(sizes, top, order)
        counts = counts.assign(**{by: counts[by].map(mapping)})
        frames = []
        for label, group in counts.groupby(by, sort=False):
            totals = group.groupby(["section", "value"])["rows"].sum()
            for part in _group_table(totals, n_all, by, top):
                frames.append(part.assign(**{by: label}))
        frames.sort(key=lambda f: labels.index(f[by].iloc[0]))  # stable: sections keep order
    columns = ([by] if by else []) + SUMMARY_COLUMNS
    if frames:
        out = pd.concat(frames, ignore_index=True)[columns]
    else:
        out = pd.DataFrame({c: [] for c in columns})
    for col in columns:
        if col in ("rows", "of"):
            out[col] = out[col].astype("int64")
        elif col == "share":
            out[col] = out[col].astype("float64")
        else:
            out[col] = out[col].astype("string")
    return Summary(out)


def _pct(share: float) -> str:
    return "–" if pd.isna(share) else f"{share:.1%}".replace("%", " %")


class Summary(pd.DataFrame):
    """The table :func:`summary` returns: a tidy DataFrame (``share`` is a fraction, ``of`` its
    denominator) that displays as a readable report, shares as percentages and each section
    headed by what its shares are of. Anything derived from it (a filter, a sort, a copy) is a
    plain DataFrame; :meth:`to_frame` gives one directly.

    >>> out = df.hlr.validate(
    ...     "phone", default_region="GB", client=client, cache=cache_dir, progress=False
    ... )
    >>> table = out.hlr.summary()
    >>> table.to_frame().loc[0].to_dict()
    {'section': 'status', 'value': 'live', 'rows': 2, 'of': 4, 'share': 0.5}
    >>> "50.0 %" in table._repr_html_()
    True
    >>> print(out.hlr.summary())
    HLR summary: 4 rows, 2 answered (from the API or the cache)
    status: share of all 4 rows
      live                   2   50.0 %
      invalid                1   25.0 %
      missing                1   25.0 %
    network: share of the 2 answered rows
      O2 (GB)                1   50.0 %
      Three (GB)             1   50.0 %
    country: share of the 2 answered rows
      GB                     2  100.0 %
    source: share of all 4 rows
      api                    2   50.0 %
      invalid                1   25.0 %
      missing                1   25.0 %
    """

    @property
    def _constructor(self) -> type[pd.DataFrame]:
        return pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        """The tidy table as a plain DataFrame."""
        return pd.DataFrame(self, copy=True)

    @property
    def by(self) -> str | None:
        """The column the table is split by (``summary(by=...)``), or None."""
        extra = [c for c in self.columns if c not in SUMMARY_COLUMNS]
        return str(extra[0]) if extra else None

    def _blocks(self) -> list[tuple[str | None, str, pd.DataFrame]]:
        """(group heading or None, section heading, its rows) in display order."""
        frame, by = self.to_frame(), self.by
        groups = [(None, frame)] if by is None else frame.groupby(by, sort=False)
        blocks = []
        for group, rows in groups:
            heading = None
            if by is not None:
                size = rows[rows["section"] == "rows"]
                base = rows.loc[rows["section"].map(SECTION_BASE).eq("answered"), "of"]
                n = int(size["rows"].iloc[0]) if len(size) else 0
                heading = f"{by} {group!s}: {n:,} rows"
                if len(size):
                    heading += f" ({_pct(size['share'].iloc[0])} of all)"
                heading += f", {int(base.iloc[0]) if len(base) else 0:,} answered"
            whose = "all" if by is None else "its"
            for name, section in rows.groupby("section", sort=False):
                if name == "rows":
                    continue
                of = int(section["of"].iloc[0])
                if SECTION_BASE.get(str(name)) == "answered":
                    what = f"{'the' if by is None else 'its'} {of:,} answered rows"
                else:
                    what = f"{whose} {of:,} rows"
                blocks.append((heading, f"{name}: share of {what}", section))
                heading = None
        return blocks

    def _totals(self) -> tuple[int, int]:
        """All rows, and the rows with an answer (from the ``of`` column)."""
        frame = self.to_frame()
        first = frame[frame["section"] == ("rows" if self.by else "status")]
        n = int(first["of"].iloc[0]) if len(first) else 0
        base = frame[frame["section"].map(SECTION_BASE).eq("answered")]
        per_group = base.drop_duplicates(self.by) if self.by else base.iloc[:1]
        return n, int(per_group["of"].sum())

    def _title(self) -> str:
        n, n_answered = self._totals()
        by = f" by {self.by}" if self.by else ""
        if not n:
            return f"HLR summary{by}: 0 rows"
        return f"HLR summary{by}: {n:,} rows, {n_answered:,} answered (from the API or the cache)"

    def __repr__(self) -> str:
        lines = [self._title()]
        indent = "  " if self.by else ""
        blocks = self._blocks()
        width = max([len(str(v)) for _, _, rows in blocks for v in rows["value"]] + [16])
        for group, heading, rows in blocks:
            if group is not None:
                lines.append(group)
            lines.append(indent + heading)
            for value, n, share in zip(rows["value"], rows["rows"], rows["share"]):
                lines.append(f"{indent}  {value:<{width}} {n:>7,} {_pct(share):>8}")
        return "\n".join(lines)

    __str__ = __repr__

    def _repr_html_(self) -> str:
        esc = html.escape
        left = 'style="text-align:left"'
        right = 'style="text-align:right"'
        out = [
            '<table class="pd-hlr-summary">',
            f'<thead><tr><th colspan="3" {left}>{esc(self._title())}</th></tr>',
            f"<tr><th {left}></th><th {right}>rows</th><th {right}>share</th></tr></thead>",
            "<tbody>",
        ]
        for group, heading, rows in self._blocks():
            if group is not None:
                out.append(f'<tr><th colspan="3" {left}>{esc(group)}</th></tr>')
            out.append(f'<tr><td colspan="3" {left}><em>{esc(heading)}</em></td></tr>')
            for value, n, share in zip(rows["value"], rows["rows"], rows["share"]):
                out.append(
                    f"<tr><td {left}>{esc(str(value))}</td><td {right}>{int(n):,}</td>"
                    f"<td {right}>{esc(_pct(share))}</td></tr>"
                )
        out.append("</tbody></table>")
        return "\n".join(out)


def filter_status(frame: pd.DataFrame, *statuses: str) -> pd.DataFrame:
    """Rows whose :func:`row_status` is one of ``statuses`` (a new frame, same columns).

    >>> out = df.hlr.validate("phone", default_region="GB", client=client, progress=False)
    >>> filter_status(out, "live", "invalid")["name"].tolist()
    ['Ada', 'Bob', 'Di']
    """
    unknown = set(statuses) - set(STATUS_ORDER)
    if unknown:
        raise ValueError(f"unknown status {sorted(unknown)}; choose from {list(STATUS_ORDER)}")
    mask = row_status(frame).isin(statuses).to_numpy(dtype=bool)
    return frame[mask]


def plot(frame: pd.DataFrame, *, top: int = 10) -> Any:
    """A matplotlib figure: the status of every row and the current networks of the answered
    rows, the same rows as :func:`summary` (``top`` networks, ``"(other)"``, ``"(unknown)"``).

    >>> out = df.hlr.validate(
    ...     "phone", default_region="GB", client=client, cache=cache_dir, progress=False
    ... )
    >>> [ax.get_title() for ax in out.hlr.plot().axes]
    ['Status of all 4 rows', 'Current network of the 2 answered rows']
    """
    try:
        # No backend is forced: matplotlib picks Agg by itself when there is no display, and a
        # helper must not switch the backend of a session that has a GUI one.
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - exercised via a subprocess test
        raise ImportError("out.hlr.plot() needs matplotlib: pip install 'pd-hlr[plot]'") from exc
    table = summary(frame, top=top).to_frame()
    status = table[table["section"] == "status"]
    networks = table[table["section"] == "network"]
    n_answered = int(networks["of"].iloc[0]) if len(networks) else 0
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    _bars(ax1, status, [STATUS_COLORS.get(v, "#9e9e9e") for v in status["value"]])
    ax1.set_title(f"Status of all {len(frame):,} rows")
    pooled = {OTHER: "#90a4ae", UNKNOWN: "#cfd8dc"}
    _bars(ax2, networks, [pooled.get(v, "#1565c0") for v in networks["value"]])
    ax2.set_title(f"Current network of the {n_answered:,} answered rows")
    for ax in (ax1, ax2):
        ax.set_xlabel("rows")
        ax.spines[["top", "right"]].set_visible(False)
        ax.margins(x=0.25)
    plt.close(fig)  # the notebook shows the returned figure once; no duplicate display
    return fig


def _bars(ax: Any, rows: pd.DataFrame, colors: list[str]) -> None:
    """Horizontal bars, first row on top, each labelled with its rows and share."""
    if not len(rows):
        ax.set(xticks=[], yticks=[])
        ax.text(0.5, 0.5, "no rows", ha="center", va="center", transform=ax.transAxes)
        return
    labels = list(rows["value"].astype(str))[::-1]
    values = list(rows["rows"].to_numpy())[::-1]
    ax.barh(labels, values, color=colors[::-1])
    for y, (v, share) in enumerate(zip(values, list(rows["share"])[::-1])):
        ax.text(v, y, f" {int(v):,} ({_pct(share)})", va="center", fontsize=9)


def run_info(frame: pd.DataFrame) -> dict[str, Any]:
    """What validate() recorded about the run that produced ``frame`` (options, time).

    >>> out = df.hlr.validate("phone", default_region="GB", client=client, progress=False)
    >>> run_info(out)["default_region"], run_info(df)
    ('GB', {})
    """
    return dict(frame.attrs.get(ATTRS_KEY) or {})


def to_parquet(
    frame: pd.DataFrame,
    path: str | Path,
    *,
    metadata: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    """``frame.to_parquet`` plus the run's options and time in the file's key-value metadata
    under ``b"pd_hlr"`` (read it back with ``pyarrow.parquet.read_schema(path).metadata``).

    >>> out = df.hlr.validate("phone", default_region="GB", client=client, progress=False)
    >>> out.hlr.to_parquet("enriched.parquet", metadata={"input": "contacts.csv"})
    >>> import json, pyarrow.parquet as pq
    >>> info = json.loads(pq.read_schema("enriched.parquet").metadata[b"pd_hlr"])
    >>> info["column"], info["input"]
    ('phone', 'contacts.csv')
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ._io import write_atomically
    from ._version import __version__

    info = run_info(frame)
    info.setdefault("written_at", datetime.now(UTC).isoformat())
    info["pd_hlr_version"] = __version__
    if metadata:
        info.update(metadata)
    table = pa.Table.from_pandas(frame, preserve_index=kwargs.pop("index", None))
    meta = dict(table.schema.metadata or {})
    meta[b"pd_hlr"] = json.dumps(info, default=str, sort_keys=True).encode()
    if frame.attrs:  # as DataFrame.to_parquet does: pd.read_parquet restores ``.attrs``
        meta[b"PANDAS_ATTRS"] = json.dumps(frame.attrs, default=str).encode()
    table = table.replace_schema_metadata(meta)
    write_atomically(path, lambda tmp: pq.write_table(table, tmp, **kwargs))


#: Rows a worksheet holds (Excel's limit, the header included).
EXCEL_MAX_ROWS = 1_048_576
RESULTS_SHEET, REPORT_SHEET = "results", "report"


def _excel_times(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Timezone-aware columns as naive UTC (Excel has no time zones), and their names."""
    names: list[str] = []
    out = frame
    for i in range(frame.shape[1]):
        col = frame.iloc[:, i]
        if isinstance(col.dtype, pd.DatetimeTZDtype):
            if out is frame:
                out = frame.copy(deep=False)
            out.isetitem(i, col.dt.tz_convert("UTC").dt.tz_localize(None))
            names.append(str(frame.columns[i]))
    return out, names


def _report_rows(frame: pd.DataFrame, utc_columns: list[str], escaped: bool) -> pd.DataFrame:
    """The second sheet: the run report, the run's options, and how to read the first sheet."""
    info = run_info(frame)
    rows: list[tuple[str, str, Any]] = []
    report = info.get("report")
    if isinstance(report, dict):
        for key, value in report.items():
            shown = json.dumps(value) if isinstance(value, dict | list) else value
            rows.append(("report", key, shown))
    for key, value in sorted(info.items()):
        if key not in ("report", "columns"):
            shown = json.dumps(value, default=str) if isinstance(value, dict | list) else value
            rows.append(("run", key, shown))
    if utc_columns:
        rows.append(("note", "time zone", f"{', '.join(utc_columns)}: UTC (written without a "
                                          "zone: Excel has none)"))
    if escaped:
        rows.append(("note", "formulas", "text cells that start like a formula (=, +, -, @, "
                                         "tab, CR) begin with ' so no spreadsheet runs them"))
    return pd.DataFrame(rows, columns=["section", "key", "value"]).astype({"value": object})


def to_excel(
    frame: pd.DataFrame,
    path: str | Path,
    *,
    escape_formulas: bool = True,
    sheet_name: str = RESULTS_SHEET,
    **kwargs: Any,
) -> None:
    """Write an ``.xlsx`` workbook (the ``excel`` extra): the rows on the first sheet, the run
    report and the run's options on a second (``report``).

    Timestamps (``hlr_checked_at``) are written as naive UTC, said in the header cell's comment
    and on the report sheet. Text cells that a spreadsheet would run as a formula (OWASP's rule:
    starting with ``=``, ``+``, ``-``, ``@``, tab, CR, e.g. a network name
    ``=HYPERLINK(...)`` from a compromised API) get a leading ``'``; plain numbers such as
    ``+447400123456`` are left alone; ``escape_formulas=False`` writes them as they are (as
    text, never as formulas). Written to a temp file, then renamed into place.

    >>> out = df.hlr.validate("phone", default_region="GB", client=client, cache=False)
    >>> out.hlr.to_excel("enriched.xlsx")
    >>> book = pd.read_excel("enriched.xlsx", sheet_name=None)
    >>> list(book), len(book["results"]) == len(out)
    (['results', 'report'], True)
    """
    from ._io import escape_formula_cells, write_atomically

    try:
        import openpyxl  # noqa: F401
        from openpyxl.comments import Comment
    except ImportError:
        raise ImportError("writing .xlsx needs the excel extra: pip install 'pd-hlr[excel]'") \
            from None
    if len(frame) >= EXCEL_MAX_ROWS:
        raise ValueError(
            f"{len(frame):,} rows do not fit in an Excel sheet ({EXCEL_MAX_ROWS - 1:,} at "
            "most): write parquet or CSV instead"
        )
    rows, utc_columns = _excel_times(frame)
    escaped = escape_formulas
    if escape_formulas:
        rows = escape_formula_cells(rows)
    report = _report_rows(frame, utc_columns, escaped)
    if escape_formulas:
        report = escape_formula_cells(report)
    index = kwargs.pop("index", False)

    def write(tmp: Path) -> None:
        with pd.ExcelWriter(tmp, engine="openpyxl") as writer:
            rows.to_excel(writer, sheet_name=sheet_name, index=index, **kwargs)
            report.to_excel(writer, sheet_name=REPORT_SHEET, index=False)
            sheet = writer.sheets[sheet_name]
            offset = rows.index.nlevels if index else 0
            for i, name in enumerate(map(str, rows.columns)):
                if name in utc_columns:
                    sheet.cell(row=1, column=offset + i + 1).comment = Comment("UTC", "pd-hlr")
            if not escape_formulas:  # written as they are, but as text: never as formulas
                for row in sheet.iter_rows(min_row=2):
                    for cell in row:
                        if cell.data_type == "f":
                            cell.data_type = "s"

    write_atomically(path, write)


def to_csv(
    frame: pd.DataFrame, path: str | Path, *, escape_formulas: bool = True, **kwargs: Any
) -> None:
    """``frame.to_csv(path, index=False, **kwargs)`` written atomically, its text cells that a
    spreadsheet would run as a formula prefixed with ``'`` (plain numbers such as
    ``+447400123456`` are left alone) unless ``escape_formulas=False``.

    >>> out = df.hlr.validate("phone", default_region="GB", client=client, cache=False)
    >>> out.hlr.to_csv("enriched.csv")
    >>> pd.read_csv("enriched.csv", dtype=str)["to"].dropna().tolist()
    ['+447400123456', '+447400123457']
    """
    from ._io import COMPRESSIONS, escape_formula_cells, write_atomically

    rows = escape_formula_cells(frame) if escape_formulas else frame
    kwargs.setdefault("index", False)
    # by the final name (the temp file's name ends in .tmp): "x.csv.gz" is gzip-compressed
    kwargs.setdefault("compression", COMPRESSIONS.get(Path(path).suffix.lower()))
    write_atomically(path, lambda tmp: rows.to_csv(tmp, **kwargs))
