"""The one schema and flattening: fixed columns and dtypes whatever the API sends."""

from __future__ import annotations

import json

import pandas as pd
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
                assert bool(got) in (True, False)
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


def test_empty_frame_and_arrow_schema_agree():
    for detailed in (False, True):
        empty = schema.empty_frame(detailed)
        assert list(empty.columns) == schema.output_columns(detailed)
        arrow = schema.arrow_schema(detailed)
        assert arrow.names == schema.output_columns(detailed)
        table = __import__("pyarrow").Table.from_pandas(empty, preserve_index=False)
        assert table.schema.types == arrow.types
