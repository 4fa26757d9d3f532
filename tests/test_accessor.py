"""The ``hlr`` accessor against the sandbox over real HTTP."""

from __future__ import annotations

import pandas as pd
import pytest

import pd_hlr
from pd_hlr import sandbox, schema

# Real-looking numbers in several formats; the same number appears in several shapes.
GB_MOBILE = "+447400123456"
GB_FIXED = "+441302778473"
US = "+12015550123"
DE = "+4915112345678"


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": ["a", "b", "c", "d", "e", "f", "g", "h", "i"],
            "phone": [
                "+44 7400 123456",
                "07400 123456",  # national GB → same number as row 0
                "0044-1302-778473",
                "(201) 555-0123",  # national US? no: GB default → invalid or other number
                "+1 201 555 0123",
                "+49 151 12345678",
                "not a number",
                None,
                "   ",
            ],
            "spend": [1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
        },
        index=pd.Index([10, 10, 11, 12, 13, 14, 15, 16, 17], name="row"),
    )


def _expected_value(result: dict, field: schema.Field):
    value: object = result
    for key in field.path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _assert_row_matches(row: pd.Series, result: dict, detailed: bool) -> None:
    for field in schema.api_fields(detailed):
        expected = _expected_value(result, field)
        got = row[field.column]
        if expected is None:
            assert got is pd.NA, (field.column, got)
        elif field.kind == "bool":
            assert bool(got) is bool(expected), field.column
        else:
            assert got == (int(expected) if field.kind == "int" else str(expected)), field.column


def test_summary_values_dtypes_order_index_and_one_request_per_number(sb, client_for):
    df = _frame()
    before = df.copy()
    client = client_for(sb)
    out = df.hlr.validate("phone", default_region="GB", client=client, cache=False, progress=False)

    # the caller's frame is untouched; the output is a new frame with the same index
    pd.testing.assert_frame_equal(df, before)
    assert out is not df
    assert out.index.equals(df.index)
    assert list(out.columns) == list(df.columns) + schema.output_columns(False)
    pd.testing.assert_frame_equal(out[df.columns], df)
    for col, dtype in schema.pandas_dtypes(False).items():
        assert out[col].dtype == dtype, col

    stats = sb.stats()
    looked_up = set(out["hlr_number"].dropna())
    assert GB_MOBILE in looked_up and GB_FIXED in looked_up and US in looked_up
    # every distinct number exactly once; nothing else was sent
    assert stats.received == dict.fromkeys(looked_up, 1)

    for _, row in out.iterrows():
        if row["hlr_source"] == "api":
            _assert_row_matches(row, sandbox.answer(row["hlr_number"]), detailed=False)
            assert row["hlr_error"] is pd.NA
            assert row["hlr_checked_at"].tzinfo is not None
        else:
            assert row["hlr_error"] is not pd.NA
            assert pd.isna(row["hlr_checked_at"])
    sources = out["hlr_source"].tolist()
    assert sources[0] == sources[1] == "api"
    assert out["hlr_number"].iloc[0] == out["hlr_number"].iloc[1] == GB_MOBILE
    assert sources[6] == "invalid"
    assert sources[7] == sources[8] == "missing"
    assert out["hlr_region"].iloc[0] == "GB"
    assert out["hlr_number_type"].iloc[0] == "mobile"


def test_detailed_roaming_route_detailed_values(sb, client_for):
    df = pd.DataFrame({"phone": [GB_MOBILE, GB_FIXED, US, DE, GB_MOBILE]})
    out = df.hlr.validate(
        "phone",
        detailed=True,
        roaming=True,
        route="detailed",
        client=client_for(sb),
        cache=False,
        progress=False,
    )
    assert list(out.columns) == ["phone", *schema.output_columns(True)]
    for col, dtype in schema.pandas_dtypes(True).items():
        assert out[col].dtype == dtype, col
    for _, row in out.iterrows():
        answer = sandbox.answer(row["hlr_number"], detailed=True, roaming=True, route="detailed")
        _assert_row_matches(row, answer, detailed=True)
    assert sb.stats().received == {GB_MOBILE: 1, GB_FIXED: 1, US: 1, DE: 1}


def test_multiindex_and_non_unique_index_preserved(sb, client_for):
    idx = pd.MultiIndex.from_tuples([("x", 1), ("x", 1), ("y", 2)], names=["k", "n"])
    df = pd.DataFrame({"phone": [GB_MOBILE, "07400 123456", US]}, index=idx)
    out = df.hlr.validate("phone", default_region="GB", client=client_for(sb), cache=False)
    assert out.index.equals(idx)
    assert out["hlr_number"].tolist() == [GB_MOBILE, GB_MOBILE, US]


def test_numeric_columns_are_read_as_numbers(sb, client_for):
    df = pd.DataFrame({"phone": [4.41302778473e11, float("nan"), 447400123456.0]})
    out = df.hlr.validate("phone", client=client_for(sb), cache=False)
    assert out["hlr_number"].tolist()[0] == GB_FIXED
    assert out["hlr_source"].tolist() == ["api", "missing", "api"]


def test_series_accessor_returns_result_columns_only(sb, client_for):
    s = pd.Series([GB_MOBILE, None], index=["p", "q"], name="tel")
    res = s.hlr.validate(client=client_for(sb), cache=False)
    assert list(res.columns) == schema.output_columns(False)
    assert res.index.equals(s.index)
    assert res["hlr_source"].tolist() == ["api", "missing"]


def test_all_null_column_is_all_missing_without_requests(sb, client_for):
    df = pd.DataFrame({"phone": [None, float("nan"), pd.NA]}, dtype=object)
    out = df.hlr.validate("phone", client=client_for(sb), cache=False)
    assert out["hlr_source"].tolist() == ["missing"] * 3
    assert sb.stats().requests == 0


def test_bad_arguments_are_clear():
    df = pd.DataFrame({"phone": ["+447400123456"], "other": [1]})
    with pytest.raises(KeyError, match="available columns: 'phone', 'other'"):
        df.hlr.validate("tel", cache=False)
    with pytest.raises(KeyError, match="no column 3 in the frame"):
        df.hlr.validate(3, cache=False)
    with pytest.raises(TypeError, match="column must be a column label"):
        df.hlr.validate(["phone"], cache=False)
    with pytest.raises(ValueError, match="default_region"):
        df.hlr.validate("phone", default_region="Britain", cache=False)
    with pytest.raises(TypeError, match="did you mean 'default_region'"):
        df.hlr.validate("phone", defualt_region="GB", cache=False)
    dup = pd.DataFrame([["+447400123456", "+447400123457"]], columns=["phone", "phone"])
    with pytest.raises(ValueError, match="not unique"):
        dup.hlr.validate("phone", cache=False)


@pytest.mark.parametrize("label", [0, 7, ("contact", "phone"), 2.5])
def test_any_hashable_column_label(sb, client_for, tmp_path, label):
    (tmp_path / "in.csv").write_text(f"Ada,{GB_MOBILE}\nBob,07400 123457\nCy,\n")
    df = pd.read_csv(tmp_path / "in.csv", header=None, dtype=str)
    df.columns = ["name", label]
    out = df.hlr.validate(label, default_region="GB", client=client_for(sb), cache=False)
    assert list(out.columns) == ["name", label, *schema.output_columns(False)]
    assert out["hlr_source"].tolist() == ["api", "api", "missing"]
    assert out.attrs["pd_hlr"]["column"] == (label if not isinstance(label, tuple) else str(label))
    assert out.hlr.report().looked_up == 2


def test_header_none_csv_validates_column_zero(sb, client_for, tmp_path):
    (tmp_path / "in.csv").write_text(f"{GB_MOBILE},x\n{US},y\n")
    df = pd.read_csv(tmp_path / "in.csv", header=None)
    out = df.hlr.validate(0, client=client_for(sb), cache=False)
    assert out["hlr_number"].tolist() == [GB_MOBILE, US]
    assert sb.stats().received == {GB_MOBILE: 1, US: 1}


def test_missing_token_names_the_env_var():
    df = pd.DataFrame({"phone": [GB_MOBILE]})
    with pytest.raises(pd_hlr.AuthenticationError, match="PROVERO_API_TOKEN"):
        df.hlr.validate("phone", cache=False, progress=False)


def test_per_number_failure_is_a_row_status_not_a_crash(make_sandbox, client_for):
    server = make_sandbox(faults=sandbox.Faults(error_500=0.5), seed=3)
    client = client_for(server, max_retries=0, workers=1)
    df = pd.DataFrame({"phone": [f"+4474001234{i:02d}" for i in range(12)]})
    out = df.hlr.validate("phone", client=client, cache=False)
    sources = out["hlr_source"]
    assert set(sources) == {"api", "error"}
    failed = out[sources == "error"]
    assert failed["hlr_error"].str.contains("500").all()
    assert failed["to"].isna().all() and out.loc[sources == "api", "to"].notna().all()
    assert server.stats().status_counts[500] == len(failed)


def test_msisdn_false_sends_the_cleaned_string(sb, client_for):
    df = pd.DataFrame({"phone": ["+44 44 7400 123456", "+44 4444 7400 123456 78"]})
    out = df.hlr.validate("phone", msisdn=False, client=client_for(sb), cache=False)
    assert out["hlr_number"].tolist()[0] == "+44447400123456"
    assert out["hlr_source"].tolist() == ["api", "invalid"]
    assert "15" in out["hlr_error"].iloc[1]
    assert sb.stats().received == {"+44447400123456": 1}


def test_wrong_token_raises_authentication_error(sb):
    client = pd_hlr.HLRClient(token="wrong", base_url=sb.url)
    df = pd.DataFrame({"phone": [GB_MOBILE, US]})
    with pytest.raises(pd_hlr.AuthenticationError) as info:
        df.hlr.validate("phone", client=client, cache=False)
    assert "wrong" not in str(info.value)
    client.close()


def test_progress_bar_counts_numbers_on_stderr(sb, client_for, capsys):
    df = pd.DataFrame({"phone": [GB_MOBILE, US, "junk"]})
    df.hlr.validate("phone", client=client_for(sb), cache=False, progress=True)
    err = capsys.readouterr().err
    assert "HLR lookups: 100%" in err and "2/2" in err and "spend ≈ 0.012" in err
    df.hlr.validate("phone", client=client_for(sb), cache=False, progress=False)
    assert capsys.readouterr().err == ""


def test_accessor_shows_what_it_can_do(sb, client_for):
    df = pd.DataFrame({"phone": [GB_MOBILE, "junk"]})
    text = repr(df.hlr)
    assert text.startswith("pd-hlr accessor on a DataFrame (2 × 1)")
    for name in ("validate(column", "estimate(column", "report()", "summary()", "plot()"):
        assert name in text
    assert "default_region" in text and "This frame is a validate() result" not in text
    out = df.hlr.validate("phone", client=client_for(sb), cache=False)
    shown = repr(out.hlr)
    assert "This frame is a validate() result" in shown and "1 looked up" in shown
    assert "SANDBOX" in shown and "<pre" in out.hlr._repr_html_()
    assert "pd-hlr accessor on a Series (2)" in repr(df["phone"].hlr)


def test_series_face_records_its_own_name_and_result_columns(sb, client_for):
    s = pd.Series([GB_MOBILE, None, GB_MOBILE], name="tel")
    res = s.hlr.validate(client=client_for(sb), cache=False, prefix="x_")
    assert list(res.columns) == ["x_" + c for c in schema.output_columns(False)]
    info = res.attrs["pd_hlr"]
    assert info["column"] == "tel" and info["prefix"] == "x_"
    assert list(info["columns"]) == list(res.columns)
    assert res.hlr.report().rows == 3 and res.hlr.report().distinct == 1
    assert res.hlr.summary().query("section == 'source'")["rows"].sum() == 3
