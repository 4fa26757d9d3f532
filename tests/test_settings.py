"""The options, defined once: every face takes exactly them; bad values are clear errors."""

from __future__ import annotations

import datetime as dt
import inspect
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import pd_hlr
from pd_hlr import settings
from pd_hlr.settings import DEFAULT_PRICE, OPTIONS, ValidateSettings, parse_max_age

dask_dd = pytest.importorskip("dask.dataframe")
import pd_hlr.dask  # noqa: E402  (registers the Dask accessors)

pl = pytest.importorskip("polars")
import pd_hlr.polars  # noqa: E402  (registers the Polars namespaces)


def _faces() -> dict[str, tuple[Any, list[str]]]:
    """Every face's validate/estimate, and the positional parameters it takes first."""
    frame = pd.DataFrame({"phone": ["+447400123456"]})
    ddf = dask_dd.from_pandas(frame, npartitions=1)
    faces: dict[str, tuple[Any, list[str]]] = {}
    for name, obj, lead in (
        ("pandas frame", frame, ["column"]),
        ("pandas Series", frame["phone"], []),
        ("Dask frame", ddf, ["column"]),
        ("Dask Series", ddf["phone"], []),
        ("Polars DataFrame", pl.from_pandas(frame), ["column"]),
        ("Polars LazyFrame", pl.from_pandas(frame).lazy(), ["column"]),
        ("Polars Series", pl.from_pandas(frame)["phone"], []),
    ):
        faces[f"{name} validate"] = (obj.hlr.validate, lead)
        faces[f"{name} estimate"] = (obj.hlr.estimate, lead)
    return faces


@pytest.mark.parametrize("face", sorted(_faces()))
def test_every_face_takes_exactly_the_options(face: str) -> None:
    method, lead = _faces()[face]
    params = list(inspect.signature(method).parameters.values())
    assert [p.name for p in params[: len(lead)]] == lead
    options = params[len(lead) :]
    assert [(p.name, p.default) for p in options] == [(o.name, o.default) for o in OPTIONS]
    assert all(p.kind is p.KEYWORD_ONLY for p in options)
    doc = inspect.getdoc(method) or ""
    assert all(f"{o.name} " in doc for o in OPTIONS), "help() lists every option"


def test_every_option_reaches_the_settings() -> None:
    """A non-default value for each option changes the settings built from it."""
    changed = {
        "detailed": True, "roaming": True, "route": "detailed", "msisdn": False,
        "default_region": "gb", "region_column": "country", "strict": True,
        "only_mobile": True, "ambiguous": "national",
        "workers": 3,
        "rate_limit": 7.5, "progress": True, "max_age": "12h", "refresh": True,
        "retry_temporary": False, "budget": 10, "price": "0.01", "prefix": "x_",
    }
    assert set(changed) == {o.name for o in OPTIONS} - set(settings.RUN_OBJECTS)
    got = ValidateSettings.from_kwargs(**changed)
    assert got.options == pd_hlr.LookupOptions(True, True, "detailed", False)
    assert (got.default_region, got.strict, got.only_mobile) == ("GB", True, True)
    assert got.region_column == "country"
    assert got.ambiguous == "national"
    assert (got.workers, got.rate_limit, got.progress) == (3, 7.5, True)
    assert (got.max_age, got.refresh, got.retry_temporary) == (pd.Timedelta(hours=12), True, False)
    assert (got.budget, got.price, got.prefix) == (10, Decimal("0.01"), "x_")
    assert ValidateSettings.from_kwargs() == ValidateSettings()


def test_the_default_price_is_the_vendors_402_figure(make_sandbox: Any, client_for: Any) -> None:
    server = make_sandbox(balance=0)
    with pytest.raises(pd_hlr.InsufficientBalanceError) as info:
        client_for(server).lookup("+447400123456")
    assert info.value.required_amount == DEFAULT_PRICE
    assert ValidateSettings().price == DEFAULT_PRICE


def test_ambiguous_takes_its_choices_and_national_needs_a_region() -> None:
    assert ValidateSettings.from_kwargs(ambiguous="international").ambiguous == "international"
    with pytest.raises(ValueError, match="ambiguous must be one of"):
        ValidateSettings.from_kwargs(ambiguous="guess")
    with pytest.raises(ValueError, match="set default_region too"):
        ValidateSettings.from_kwargs(ambiguous="national")


def test_unknown_option_names_the_close_one() -> None:
    with pytest.raises(TypeError, match=r"'defualt_region' \(did you mean 'default_region'\?\)"):
        ValidateSettings.from_kwargs(defualt_region="GB")
    with pytest.raises(TypeError, match="unknown option 'colour'"):
        pd.DataFrame({"phone": []}).hlr.validate("phone", colour="red")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"workers": 0}, ValueError, "workers must be a positive integer"),
        ({"workers": 2.5}, ValueError, "workers"),
        ({"rate_limit": 0}, ValueError, "rate_limit must be a positive number"),
        ({"rate_limit": True}, ValueError, "rate_limit"),
        ({"budget": -1}, ValueError, "budget must be a non-negative"),
        ({"budget": True}, ValueError, "budget"),
        ({"price": "abc"}, ValueError, "price must be a non-negative number"),
        ({"price": -0.01}, ValueError, "price"),
        ({"price": "NaN"}, ValueError, "price"),
        ({"detailed": "yes"}, TypeError, "detailed must be True or False"),
        ({"refresh": 1}, TypeError, "refresh must be True or False"),
        ({"progress": "no"}, TypeError, "progress must be True or False"),
        ({"default_region": "Britain"}, ValueError, "2-letter ISO region"),
        ({"default_region": "12"}, ValueError, "2-letter ISO region"),
        ({"route": ""}, ValueError, "route must be one of"),
        ({"prefix": 3}, TypeError, "prefix must be a string"),
    ],
)
def test_bad_values_are_clear_errors(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        ValidateSettings.from_kwargs(**kwargs)


def test_numpy_values_are_accepted() -> None:
    got = ValidateSettings.from_kwargs(workers=np.int64(2), budget=np.int32(5), strict=np.True_)
    assert (got.workers, got.budget, got.strict) == (2, 5, True)
    assert type(got.workers) is int and type(got.strict) is bool


# --- max_age: units that cannot bite --------------------------------------------------------
@given(n=st.integers(1, 10_000), unit=st.sampled_from(["D", "h", "min", "s", "W"]))
def test_max_age_with_a_unit(n: int, unit: str) -> None:
    seconds = {"D": 86_400, "h": 3_600, "min": 60, "s": 1, "W": 604_800}[unit]
    assert parse_max_age(f"{n}{unit}") == pd.Timedelta(seconds=n * seconds)


@given(
    st.one_of(
        st.integers(0, 10**9),
        st.floats(0, 1e9, allow_nan=False),
        st.integers(0, 10**6).map(str),
        st.floats(0, 1e6, allow_nan=False).map(lambda f: f"  {f}  "),
    )
)
def test_a_bare_number_is_refused_naming_the_option_and_an_example(value: Any) -> None:
    with pytest.raises(ValueError, match=r'max_age needs a unit: a string like "30D"'):
        parse_max_age(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.timedelta(days=2), pd.Timedelta(days=2)),
        (pd.Timedelta("3h"), pd.Timedelta(hours=3)),
        (np.timedelta64(90, "m"), pd.Timedelta(minutes=90)),
        ("30 days", pd.Timedelta(days=30)),
        ("P1DT2H", pd.Timedelta(hours=26)),
        (None, None),
    ],
)
def test_max_age_accepts_durations(value: Any, expected: Any) -> None:
    assert parse_max_age(value) == expected


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        ("abc", ValueError, r"max_age 'abc' is not a duration: use a string like \"30D\""),
        ("-3D", ValueError, "must not be negative"),
        ("NaT", ValueError, "must be a duration"),
        ([30], TypeError, "max_age must be"),
    ],
)
def test_max_age_bad_values(value: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        parse_max_age(value)


def test_max_age_30_from_a_face_is_refused_before_anything_is_sent(
    sb: Any, client_for: Any
) -> None:
    df = pd.DataFrame({"phone": ["+447400123456"]})
    with pytest.raises(ValueError, match="max_age needs a unit"):
        df.hlr.validate("phone", client=client_for(sb), cache=False, max_age=30)
    assert sb.stats().requests == 0


def test_readme_options_table_is_generated_from_the_code() -> None:
    import re
    from pathlib import Path

    # the options table moved from the README to the user guide (issue 25)
    text = (Path(__file__).resolve().parents[1] / "docs" / "guide" / "python.md").read_text()
    match = re.search(
        r"<!-- options-table:start.*?-->\n(.*?)\n<!-- options-table:end -->", text, re.S
    )
    assert match, "options table markers missing from docs/guide/python.md"
    assert match.group(1).strip() == settings.options_table_markdown().strip()
