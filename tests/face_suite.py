"""One suite of face tests, run against every face (as requests-cache's ``BaseCacheTest`` runs
against every backend): ``tests/test_faces.py`` subclasses :class:`FaceSuite` once per face.

A subclass says how to build its frame from columns of Python values, how to read a result
back as pandas, and what type its frames are; every case below then holds for it. The truth is
the sandbox's ledger (what was paid), the schema's column list, and the settings' own error for
a bad option, never the face's own code.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest

import pd_hlr
from pd_hlr import HLRCache, pipeline, schema
from pd_hlr.errors import ColumnConflictError
from pd_hlr.settings import LookupOptions, ValidateSettings

GB = [f"+447400123{i:03d}" for i in range(40)]
US = "+12015550123"
JUNK = ["not a number", "n/a", "12345", "*123#", "call me"]
# One number in several shapes: every shape must map to one lookup.
SHAPES = [
    lambda n: n,
    lambda n: f"{n[:3]} {n[3:7]} {n[7:]}",
    lambda n: f"00{n[1:3]}-{n[3:7]}-{n[7:]}",
    lambda n: f"0{n[3:7]} {n[7:]}",  # GB national format
]
DISTINCT = {*GB, US}
# Summary answers that are neither live, dead nor out of network are "temporary" and looked up
# again by default; the cases that count requests serve them from the cache like any other.
GB_OPTS: dict[str, Any] = {"default_region": "GB", "retry_temporary": False}

#: A value every option refuses (``client`` and ``cache`` are objects, not options).
BAD_VALUES: dict[str, Any] = {
    "detailed": "yes",
    "roaming": 1,
    "route": "premium",
    "msisdn": "no",
    "default_region": "XX",
    "strict": "yes",
    "only_mobile": 1,
    "ambiguous": "guess",
    "region_column": ["country"],
    "workers": 0,
    "rate_limit": -1,
    "progress": "no",
    "max_age": 30,
    "refresh": 1,
    "retry_temporary": 3600,
    "budget": -1,
    "price": "abc",
    "prefix": 3,
}


def _cells() -> list[Any]:
    cells: list[Any] = [SHAPES[i % len(SHAPES)](GB[(i * 7) % len(GB)]) for i in range(120)]
    return [*cells, "+1 201 555 0123", None, "", "  ", *JUNK]


def _results(detailed: bool = False, prefix: str = "") -> list[str]:
    return [prefix + c for c in schema.output_columns(detailed)]


def settings_error(name: str, value: Any) -> tuple[type[Exception], str]:
    """The exception type and message the option table gives for ``name=value``."""
    try:
        ValidateSettings.from_kwargs(**{name: value})
    except (TypeError, ValueError) as exc:
        return type(exc), str(exc)
    raise AssertionError(f"{name}={value!r} is accepted")


class FaceSuite:
    """The cases every face passes. Subclasses set :attr:`frame_type` and build frames."""

    #: The type of the face's frames (a result and a stopped run's ``partial`` are of it).
    frame_type: ClassVar[type]

    # -- what a face says about itself ---------------------------------------------------------
    def make(self, columns: dict[str, list[Any]]) -> Any:
        """The face's frame holding ``columns`` (the ``phone`` column as text)."""
        raise NotImplementedError

    def to_pandas(self, out: Any) -> pd.DataFrame:
        """A result of the face as a pandas frame (computed, collected)."""
        raise NotImplementedError

    def summary(self, out: Any, got: pd.DataFrame) -> pd.DataFrame:
        """The result's ``summary()`` (a Dask face summarises the computed frame)."""
        return out.hlr.summary()

    def check_result(self, out: Any, got: pd.DataFrame) -> None:
        """Face-specific checks of a result ``out`` read back as ``got`` (none by default)."""

    # -- helpers -------------------------------------------------------------------------------
    def frame(self, **extra: list[Any]) -> Any:
        cells = _cells()
        return self.make({"row": list(range(len(cells))), "phone": cells, **extra})

    # -- a run that stops part-way ---------------------------------------------------------------
    def test_402_part_way_keeps_paid_answers_and_rerun_pays_only_the_rest(
        self, make_sandbox: Any, client_for: Any, tmp_path: Path
    ) -> None:
        server = make_sandbox(balance=10)
        obj, cache = self.frame(), tmp_path / "c"
        rows = len(_cells())
        with pytest.raises(pd_hlr.InsufficientBalanceError) as info:
            obj.hlr.validate("phone", **GB_OPTS, client=client_for(server, workers=4), cache=cache)
        exc = info.value
        paid = {n for n, c in server.stats().charged.items() if c}
        assert len(paid) == 10 and exc.looked_up == 10 and exc.remaining == len(DISTINCT) - 10
        assert "10 numbers were looked up and saved to the cache" in " ".join(exc.__notes__)
        api = pipeline.api_namespace(client_for(server))
        assert set(HLRCache(cache).get(sorted(paid), LookupOptions().key(), api).index) == paid
        assert isinstance(exc.partial, self.frame_type)
        assert exc.partial.hlr.report() == exc.report
        assert (exc.report.looked_up, exc.report.stopped) == (10, "InsufficientBalanceError")
        partial = self.to_pandas(exc.partial)
        assert list(partial.columns) == ["row", "phone", *_results()]
        assert len(partial) == rows
        assert set(partial.loc[partial["hlr_source"] == "api", "hlr_number"]) == paid

        server.configure(balance=None)
        client = client_for(server, workers=4)
        out = obj.hlr.validate("phone", **GB_OPTS, client=client, cache=cache)
        assert server.stats().charged == dict.fromkeys(DISTINCT, 1)  # nothing paid twice
        got = self.to_pandas(out)
        assert set(got.loc[got["hlr_source"] == "cache", "hlr_number"]) == paid
        assert set(got.loc[got["hlr_source"] == "api", "hlr_number"]) == DISTINCT - paid
        assert out.hlr.report().looked_up == len(DISTINCT) - 10

    def test_402_without_a_cache_says_the_answers_were_not_kept(
        self, make_sandbox: Any, client_for: Any
    ) -> None:
        server = make_sandbox(balance=5)
        numbers = GB[:20]
        obj = self.make({"row": list(range(20)), "phone": numbers})
        with pytest.raises(pd_hlr.InsufficientBalanceError) as info:
            obj.hlr.validate("phone", client=client_for(server, workers=4), cache=False)
        exc = info.value
        charged = {n for n, c in server.stats().charged.items() if c}
        assert len(charged) == 5
        # no cache: a re-run looks every number up again, and the error says so
        assert exc.looked_up == 5 and exc.remaining == 20
        assert "5 numbers were looked up but not kept (no cache)" in " ".join(exc.__notes__)
        assert exc.report.looked_up == 5 and exc.report.stopped == "InsufficientBalanceError"
        assert exc.report.not_looked_up == 15 and exc.report.sandbox
        assert exc.partial.hlr.report() == exc.report
        partial = self.to_pandas(exc.partial)
        assert list(partial.columns) == ["row", "phone", *_results()]
        assert set(partial.loc[partial["hlr_source"] == "api", "hlr_number"]) == charged

    # -- the caller's columns are never overwritten ----------------------------------------------
    def test_columns_are_never_overwritten(self, sb: Any, client_for: Any) -> None:
        client = client_for(sb)
        obj = self.frame(status=["theirs"] * len(_cells()))
        with pytest.raises(ColumnConflictError, match="prefix") as info:
            obj.hlr.validate("phone", **GB_OPTS, client=client, cache=False)
        assert info.value.columns == ["status"]
        to = self.make({"row": [0], "to": [GB[0]]})
        with pytest.raises(ColumnConflictError, match="the phone column 'to'"):
            to.hlr.validate("to", client=client, cache=False)
        assert sb.stats().requests == 0
        out = obj.hlr.validate("phone", **GB_OPTS, client=client, cache=False, prefix="r_")
        got = self.to_pandas(out)
        assert list(got.columns) == ["row", "phone", "status", *_results(prefix="r_")]
        assert (got["status"] == "theirs").all()

    def test_a_rerun_replaces_its_own_columns_with_a_warning(
        self, sb: Any, client_for: Any
    ) -> None:
        client = client_for(sb)
        obj = self.make({"row": [0, 1], "phone": [GB[0], "junk"]})
        out = obj.hlr.validate("phone", client=client, cache=False, prefix="r_")
        with pytest.warns(UserWarning, match="replacing existing result columns") as caught:
            again = out.hlr.validate("phone", client=client, cache=False, prefix="r_")
        assert caught[0].filename == __file__  # the warning points at the caller's line
        assert list(self.to_pandas(again).columns) == list(self.to_pandas(out).columns)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a first run under a prefix warns of nothing
            pre = obj.hlr.validate("phone", client=client, cache=False, prefix="hlr.")
        assert list(self.to_pandas(pre).columns) == ["row", "phone", *_results(prefix="hlr.")]

    # -- empty, all-null, junk-only: nothing sent, no client made ------------------------------
    @pytest.mark.parametrize("detailed", [False, True], ids=["summary", "detailed"])
    @pytest.mark.parametrize(
        ("cells", "sources"),
        [
            ([], set()),
            ([None, None, None], {"missing"}),
            ([*JUNK, None, "", " "], {"missing", "invalid"}),
        ],
        ids=["empty", "all-null", "junk-only"],
    )
    def test_empty_null_and_junk_need_no_client(
        self, tmp_path: Path, cells: list[Any], sources: set[str], detailed: bool
    ) -> None:
        obj = self.make({"id": list(range(len(cells))), "phone": cells})
        out = obj.hlr.validate(  # no client and no token: none is needed
            "phone", default_region="GB", detailed=detailed, cache=tmp_path / "c"
        )
        got = self.to_pandas(out)
        assert list(got.columns) == ["id", "phone", *_results(detailed)]
        assert len(got) == len(cells) and set(got["hlr_source"]) == sources
        assert got["hlr_number"].isna().all()
        report = out.hlr.report()
        assert (report.rows, report.looked_up, report.requests) == (len(cells), 0, 0)
        summary = self.summary(out, got)
        assert summary.query("section == 'source'")["rows"].sum() == len(cells)
        self.check_result(out, got)

    # -- a bad option: refused as the option table refuses it, before anything is sent ---------
    @pytest.mark.parametrize("name", sorted(BAD_VALUES))
    @pytest.mark.parametrize("method", ["validate", "estimate"])
    def test_a_bad_option_is_the_settings_error(
        self, sb: Any, client_for: Any, name: str, method: str
    ) -> None:
        error, message = settings_error(name, BAD_VALUES[name])
        obj = self.make({"row": [0], "phone": [GB[0]]})
        with pytest.raises(error) as info:
            getattr(obj.hlr, method)(
                "phone", client=client_for(sb), cache=False, **{name: BAD_VALUES[name]}
            )
        assert str(info.value) == message
        assert sb.stats().requests == 0

