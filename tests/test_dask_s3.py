"""The Dask face with a team cache on object storage (``cache="s3://…"``), on the S3 server on
127.0.0.1 and a 2-process ``distributed.LocalCluster``: each number paid once (the sandbox's
ledger), a warm re-run sends nothing. Only the calling process opens the cache."""

from __future__ import annotations

import contextlib
from collections import Counter

import pandas as pd
import pytest

pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")
pytest.importorskip("boto3")

import dask
import dask.dataframe as dd

import pd_hlr.dask  # noqa: F401  (registers ddf.hlr)
from pd_hlr import HLRCache

from .test_cache import numbers

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.set_index"),
]


def _frame() -> dd.DataFrame:
    """Four partitions; every number recurs in two of them (and twice in one)."""
    nums = numbers(60)
    cells = nums[:40] + nums[20:60] + nums[:10] + nums[50:60] + ["not a number", None]
    pdf = pd.DataFrame({"phone": cells, "spend": range(len(cells))})
    return dd.from_pandas(pdf, npartitions=4, sort=False)


@pytest.mark.parametrize("scheduler", ["distributed", "sync"])
def test_dask_with_an_s3_cache_pays_once_per_number_then_nothing(
    scheduler, request, s3_url, sb, client_for
):
    if scheduler == "distributed":
        request.getfixturevalue("dask_client")  # the default scheduler while it lives
    ddf = _frame()
    opts = {"default_region": "GB", "retry_temporary": False}
    with dask.config.set(scheduler="sync") if scheduler == "sync" else contextlib.nullcontext():
        out = ddf.hlr.validate("phone", client=client_for(sb), cache=s3_url, **opts)
        assert Counter(sb.stats().charged.values()) == {1: 60}  # each number paid once
        assert set(sb.stats().charged) == set(numbers(60))
        got = out.compute()
        assert len(got) == len(ddf) and got.index.is_unique
        assert Counter(got["hlr_source"]) == Counter({"api": 100, "invalid": 1, "missing": 1})
        assert HLRCache(s3_url).stats()["entries"] == 60  # the answers are in the store
        sb.reset_stats()
        again = ddf.hlr.validate("phone", client=client_for(sb), cache=s3_url, **opts)
        assert not sb.stats().received and sb.stats().total_charged == 0
        warm = again.compute()
        assert Counter(warm["hlr_source"]) == Counter({"cache": 100, "invalid": 1, "missing": 1})
        same = ["hlr_source", "hlr_checked_at"]
        pd.testing.assert_frame_equal(
            got.drop(columns=same, errors="ignore"), warm.drop(columns=same, errors="ignore")
        )

