"""Each option is checked once, by its validator in ``settings.OPTIONS``, and every caller uses
that check: the faces (``tests/face_suite.py``), ``normalize``, the CLI and the cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pd_hlr import HLRCache
from pd_hlr.cli import build_parser
from pd_hlr.normalize import normalize
from pd_hlr.settings import OPTIONS, RUN_OBJECTS, LookupOptions, ValidateSettings

from .face_suite import BAD_VALUES, settings_error


def test_every_option_has_a_bad_value_and_its_own_validator() -> None:
    """The face suite's table covers the option table; each option's rule is its validator's."""
    assert set(BAD_VALUES) == {o.name for o in OPTIONS} - set(RUN_OBJECTS)
    for o in OPTIONS:
        if o.name in RUN_OBJECTS:
            continue
        error, message = settings_error(o.name, BAD_VALUES[o.name])
        with pytest.raises(error) as info:
            o.validator(BAD_VALUES[o.name])
        assert str(info.value) == message


@pytest.mark.parametrize("region", ["XX", " xx", "ZZ", "Britain", "12", "G", 5, ["GB"]])
def test_normalize_refuses_a_region_as_the_settings_do(region: Any) -> None:
    error, message = settings_error("default_region", region)
    with pytest.raises(error) as info:
        normalize(pd.Series(["07400 123456"]), default_region=region)
    assert str(info.value) == message


@pytest.mark.parametrize("region", ["GB", "gb", " gb", "Gb ", "\tgb\n"])
def test_a_region_is_read_the_same_everywhere(region: str, tmp_path: Path) -> None:
    assert ValidateSettings.from_kwargs(default_region=region).default_region == "GB"
    got = normalize(pd.Series(["07400 123456"]), default_region=region)
    assert got["hlr_number"].tolist() == ["+447400123456"]
    args = build_parser().parse_args(
        ["validate", str(tmp_path / "in.csv"), "-c", "phone", "--default-region", region]
    )
    assert ValidateSettings.from_kwargs(default_region=args.default_region).default_region == "GB"


@pytest.mark.parametrize("ambiguous", ["guess", "", None, 1])
def test_normalize_refuses_an_ambiguous_choice_as_the_settings_do(ambiguous: Any) -> None:
    error, message = settings_error("ambiguous", ambiguous)
    with pytest.raises(error) as info:
        normalize(pd.Series(["1"]), ambiguous=ambiguous)
    assert str(info.value) == message


def test_national_without_a_region_is_one_rule() -> None:
    error, message = settings_error("ambiguous", "national")
    with pytest.raises(error) as info:
        normalize(pd.Series(["2015550123"]), ambiguous="national")
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("flag", "name", "text"),
    [
        ("--default-region", "default_region", "XX"),
        ("--max-age", "max_age", "30"),
        ("--retry-temporary", "retry_temporary", "3600"),
        ("--price", "price", "abc"),
    ],
)
def test_the_cli_refuses_a_flag_with_the_settings_message(
    flag: str, name: str, text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, message = settings_error(name, text)
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["validate", str(tmp_path / "in.csv"), "-c", "phone", flag, text])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "name", "value"),
    [
        ("--workers", "workers", 0),
        ("--rate-limit", "rate_limit", -1.0),
        ("--rate-limit", "rate_limit", float("inf")),
        ("--budget", "budget", -3),
    ],
)
def test_the_cli_refuses_a_number_with_the_settings_message(
    flag: str, name: str, value: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, message = settings_error(name, value)
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(
            ["validate", str(tmp_path / "in.csv"), "-c", "phone", flag, str(value)]
        )
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("name", ["max_age", "temporary_max_age"])
@pytest.mark.parametrize("age", [30, "30", 1.5, "soon", "-1D"])
def test_the_cache_reads_an_age_as_validate_does(name: str, age: Any, tmp_path: Path) -> None:
    """``HLRCache.get(max_age=30)`` is refused, as ``validate(max_age=30)`` is: never 30 ns."""
    error, message = settings_error("max_age", age)
    cache = HLRCache(tmp_path / "c")
    with pytest.raises(error) as info:
        cache.get(["+447400123456"], LookupOptions().key(), "127.0.0.1", **{name: age})
    assert str(info.value) == message.replace("max_age", name, 1)
    assert cache.get(["+447400123456"], LookupOptions().key(), "127.0.0.1", **{name: "30D"}).empty
