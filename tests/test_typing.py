"""The options as types: ``ValidateOptions`` against the one option table, and mypy on a user's
snippet (a misspelt option and a wrongly typed one are errors on every face)."""

from __future__ import annotations

import ast
import textwrap
import typing

import pytest

from pd_hlr import settings
from pd_hlr.options import ValidateOptions


def _text(annotation: str) -> str:
    """An annotation's text, quote style and spacing normalised."""
    return ast.unparse(ast.parse(annotation, mode="eval"))


def test_typed_dict_matches_the_option_table():
    hints = ValidateOptions.__annotations__
    assert list(hints) == [o.name for o in settings.OPTIONS]
    for o in settings.OPTIONS:
        ref = hints[o.name]
        text = ref.__forward_arg__ if isinstance(ref, typing.ForwardRef) else str(ref)
        assert _text(text) == _text(o.annotation), o.name
    assert ValidateOptions.__total__ is False
    assert ValidateOptions.__required_keys__ == frozenset()


def test_typed_dict_resolves():
    """Every annotation names something real (a typo in a type name would be a silent Any)."""
    from pd_hlr.cache import HLRCache
    from pd_hlr.client import HLRClient

    hints = typing.get_type_hints(
        ValidateOptions, localns={"HLRCache": HLRCache, "HLRClient": HLRClient}
    )
    assert hints["budget"] == int | None
    assert typing.get_args(hints["ambiguous"]) == settings.AMBIGUOUS_CHOICES


SNIPPET = """
import pandas as pd
import polars as pl
import dask.dataframe as dd

from pd_hlr.accessor import HLRFrameAccessor, HLRSeriesAccessor
from pd_hlr.dask import HLRDaskFrameAccessor
from pd_hlr.polars import HLRFrameNamespace, HLRLazyNamespace, HLRSeriesNamespace

df = pd.DataFrame({"phone": ["+447700900123"]})
HLRFrameAccessor(df).validate("phone", default_region="GB", budget=10, max_age="30D")
HLRFrameAccessor(df).validate("phone", default_regoin="GB")  # E1
HLRFrameAccessor(df).estimate("phone", budget="x")  # E2
HLRSeriesAccessor(df["phone"]).validate(ambiguous="nationl")  # E3
pf = pl.DataFrame({"phone": ["+447700900123"]})
HLRFrameNamespace(pf).validate("phone", max_age=30)  # E4
HLRLazyNamespace(pf.lazy()).estimate("phone", refresh=True, prefix="hlr_")
HLRSeriesNamespace(pf["phone"]).validate(workers="8")  # E5
HLRDaskFrameAccessor(dd.from_pandas(df, npartitions=1)).validate("phone", budgett=5)  # E6
"""


@pytest.mark.slow  # mypy reads pandas-stubs, Polars and Dask cold: ~15-30 s
def test_mypy_checks_the_options_on_every_face(tmp_path):
    """The faces' classes are typed; ``df.hlr`` itself is attached at run time, so a checker
    sees what pandas-stubs says an unknown attribute is (see the README's "Types" section)."""
    api = pytest.importorskip("mypy.api")
    pytest.importorskip("polars")
    pytest.importorskip("dask.dataframe")
    snippet = tmp_path / "snippet.py"
    snippet.write_text(textwrap.dedent(SNIPPET))
    out, err, status = api.run([
        str(snippet), "--follow-imports=silent", "--no-error-summary", "--hide-error-context",
        "--cache-dir", str(tmp_path / ".mypy_cache"), "--config-file", "",
    ])
    lines = [line for line in out.splitlines() if ": error:" in line]
    wanted = {
        line_no + 1: mark
        for line_no, line in enumerate(snippet.read_text().splitlines())
        for mark in [line.rpartition("# ")[2]] if mark.startswith("E")
    }
    assert status == 1, out + err
    got = {int(line.split(":")[1]): line for line in lines}
    assert sorted(got) == sorted(wanted), out
    assert 'did you mean "default_region"' in got[min(wanted)]
    text = "\n".join(lines)
    assert 'Argument "budget"' in text and 'expected "int | None"' in text
    assert "'nationl'" in text and "max_age" in text and '"workers"' in text
    assert 'Unexpected keyword argument "budgett"' in text
