"""After the lookups: a row status, a tidy summary, a plot and a parquet export with metadata.

The row status (:func:`row_status`) is one of ``live``, ``dead``, ``out_of_network``,
``unreachable``, ``unknown`` for rows with an answer, and ``invalid``, ``missing``, ``skipped``,
``error`` for rows without one. The rule:

* summary mode: the API's ``live`` / ``dead`` / ``out_of_network`` booleans, in that order;
* detailed mode: **live** when ``status_group_name`` is ``DELIVERED``; otherwise **dead** when the
  error is permanent, **unreachable** when it is temporary (``error_permanent`` false, e.g.
  absent subscriber, carrier overload: worth another try later).

>>> out = df.hlr.validate("phone")                     # doctest: +SKIP
>>> out.hlr.summary(); out.hlr.live(); out.hlr.plot()   # doctest: +SKIP
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

STATUS_ORDER = (
    "live",
    "dead",
    "out_of_network",
    "unreachable",
    "unknown",
    "invalid",
    "missing",
    "skipped",
    "error",
)

ATTRS_KEY = "pd_hlr"

#: The ``network`` value in :func:`summary` for answered rows without a network name (mostly
#: dead numbers: the API sends an empty name).
UNKNOWN_NETWORK = "(unknown)"


def _col(frame: pd.DataFrame, name: str, prefix: str) -> pd.Series | None:
    full = prefix + name
    return frame[full] if full in frame.columns else None


def detect_prefix(frame: pd.DataFrame) -> str:
    """The prefix validate() put on the result columns (from the frame's attrs or columns)."""
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


def row_status(frame: pd.DataFrame, prefix: str | None = None) -> pd.Series:
    """One status per row (see the module docstring for the rule), as a categorical."""
    prefix = detect_prefix(frame) if prefix is None else prefix
    source = frame[prefix + "hlr_source"].astype(object)
    status = np.full(len(frame), "unknown", dtype=object)
    answered = source.isin(["api", "cache"]).to_numpy()
    group = _col(frame, "status_group_name", prefix)
    if group is not None:  # detailed mode
        live = group.eq("DELIVERED").fillna(False).to_numpy(dtype=bool)
        perm = _col(frame, "error_permanent", prefix)
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
    for name in ("invalid", "missing", "skipped", "error"):
        status[source.eq(name).to_numpy()] = name
    return pd.Series(
        pd.Categorical(status, categories=list(STATUS_ORDER)),
        index=frame.index,
        name="hlr_status",
    )


def current_network(frame: pd.DataFrame, prefix: str | None = None) -> pd.Series:
    """The network serving each number now (ported-to network when ported)."""
    prefix = detect_prefix(frame) if prefix is None else prefix
    summary = _col(frame, "current_network", prefix)
    if summary is not None:
        return _blank_to_na(summary)
    original = _blank_to_na(frame[prefix + "original_network_name"])
    ported_to = _blank_to_na(frame[prefix + "ported_network_name"])
    ported = frame[prefix + "ported"].eq(True).fillna(False)
    return ported_to.where(ported & ported_to.notna(), original)


def _blank_to_na(values: pd.Series) -> pd.Series:
    """The API sends ``""`` for an unknown network name: make that ``<NA>``."""
    return values.mask(values.astype("string").str.strip().eq("").fillna(False))


def summary(frame: pd.DataFrame, *, top: int = 10) -> pd.DataFrame:
    """A tidy table: counts and shares of rows by status, current network and country, plus
    ported and roaming shares where those columns exist, and the rows by ``hlr_source``.

    Columns: ``section``, ``value``, ``rows``, ``share`` (of all rows for ``status`` and
    ``source``; of rows with an answer for the other sections). Computed from additive
    :func:`summary_counts`, so the Dask face gets the same table partition by partition.
    """
    prefix = detect_prefix(frame)
    return summary_from_counts(summary_counts(frame, prefix), top=top)


#: Pseudo-sections of :func:`summary_counts` that carry totals, not values.
ROWS_KEY, ANSWERED_KEY, HAS_KEY = "__rows__", "__answered__", "__has__"


def _networks(sub: pd.DataFrame, prefix: str) -> pd.Series:
    """The ``network`` values :func:`summary` counts for answered rows."""
    return current_network(sub, prefix).astype("string").fillna(UNKNOWN_NETWORK)


def summary_counts(part: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """Additive counts of one frame (or partition): summed over any split of the rows, they
    give :func:`summary_from_counts` the same table as :func:`summary` of the whole."""
    status = row_status(part, prefix)
    source = part[prefix + "hlr_source"]
    answered = source.isin(["api", "cache"]).fillna(False).to_numpy(dtype=bool)
    sub = part[answered]
    pieces: list[tuple[str, Any, int]] = [(ROWS_KEY, "", len(part)), (ANSWERED_KEY, "", len(sub))]
    for section, values in (
        ("status", status),
        ("network", _networks(sub, prefix)),
        ("country", sub[prefix + "hlr_region"]),
        ("source", source),
    ):
        for value, n in values.value_counts(dropna=True).items():
            if n:
                pieces.append((section, str(value), int(n)))
    for flag in ("ported", "roaming"):
        col = prefix + flag
        if col in sub.columns:
            pieces.append((flag, "true", int(sub[col].eq(True).fillna(False).sum())))
            pieces.append((HAS_KEY, flag, int(sub[col].notna().sum())))
    return pd.DataFrame(
        {
            "section": pd.array([p[0] for p in pieces], dtype=object),
            "value": pd.array([p[1] for p in pieces], dtype=object),
            "rows": np.array([p[2] for p in pieces], dtype="int64"),
        }
    )


def _share_rows(
    section: str, counts: pd.Series, total: int, top: int | None, order: list[str] | None = None
) -> pd.DataFrame:
    counts = counts[counts > 0]
    rank = {v: i for i, v in enumerate(order)} if order else None
    keys = sorted(
        counts.index,
        key=lambda v: (-int(counts[v]), rank.get(v, len(rank)) if rank else 0, str(v)),
    )
    counts = counts.reindex(keys)
    if top is not None and len(counts) > top:
        rest = counts.iloc[top:].sum()
        counts = pd.concat([counts.iloc[:top], pd.Series({"(other)": rest})])
    return pd.DataFrame(
        {
            "section": section,
            "value": counts.index.astype(str),
            "rows": counts.to_numpy(dtype="int64"),
            "share": counts.to_numpy(dtype="float64") / total if total else np.nan,
        }
    )


def summary_from_counts(counts: pd.DataFrame, *, top: int = 10) -> pd.DataFrame:
    """The summary table from :func:`summary_counts` rows (of one frame or of many parts)."""
    totals = counts.groupby(["section", "value"])["rows"].sum()

    def section(name: str) -> pd.Series:
        if name in totals.index.get_level_values(0):
            return totals.xs(name, level="section")
        return pd.Series(dtype="int64")

    n = int(section(ROWS_KEY).sum())
    n_answered = int(section(ANSWERED_KEY).sum())
    has = section(HAS_KEY)
    parts = [
        _share_rows("status", section("status"), n, None, list(STATUS_ORDER)),
        _share_rows("network", section("network"), n_answered, top),
        _share_rows("country", section("country"), n_answered, top),
    ]
    for flag in ("ported", "roaming"):
        if int(has.get(flag, 0)):
            yes = int(section(flag).get("true", 0))
            parts.append(
                pd.DataFrame(
                    {
                        "section": [flag],
                        "value": ["true"],
                        "rows": [yes],
                        "share": [yes / n_answered if n_answered else np.nan],
                    }
                )
            )
    parts.append(_share_rows("source", section("source"), n, None))
    out = pd.concat([p for p in parts if len(p)], ignore_index=True)
    out["section"] = out["section"].astype("string")
    out["value"] = out["value"].astype("string")
    out["rows"] = out["rows"].astype("int64")
    return out


def filter_status(frame: pd.DataFrame, *statuses: str) -> pd.DataFrame:
    """Rows whose :func:`row_status` is one of ``statuses`` (a new frame, same columns)."""
    unknown = set(statuses) - set(STATUS_ORDER)
    if unknown:
        raise ValueError(f"unknown status {sorted(unknown)}; choose from {list(STATUS_ORDER)}")
    mask = row_status(frame).isin(statuses).to_numpy(dtype=bool)
    return frame[mask]


def plot(frame: pd.DataFrame, *, top: int = 10) -> Any:
    """A matplotlib figure: row status breakdown and the top current networks."""
    try:
        # No backend is forced: matplotlib picks Agg by itself when there is no display, and a
        # helper must not switch the backend of a session that has a GUI one.
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - exercised via a subprocess test
        raise ImportError("out.hlr.plot() needs matplotlib: pip install 'pd-hlr[plot]'") from exc
    prefix = detect_prefix(frame)
    status = row_status(frame, prefix).value_counts().reindex(list(STATUS_ORDER)).fillna(0)
    status = status[status > 0]
    answered = frame[prefix + "hlr_source"].isin(["api", "cache"]).fillna(False)
    networks = current_network(frame[answered.to_numpy(dtype=bool)], prefix).value_counts()
    networks = networks.head(top)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    colors = {
        "live": "#2e7d32",
        "dead": "#c62828",
        "out_of_network": "#ef6c00",
        "unreachable": "#f9a825",
        "unknown": "#9e9e9e",
        "invalid": "#6a1b9a",
        "missing": "#bdbdbd",
        "skipped": "#90a4ae",
        "error": "#000000",
    }
    ax1.barh(
        list(status.index.astype(str))[::-1],
        list(status.to_numpy())[::-1],
        color=[colors[s] for s in list(status.index.astype(str))[::-1]],
    )
    ax1.set_title(f"Status of {len(frame):,} rows")
    ax1.set_xlabel("rows")
    for y, v in enumerate(list(status.to_numpy())[::-1]):
        ax1.text(v, y, f" {int(v):,} ({v / max(len(frame), 1):.0%})", va="center", fontsize=9)
    ax2.barh(
        list(networks.index.astype(str))[::-1], list(networks.to_numpy())[::-1], color="#1565c0"
    )
    ax2.set_title(f"Top {len(networks)} current networks")
    ax2.set_xlabel("rows")
    for ax in (ax1, ax2):
        ax.spines[["top", "right"]].set_visible(False)
        ax.margins(x=0.25)
    plt.close(fig)  # the notebook shows the returned figure once; no duplicate display
    return fig


def run_info(frame: pd.DataFrame) -> dict[str, Any]:
    """What validate() recorded about the run that produced ``frame`` (options, time)."""
    return dict(frame.attrs.get(ATTRS_KEY) or {})


def to_parquet(
    frame: pd.DataFrame,
    path: str | Path,
    *,
    metadata: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    """``frame.to_parquet`` plus the run's options and time in the file's key-value metadata
    under ``b"pd_hlr"`` (read it back with ``pyarrow.parquet.read_schema(path).metadata``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from . import __version__

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
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, **kwargs)
    tmp.replace(path)
