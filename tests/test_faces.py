"""The face suite (:mod:`tests.face_suite`), once per face: the pandas accessor, Dask, and
Polars' DataFrame and LazyFrame."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from pd_hlr import schema

from .face_suite import FaceSuite


class TestPandasFace(FaceSuite):
    frame_type = pd.DataFrame

    def make(self, columns: dict[str, list[Any]]) -> Any:
        return pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in columns.items()})

    def to_pandas(self, out: Any) -> pd.DataFrame:
        return out


class TestDaskFace(FaceSuite):
    def make(self, columns: dict[str, list[Any]]) -> Any:
        dd = pytest.importorskip("dask.dataframe")
        import pd_hlr.dask  # noqa: F401  (the .hlr accessor)

        self.frame_type = dd.DataFrame
        frame = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in columns.items()})
        return dd.from_pandas(frame, npartitions=2, sort=False)

    def to_pandas(self, out: Any) -> pd.DataFrame:
        return out.compute()

    def summary(self, out: Any, got: pd.DataFrame) -> pd.DataFrame:
        return got.hlr.summary()

    def check_result(self, out: Any, got: pd.DataFrame) -> None:
        assert got.dtypes.equals(out._meta.dtypes)  # meta is what the partitions compute to

    @pytest.fixture(autouse=True)
    def _sync_scheduler(self) -> Iterator[None]:
        dask = pytest.importorskip("dask")
        with dask.config.set(scheduler="sync"):
            yield


class _PolarsFace(FaceSuite):
    lazy = False

    def make(self, columns: dict[str, list[Any]]) -> Any:
        pl = pytest.importorskip("polars")
        import pd_hlr.polars  # noqa: F401  (the .hlr namespace)

        self.frame_type = pl.LazyFrame if self.lazy else pl.DataFrame
        overrides = {k: pl.Int64 if k in ("row", "id") else pl.String for k in columns}
        frame = pl.DataFrame(columns, schema_overrides=overrides)
        return frame.lazy() if self.lazy else frame

    def to_pandas(self, out: Any) -> pd.DataFrame:
        return (out.collect() if self.lazy else out).to_pandas()

    def check_result(self, out: Any, got: pd.DataFrame) -> None:
        pl = pytest.importorskip("polars")
        # the schema's kinds as Polars types (independent of pd_hlr.polars)
        kinds = {"string": pl.String, "bool": pl.Boolean, "int": pl.Int64,
                 "timestamp": pl.Datetime("us", "UTC")}
        got_schema = out.collect_schema()
        for f in (*schema.fields(False), *schema.fields(True)):
            if f.column in got_schema:
                assert got_schema[f.column] == kinds[f.kind], f.column


class TestPolarsDataFrameFace(_PolarsFace):
    lazy = False


class TestPolarsLazyFrameFace(_PolarsFace):
    lazy = True


@pytest.mark.slow
class TestDaskDistributedFace(TestDaskFace):
    """The Dask face on a cluster of worker processes (the partitions computed elsewhere)."""

    @pytest.fixture(autouse=True)
    def _sync_scheduler(self, dask_client: Any) -> Iterator[None]:
        yield

    # A bad option is refused before anything is computed: the scheduler plays no part.
    test_a_bad_option_is_the_settings_error = None  # type: ignore[assignment]
