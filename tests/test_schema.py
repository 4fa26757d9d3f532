"""The one schema and flattening: fixed columns and dtypes whatever the API sends."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pd_hlr import sandbox, schema

# --- strategies: result objects as the API might send them, well-formed or not -------------
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
network = st.dictionaries(
    st.sampled_from(
        ["networkName", "networkPrefix", "countryName", "countryPrefix", "networkId", "odd"]
    ),
    scalars,
    max_size=6,
)
coded = st.dictionaries(
    st.sampled_from(["groupId", "groupName", "id", "name", "description", "permanent", "new"]),
    scalars,
    max_size=7,
)
detailed_results = st.fixed_dictionaries(
    {},
    optional={
        "to": scalars,
        "mccMnc": scalars,
        "imsi": scalars,
        "originalNetwork": st.one_of(network, scalars),
        "ported": scalars,
        "portedNetwork": network,
        "roaming": scalars,
        "roamingNetwork": network,
        "status": st.one_of(coded, scalars),
        "error": coded,
        "somethingNew": scalars,
    },
)
summary_results = st.fixed_dictionaries(
    {},
    optional={
        "to": scalars,
        "status": scalars,
        "live": scalars,
        "dead": scalars,
        "outOfNetwork": scalars,
        "currentNetwork": scalars,
        "originalNetwork": scalars,
        "extraField": scalars,
    },
)


# The API's booleans as the spec shows them (true/false), and the spellings a lenient reading
# accepts: 0/1 and the words below. Written out here, not taken from schema.py.
_BOOL_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _expected_bool(raw) -> bool | None:
    """The flag a raw value means, or None when it means none (kept in hlr_extra instead)."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str):
        return _BOOL_WORDS.get(raw.strip().lower())
    return None


def _raw(result: dict, field: schema.Field):
    value = result
    for key in field.path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _check_frame(frame: pd.DataFrame, results: list[dict], detailed: bool) -> None:
    api = schema.api_fields(detailed)
    assert list(frame.columns) == [f.column for f in api] + ["hlr_extra"]
    assert len(frame) == len(results)
    dtypes = schema.pandas_dtypes(detailed)
    for col in frame.columns:
        assert frame[col].dtype == dtypes[col], col
    for i, result in enumerate(results):
        extra = (
            json.loads(frame["hlr_extra"].iloc[i]) if pd.notna(frame["hlr_extra"].iloc[i]) else {}
        )
        for f in api:
            raw = _raw(result, f)
            got = frame[f.column].iloc[i]
            if raw is None:
                assert got is pd.NA
            elif got is pd.NA:
                # an unusable value is never silently lost: it is kept in hlr_extra
                assert ".".join(f.path) in extra or f.path[0] in extra
            elif f.kind == "string":
                assert got == (raw if isinstance(raw, str) else str(raw))
            elif f.kind == "int":
                assert int(got) == int(raw) and not isinstance(raw, bool)
            else:
                expected = _expected_bool(raw)
                assert expected is not None and bool(got) is expected, (f.column, raw)
        # unknown fields are kept
        for key in result:
            if key not in {f.path[0] for f in api}:
                assert key in extra


@settings(max_examples=200, deadline=None)
@given(st.lists(detailed_results, max_size=8))
def test_flatten_detailed_never_crashes_and_keeps_everything(results):
    _check_frame(schema.flatten(results, detailed=True), results, detailed=True)


@settings(max_examples=200, deadline=None)
@given(st.lists(summary_results, max_size=8))
def test_flatten_summary_never_crashes_and_keeps_everything(results):
    _check_frame(schema.flatten(results, detailed=False), results, detailed=False)


@pytest.mark.parametrize("detailed", [False, True])
def test_flatten_matches_the_sandbox_answers_field_by_field(detailed):
    numbers = [f"+4474001234{i:02d}" for i in range(40)] + ["+12015550123", "+4930123456"]
    results = [
        sandbox.answer(n, detailed=detailed, roaming=True, route="detailed") for n in numbers
    ]
    frame = schema.flatten(results, detailed)
    _check_frame(frame, results, detailed)
    # the sandbox sends nothing the schema does not know
    assert frame["hlr_extra"].isna().all()


def test_booleans_and_ids_sent_as_strings_are_read():
    frame = schema.flatten(
        [{"ported": "true", "error": {"groupId": "1", "id": "27", "permanent": "false"}}],
        detailed=True,
    )
    assert frame.loc[0, "ported"] is True or bool(frame.loc[0, "ported"]) is True
    assert (frame.loc[0, "error_group_id"], frame.loc[0, "error_id"]) == (1, 27)
    assert bool(frame.loc[0, "error_permanent"]) is False
    assert schema.is_temporary(frame).tolist() == [True]


# The spec's response-field table, transcribed by hand: (column, arrow type) in output order.
_STRING, _BOOL, _INT = pa.large_string(), pa.bool_(), pa.int64()
_NETWORK = ["name", "prefix", "country_name", "country_prefix", "id"]
_META = [
    ("hlr_number", _STRING), ("hlr_region", _STRING), ("hlr_number_type", _STRING),
    ("hlr_source", _STRING), ("hlr_error", _STRING), ("hlr_note", _STRING),
    ("hlr_checked_at", pa.timestamp("us", tz="UTC")), ("hlr_extra", _STRING),
]
SPEC_SUMMARY = pa.schema(
    [
        ("to", _STRING), ("status", _STRING), ("live", _BOOL), ("dead", _BOOL),
        ("out_of_network", _BOOL), ("current_network", _STRING), ("original_network", _STRING),
        *_META,
    ]
)
SPEC_DETAILED = pa.schema(
    [
        ("to", _STRING), ("mcc_mnc", _STRING), ("imsi", _STRING),
        *[(f"original_network_{p}", _STRING) for p in _NETWORK],
        ("ported", _BOOL),
        *[(f"ported_network_{p}", _STRING) for p in _NETWORK],
        ("roaming", _BOOL),
        *[(f"roaming_network_{p}", _STRING) for p in _NETWORK],
        ("status_group_id", _INT), ("status_group_name", _STRING), ("status_id", _INT),
        ("status_name", _STRING), ("status_description", _STRING),
        ("error_group_id", _INT), ("error_group_name", _STRING), ("error_id", _INT),
        ("error_name", _STRING), ("error_description", _STRING), ("error_permanent", _BOOL),
        *_META,
    ]
)


@pytest.mark.parametrize(("detailed", "expected"), [(False, SPEC_SUMMARY), (True, SPEC_DETAILED)])
def test_schema_is_the_spec_field_table(detailed, expected):
    assert schema.arrow_schema(detailed).equals(expected)
    # and an (empty or filled) pandas result converts to exactly that arrow schema
    empty = pa.Schema.from_pandas(schema.empty_frame(detailed), preserve_index=False)
    assert empty.remove_metadata().equals(expected)
    answers = [sandbox.answer("+447400123456", detailed=detailed, roaming=True, route="detailed")]
    flat = schema.flatten(answers, detailed)
    for name in flat.columns:
        assert pa.array(flat[name]).type == expected.field(name).type, name
