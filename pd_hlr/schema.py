"""The one output schema, and flattening of API results into typed columns.

Every result column is defined once, in :data:`SUMMARY_FIELDS` / :data:`DETAILED_FIELDS`
(response path → column name → kind) and :data:`META_FIELDS`; the pyarrow schema, the pandas
dtypes, the docs' schema table and the cache's storage schema are all derived from them.
Column names are the response path in snake_case (``*Network.networkName`` →
``*_network_name``, ``*Network.countryPrefix`` → ``*_network_country_prefix``, and so on).

Fields the API sends that the schema does not know are kept, never dropped: they go, as a JSON
object keyed by their dotted response path, into ``hlr_extra``. A known field whose value has
an unexpected type (say ``"groupId": "three"``) becomes ``<NA>`` in its column and its raw
value is kept in ``hlr_extra`` too.

>>> frame = flatten([{"to": "+447400123456", "status": "Live", "live": True}], detailed=False)
>>> bool(frame.loc[0, "live"]), frame.loc[0, "dead"] is pd.NA
(True, True)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
import pyarrow as pa

Kind = Literal["string", "bool", "int", "timestamp"]

#: pandas dtype for each kind. Strings are Arrow-backed with ``pd.NA`` as the missing value.
PANDAS_DTYPES: dict[str, Any] = {
    "string": pd.StringDtype("pyarrow"),
    "bool": pd.BooleanDtype(),
    "int": pd.Int64Dtype(),
    "timestamp": pd.DatetimeTZDtype("us", "UTC"),
}

#: pyarrow type for each kind.
ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.large_string(),
    "bool": pa.bool_(),
    "int": pa.int64(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


@dataclass(frozen=True)
class Field:
    """One output column: where it comes from in a result object, and its kind."""

    column: str
    path: tuple[str, ...]
    kind: Kind
    doc: str = ""


_NETWORK_PARTS = (
    ("networkName", "network_name", "operator name"),
    ("networkPrefix", "network_prefix", "network prefix"),
    ("countryName", "network_country_name", "country name"),
    ("countryPrefix", "network_country_prefix", "international dialling prefix"),
    ("networkId", "network_id", "provider's internal id; may be empty"),
)


def _network(key: str, stem: str, what: str) -> list[Field]:
    return [
        Field(f"{stem}_{suffix}", (key, part), "string", f"{what}: {doc}")
        for part, suffix, doc in _NETWORK_PARTS
    ]


def _coded(key: str, what: str, *, permanent: bool = False) -> list[Field]:
    fields = [
        Field(f"{key}_group_id", (key, "groupId"), "int", f"{what} group id"),
        Field(f"{key}_group_name", (key, "groupName"), "string", f"{what} group name"),
        Field(f"{key}_id", (key, "id"), "int", f"{what} id"),
        Field(f"{key}_name", (key, "name"), "string", f"{what} name"),
        Field(f"{key}_description", (key, "description"), "string", f"{what} description"),
    ]
    if permanent:
        fields.append(
            Field(
                "error_permanent", ("error", "permanent"), "bool", "whether the error is permanent"
            )
        )
    return fields


SUMMARY_FIELDS: tuple[Field, ...] = (
    Field("to", ("to",), "string", "the number looked up, as the API echoes it"),
    Field("status", ("status",), "string", 'summary status, e.g. "Live"'),
    Field("live", ("live",), "bool", "the number is live"),
    Field("dead", ("dead",), "bool", "the number is dead"),
    Field("out_of_network", ("outOfNetwork",), "bool", "the number is out of network"),
    Field("current_network", ("currentNetwork",), "string", "current network name"),
    Field("original_network", ("originalNetwork",), "string", "original network name"),
)

DETAILED_FIELDS: tuple[Field, ...] = (
    Field("to", ("to",), "string", "the number looked up, as the API echoes it"),
    Field("mcc_mnc", ("mccMnc",), "string", "mobile country code + network code"),
    Field("imsi", ("imsi",), "string", "IMSI prefix (the spec: same as mccMnc; often empty)"),
    *_network("originalNetwork", "original", "original network"),
    Field("ported", ("ported",), "bool", "ported to another network"),
    *_network("portedNetwork", "ported", "ported-to (current) network"),
    Field("roaming", ("roaming",), "bool", "attached to a foreign network (roaming requested)"),
    *_network("roamingNetwork", "roaming", "visited network"),
    *_coded("status", "status"),
    *_coded("error", "error", permanent=True),
)

#: Columns pd-hlr adds about the lookup itself, in both modes, after the API columns.
META_FIELDS: tuple[Field, ...] = (
    Field("hlr_number", (), "string", "the number looked up (E.164), or <NA> when none was"),
    Field("hlr_region", (), "string", "ISO 3166 region of the number (offline, phonenumbers)"),
    Field("hlr_number_type", (), "string", "mobile, fixed_line, voip, … (offline, phonenumbers)"),
    Field(
        "hlr_source",
        (),
        "string",
        "where the row's answer came from: api, cache; or why it has none: missing, invalid, "
        "ambiguous, skipped (never sent), error",
    ),
    Field("hlr_error", (), "string", "why the row has no result (<NA> when it has one)"),
    Field("hlr_note", (), "string", "remarks that did not stop the lookup (extension dropped, …)"),
    Field("hlr_checked_at", (), "timestamp", "UTC time the answer was received from the API"),
    Field("hlr_extra", (), "string", "JSON of response fields this schema does not know"),
)

def api_fields(detailed: bool) -> tuple[Field, ...]:
    """The API result fields of one mode."""
    return DETAILED_FIELDS if detailed else SUMMARY_FIELDS


def fields(detailed: bool) -> tuple[Field, ...]:
    """Every output field of one mode, in output order."""
    return (*api_fields(detailed), *META_FIELDS)


def output_columns(detailed: bool) -> list[str]:
    """Result column names of one mode, in output order.

    >>> output_columns(False)[:3]
    ['to', 'status', 'live']
    """
    return [f.column for f in fields(detailed)]


def pandas_dtypes(detailed: bool) -> dict[str, Any]:
    """Column → pandas dtype for one mode."""
    return {f.column: PANDAS_DTYPES[f.kind] for f in fields(detailed)}


def arrow_schema(detailed: bool) -> pa.Schema:
    """The pyarrow schema of the result columns of one mode."""
    return pa.schema([pa.field(f.column, ARROW_TYPES[f.kind]) for f in fields(detailed)])


def empty_frame(detailed: bool, index: pd.Index | None = None) -> pd.DataFrame:
    """An all-missing frame with the full schema of one mode on ``index``.

    >>> empty_frame(True).shape[0]
    0
    """
    index = pd.RangeIndex(0) if index is None else index
    n = len(index)
    return pd.DataFrame(
        {
            col: pd.array([None] * n, dtype=dtype) if n else pd.array([], dtype=dtype)
            for col, dtype in pandas_dtypes(detailed).items()
        },
        index=index,
    )


# --- coercion of one raw value to a kind ------------------------------------------------

_MISSING = object()
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def _to_string(value: Any) -> Any:
    if type(value) is str or isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        return _MISSING
    if isinstance(value, int | float):
        return str(value)
    return _MISSING


def _to_bool(value: Any) -> Any:
    if value is True or value is False:
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    return _MISSING


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _to_int(value: Any) -> Any:
    if isinstance(value, bool):
        return _MISSING
    if isinstance(value, float):
        value = int(value) if value.is_integer() else _MISSING
    elif isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            return _MISSING
    if isinstance(value, int) and _INT64_MIN <= value <= _INT64_MAX:
        return value
    return _MISSING


_COERCE = {"string": _to_string, "bool": _to_bool, "int": _to_int}


def _known_paths(field_set: Iterable[Field]) -> tuple[set[str], dict[str, set[str]]]:
    top: set[str] = set()
    nested: dict[str, set[str]] = {}
    for f in field_set:
        top.add(f.path[0])
        if len(f.path) == 2:
            nested.setdefault(f.path[0], set()).add(f.path[1])
    return top, nested


_KNOWN = {mode: _known_paths(api_fields(mode)) for mode in (False, True)}


def _extras(result: Mapping[str, Any], detailed: bool) -> dict[str, Any]:
    """Fields of ``result`` the schema of this mode does not know, by dotted path."""
    top, nested = _KNOWN[detailed]
    out: dict[str, Any] = {}
    for key, value in result.items():
        if key not in top:
            out[key] = value
        elif key in nested:
            if type(value) is dict or isinstance(value, Mapping):
                for sub, subvalue in value.items():
                    if sub not in nested[key]:
                        out[f"{key}.{sub}"] = subvalue
            elif value is not None:
                out[key] = value
    return out


def _mapping(value: Any) -> Mapping[str, Any] | None:
    """``value`` if it is a JSON object, else None."""
    return value if type(value) is dict or isinstance(value, Mapping) else None


def flatten(results: Sequence[Mapping[str, Any]], detailed: bool) -> pd.DataFrame:
    """Flatten API result objects into the typed API columns of one mode (+ ``hlr_extra``).

    One pass per column over the whole batch; no per-row DataFrame work. Returns a frame on a
    RangeIndex, one row per result, with the API columns of the mode followed by ``hlr_extra``.

    >>> flatten([{"to": "+1", "error": {"id": "7"}}], detailed=True).loc[0, "error_id"]
    np.int64(7)
    """
    api = api_fields(detailed)
    n = len(results)
    columns: dict[str, Any] = {}
    bad: list[dict[str, Any]] = [{} for _ in range(n)]
    parents: dict[str, list[Any]] = {}  # head: each result's object under it (or None)
    for f in api:
        coerce = _COERCE[f.kind]
        values: list[Any] = [None] * n
        head = f.path[0]
        if len(f.path) == 1:
            path, raws = head, [res.get(head) for res in results]
        else:
            level = parents.get(head)
            if level is None:
                level = parents[head] = [_mapping(res.get(head)) for res in results]
            path = f"{head}.{f.path[1]}"
            raws = [None if p is None else p.get(f.path[1]) for p in level]
        for i, raw in enumerate(raws):
            if raw is not None:
                v = coerce(raw)
                if v is _MISSING:
                    bad[i][path] = raw
                else:
                    values[i] = v
        columns[f.column] = pd.array(values, dtype=PANDAS_DTYPES[f.kind])
    extra: list[str | None] = []
    for i, res in enumerate(results):
        unknown = _extras(res, detailed)
        unknown.update(bad[i])
        extra.append(json.dumps(unknown, sort_keys=True, default=str) if unknown else None)
    columns["hlr_extra"] = pd.array(extra, dtype=PANDAS_DTYPES["string"])
    return pd.DataFrame(columns, index=pd.RangeIndex(n))


def is_temporary(frame: pd.DataFrame) -> pd.Series:
    """Rows whose answer is a temporary outcome, worth looking up again on the next run.

    Detailed mode: a non-OK error (group or id not 0) with ``error_permanent`` false (carrier
    overload, no response, absent subscriber, …). Summary mode carries no error object: an answer
    that is neither live, dead nor out of network (all three flags false or absent, e.g. status
    "Unknown") is indeterminate, and so counted as temporary too.

    >>> is_temporary(flatten([{"live": False, "dead": False, "outOfNetwork": False}], False))[0]
    np.True_
    """
    if "error_permanent" in frame.columns:
        not_ok = frame["error_group_id"].fillna(-1).ne(0) | frame["error_id"].fillna(-1).ne(0)
        return (frame["error_permanent"].eq(False).fillna(False) & not_ok).astype(bool)
    flags = [c for c in ("live", "dead", "out_of_network") if c in frame.columns]
    if not flags:
        return pd.Series(False, index=frame.index)
    decided = frame[flags].eq(True).fillna(False).any(axis=1)
    return (~decided).astype(bool)


def schema_table_markdown() -> str:
    """The output-columns table of the docs (docs/guide/columns.md), from the field definitions."""
    lines = ["| column | type | mode | response path | meaning |", "|---|---|---|---|---|"]
    summary = {f.column for f in SUMMARY_FIELDS}
    detailed = {f.column for f in DETAILED_FIELDS}
    seen: set[str] = set()
    for f in (*SUMMARY_FIELDS, *DETAILED_FIELDS, *META_FIELDS):
        if f.column in seen:
            continue
        seen.add(f.column)
        if f.column in summary and f.column in detailed:
            mode = "both"
        elif f.column in summary:
            mode = "summary"
        elif f.column in detailed:
            mode = "detailed"
        else:
            mode = "both"
        dtype = str(PANDAS_DTYPES[f.kind])
        path = ".".join(f.path) if f.path else "—"
        lines.append(f"| `{f.column}` | `{dtype}` | {mode} | `{path}` | {f.doc} |")
    return "\n".join(lines)


#: The key of a result's run record: in ``frame.attrs`` (pandas, Dask's meta) and in the parquet
#: metadata (``b"pd_hlr"``). Here, below every face and the pipeline, so that each reads it
#: from the same base module.
ATTRS_KEY = "pd_hlr"
