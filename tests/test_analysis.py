"""After the lookups: row status, summary, filters, plot, parquet export, estimate and budget.

Everything runs against the real sandbox over HTTP (fixtures in ``conftest.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

import pd_hlr
from pd_hlr import HLRClient, analysis, sandbox, schema
from pd_hlr.errors import BudgetExceededError

from .conftest import TOKEN


def _kind(phone: str) -> str:
    a = sandbox.answer(phone)
    if a["live"]:
        return "live"
    if a["dead"]:
        return "dead"
    if a["outOfNetwork"]:
        return "out_of_network"
    return "temporary"


def _pick_numbers() -> dict[str, list[str]]:
    """GB mobiles whose sandbox answers cover every outcome (the sandbox is deterministic)."""
    found: dict[str, list[str]] = {"live": [], "dead": [], "out_of_network": [], "temporary": []}
    for i in range(100_000):
        phone = f"+4474001{i:05d}"
        kind = _kind(phone)
        if len(found[kind]) < 3:
            found[kind].append(phone)
        if all(len(v) == 3 for v in found.values()):
            return found
    raise AssertionError("the sandbox never gave some outcome")  # pragma: no cover


PICKED = _pick_numbers()


def _contacts() -> pd.DataFrame:
    live, dead, oon, temp = (PICKED[k] for k in ("live", "dead", "out_of_network", "temporary"))
    phones: list[Any] = [
        live[0],
        live[0][:3] + " " + live[0][3:7] + " " + live[0][7:],  # same number, another format
        "0" + live[1][3:],  # national GB
        live[2],
        dead[0],
        dead[1],
        "00" + dead[2][1:],
        oon[0],
        oon[1],
        oon[2],
        temp[0],
        temp[1],
        "+44 20 7946 0958",  # a London landline
        "+1 201 555 0123",
        "+44 1000 000000",  # possible, not valid: sent, answered dead
        "call me",
        "07400",
        "+999 1234 5678",
        None,
        "",
        "n/a",
    ]
    return pd.DataFrame(
        {"name": [f"p{i}" for i in range(len(phones))], "phone": phones},
        index=pd.RangeIndex(100, 100 + len(phones)),
    )


@pytest.fixture(scope="module")
def client(sandbox_server: Any) -> Any:
    with HLRClient(token=TOKEN, base_url=sandbox_server.url) as c:
        yield c


@pytest.fixture(scope="module")
def out_summary(client: Any) -> pd.DataFrame:
    return _contacts().hlr.validate(
        "phone", default_region="GB", client=client, cache=False, progress=False
    )


@pytest.fixture(scope="module")
def out_detailed(client: Any) -> pd.DataFrame:
    return _contacts().hlr.validate(
        "phone",
        detailed=True,
        route="detailed",
        default_region="GB",
        client=client,
        cache=False,
        progress=False,
    )


@pytest.fixture(params=["summary", "detailed"])
def out(request: pytest.FixtureRequest) -> pd.DataFrame:
    return request.getfixturevalue(f"out_{request.param}")


def _section(table: pd.DataFrame, name: str) -> pd.DataFrame:
    return table[table["section"] == name].set_index("value")


def _answered(frame: pd.DataFrame) -> pd.Series:
    return frame["hlr_source"].isin(["api", "cache"]).astype(bool)


# --- row status and summary ---------------------------------------------------------------------
def test_summary_shape_and_dtypes(out: pd.DataFrame) -> None:
    table = out.hlr.summary()
    assert list(table.columns) == ["section", "value", "rows", "share"]
    assert str(table["rows"].dtype) == "int64"
    assert (
        table["section"].isin(["status", "network", "country", "ported", "roaming", "source"]).all()
    )
    assert not table["value"].str.strip().eq("").any(), "no blank labels (e.g. empty network)"


def test_status_rows_sum_to_len_and_match_row_status(out: pd.DataFrame) -> None:
    table = out.hlr.summary()
    status = _section(table, "status")
    assert status["rows"].sum() == len(out)
    assert status["share"].sum() == pytest.approx(1.0)
    counts = out.hlr.status().value_counts()
    for value, row in status.iterrows():
        assert counts[value] == row["rows"]
        assert row["share"] == pytest.approx(row["rows"] / len(out))
    source = _section(table, "source")
    assert source["rows"].sum() == len(out)
    assert dict(source["rows"]) == {
        k: int(v) for k, v in out["hlr_source"].value_counts().items() if v
    }


def test_local_statuses(out: pd.DataFrame) -> None:
    status = out.hlr.status()
    assert status.name == "hlr_status"
    assert list(status.cat.categories) == list(analysis.STATUS_ORDER)
    assert status.index.equals(out.index)
    assert (status[out["hlr_source"] == "invalid"] == "invalid").all()
    assert (status[out["hlr_source"] == "missing"] == "missing").all()
    assert status.value_counts()["invalid"] == 3
    assert status.value_counts()["missing"] == 3


def test_live_rule_detailed_is_status_group_delivered(out_detailed: pd.DataFrame) -> None:
    status = out_detailed.hlr.status()
    answered = _answered(out_detailed)
    delivered = out_detailed["status_group_name"].eq("DELIVERED").fillna(False).astype(bool)
    assert ((status == "live") == (answered & delivered)).all()
    permanent = out_detailed["error_permanent"].eq(True).fillna(False).astype(bool)
    temporary = out_detailed["error_permanent"].eq(False).fillna(False).astype(bool)
    assert ((status == "dead") == (answered & ~delivered & permanent)).all()
    assert ((status == "unreachable") == (answered & ~delivered & temporary)).all()
    # The picked numbers land where the sandbox says they should.
    by_number = dict(zip(out_detailed["hlr_number"], status))
    assert all(by_number[p] == "live" for p in PICKED["live"])
    assert all(by_number[p] == "dead" for p in PICKED["dead"])
    assert all(by_number[p] == "unreachable" for p in PICKED["temporary"][:2])
    assert by_number["+441000000000"] == "dead"  # invalid per libphonenumber, sent, dead


def test_live_rule_summary_uses_the_booleans(out_summary: pd.DataFrame) -> None:
    status = out_summary.hlr.status()
    answered = _answered(out_summary)
    live = out_summary["live"].eq(True).fillna(False).astype(bool)
    dead = out_summary["dead"].eq(True).fillna(False).astype(bool)
    oon = out_summary["out_of_network"].eq(True).fillna(False).astype(bool)
    assert ((status == "live") == (answered & live)).all()
    assert ((status == "dead") == (answered & dead & ~live)).all()
    assert ((status == "out_of_network") == (answered & oon & ~live & ~dead)).all()
    assert ((status == "unknown") == (answered & ~live & ~dead & ~oon)).all()
    by_number = dict(zip(out_summary["hlr_number"], status))
    for kind in ("live", "dead", "out_of_network"):
        assert all(by_number[p] == kind for p in PICKED[kind])
    assert all(by_number[p] == "unknown" for p in PICKED["temporary"][:2])


def test_network_and_country_sections(out: pd.DataFrame) -> None:
    table = out.hlr.summary()
    answered = out[_answered(out).to_numpy()]
    networks = _section(table, "network")
    assert networks["rows"].sum() == len(answered)  # every answered row, "(unknown)" included
    assert networks["share"].sum() == pytest.approx(1.0)
    expected = analysis.current_network(answered).value_counts()
    for name, n in expected.items():
        assert networks.loc[name, "rows"] == n
    assert networks.loc[analysis.UNKNOWN_NETWORK, "rows"] == (len(answered) - int(expected.sum()))
    countries = _section(table, "country")
    assert dict(countries["rows"]) == {
        k: int(v) for k, v in answered["hlr_region"].value_counts().items()
    }


def test_summary_top_groups_the_rest(out_detailed: pd.DataFrame) -> None:
    networks = _section(out_detailed.hlr.summary(top=1), "network")
    assert len(networks) == 2 and networks.index[-1] == "(other)"
    assert networks["rows"].sum() == _answered(out_detailed).sum()


def test_ported_and_roaming_shares(client: Any) -> None:
    frame = pd.DataFrame({"phone": [p for k in ("live", "dead") for p in PICKED[k]]})
    out = frame.hlr.validate(
        "phone",
        detailed=True,
        route="detailed",
        roaming=True,
        client=client,
        cache=False,
        progress=False,
    )
    table = out.hlr.summary()
    n = int(_answered(out).sum())
    for flag in ("ported", "roaming"):
        row = _section(table, flag).loc["true"]
        assert row["rows"] == int(out[flag].eq(True).sum())
        assert row["share"] == pytest.approx(row["rows"] / n)
    # summary mode has neither column: no such section
    plain = frame.hlr.validate("phone", client=client, cache=False, progress=False)
    assert not plain.hlr.summary()["section"].isin(["ported", "roaming"]).any()


def test_summary_with_prefix_and_without_results(client: Any) -> None:
    out = _contacts().hlr.validate(
        "phone", default_region="GB", client=client, cache=False, progress=False, prefix="x_"
    )
    status = _section(out.hlr.summary(), "status")
    assert status["rows"].sum() == len(out)
    assert len(out.hlr.live()) == int((out.hlr.status() == "live").sum())
    with pytest.raises(AttributeError, match="validate"):
        _contacts().hlr.summary()


def test_summary_of_junk_only(client: Any) -> None:
    out = pd.DataFrame({"phone": ["call me", None, ""]}).hlr.validate(
        "phone", client=client, cache=False, progress=False
    )
    table = out.hlr.summary()
    assert set(table["section"]) == {"status", "source"}
    assert _section(table, "status")["rows"].sum() == 3


# --- filters ------------------------------------------------------------------------------------
def test_filters(out: pd.DataFrame) -> None:
    status = out.hlr.status()
    parts = {"live": out.hlr.live(), "dead": out.hlr.dead(), "invalid": out.hlr.invalid()}
    for name, part in parts.items():
        assert list(part.columns) == list(out.columns)
        assert part.index.equals(out.index[(status == name).to_numpy()])
        pd.testing.assert_frame_equal(part, out.loc[part.index])
        assert len(part) > 0
    assert (parts["invalid"]["hlr_source"] == "invalid").all()
    assert parts["invalid"]["hlr_error"].notna().all()
    assert set(PICKED["live"]) <= set(parts["live"]["hlr_number"])
    chained = parts["live"].hlr.summary()  # a filtered frame still works with the accessor
    assert _section(chained, "status").loc["live", "share"] == 1.0


def test_filter_status_rejects_unknown_names(out_summary: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="unknown status"):
        analysis.filter_status(out_summary, "alive")
    both = analysis.filter_status(out_summary, "live", "dead")
    assert len(both) == len(out_summary.hlr.live()) + len(out_summary.hlr.dead())


# --- plot ---------------------------------------------------------------------------------------
def test_plot_returns_a_figure_with_two_axes(out: pd.DataFrame) -> None:
    from matplotlib.figure import Figure

    fig = out.hlr.plot()
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2
    status_ax, network_ax = fig.axes
    assert f"{len(out):,} rows" in status_ax.get_title()
    labels = [t.get_text() for t in status_ax.get_yticklabels()]
    assert set(labels) == set(out.hlr.status().astype(str))
    network_labels = [t.get_text() for t in network_ax.get_yticklabels()]
    assert network_labels and all(s.strip() for s in network_labels), "no blank network bar"


def test_plot_of_junk_only_and_no_backend_switch(client: Any) -> None:
    import matplotlib

    backend = matplotlib.get_backend()
    frame = pd.DataFrame({"phone": ["call me", None]}).hlr.validate(
        "phone", client=client, cache=False, progress=False
    )
    fig = frame.hlr.plot(top=3)
    assert len(fig.axes) == 2
    assert matplotlib.get_backend() == backend


def test_plot_without_matplotlib_names_the_extra(tmp_path: Path) -> None:
    out = pd.DataFrame({"phone": ["x"], "hlr_source": pd.array(["invalid"], dtype="string")})
    path = tmp_path / "frame.pkl"
    out.to_pickle(path)
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["matplotlib"] = None  # import matplotlib → ImportError
        sys.modules["matplotlib.pyplot"] = None
        import pandas as pd
        import pd_hlr
        out = pd.read_pickle({str(path)!r})
        try:
            out.hlr.plot()
        except ImportError as exc:
            print("IMPORTERROR:", exc)
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "IMPORTERROR:" in res.stdout
    assert "pd-hlr[plot]" in res.stdout


# --- parquet ------------------------------------------------------------------------------------
def _all_na_columns(frame: pd.DataFrame, detailed: bool) -> list[str]:
    return [c for c in schema.output_columns(detailed) if frame[c].isna().all()]


@pytest.mark.parametrize("detailed", [False, True])
def test_to_parquet_round_trips_every_result_column(
    detailed: bool, out_summary: pd.DataFrame, out_detailed: pd.DataFrame, tmp_path: Path
) -> None:
    out = out_detailed if detailed else out_summary
    assert _all_na_columns(out, detailed), "the test must cover all-NA columns"
    path = tmp_path / "out.parquet"
    out.to_parquet(path)
    back = pd.read_parquet(path)
    for col in schema.output_columns(detailed):
        assert back[col].dtype == out[col].dtype, col
        assert back[col].dtype == schema.pandas_dtypes(detailed)[col], col
    pd.testing.assert_frame_equal(back, out)


@pytest.mark.parametrize("detailed", [False, True])
def test_to_parquet_of_an_all_na_frame(detailed: bool, client: Any, tmp_path: Path) -> None:
    out = pd.DataFrame({"phone": ["call me", None, "07400"]}).hlr.validate(
        "phone", detailed=detailed, client=client, cache=False, progress=False
    )
    assert set(_all_na_columns(out, detailed)) >= {
        c
        for c in schema.output_columns(detailed)
        if c not in ("hlr_source", "hlr_error", "hlr_note", "hlr_number_type")
    }
    for writer in (out.to_parquet, out.hlr.to_parquet):
        path = tmp_path / f"{writer.__qualname__}.parquet"
        writer(path)
        back = pd.read_parquet(path)
        pd.testing.assert_frame_equal(back, out)
        assert back.dtypes.equals(out.dtypes)


def test_hlr_to_parquet_writes_options_and_run_time(
    out_detailed: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "enriched.parquet"
    out_detailed.hlr.to_parquet(path, metadata={"input": "contacts.csv"})
    meta = pq.read_schema(path).metadata
    info = json.loads(meta[b"pd_hlr"])
    assert info["column"] == "phone"
    assert info["detailed"] is True and info["route"] == "detailed"
    assert info["default_region"] == "GB"
    assert info["roaming"] is False and info["msisdn"] is True
    assert info["pd_hlr_version"] == pd_hlr.__version__
    assert info["input"] == "contacts.csv"
    run_at = pd.Timestamp(info["run_at"])
    written_at = pd.Timestamp(info["written_at"])
    assert run_at.tzinfo is not None and run_at <= written_at
    back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, out_detailed)
    assert back.attrs[analysis.ATTRS_KEY]["run_at"] == info["run_at"]
    assert back.hlr.summary().equals(out_detailed.hlr.summary())
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file left behind"


def test_hlr_to_parquet_without_run_info(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1, 2]})
    path = tmp_path / "plain.parquet"
    frame.hlr.to_parquet(path)
    info = json.loads(pq.read_schema(path).metadata[b"pd_hlr"])
    assert set(info) == {"written_at", "pd_hlr_version"}
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame)


# --- estimate and budget ------------------------------------------------------------------------
def test_estimate_counts_and_sends_nothing(sb: Any, client_for: Any, tmp_path: Path) -> None:
    client = client_for(sb)
    frame = _contacts()
    est = frame.hlr.estimate("phone", default_region="GB", client=client, cache=tmp_path)
    assert sb.stats().requests == 0
    assert est.rows == len(frame)
    assert est.missing == 3 and est.invalid == 3 and est.skipped == 0
    distinct = 14  # 15 phones to send, one of them twice
    assert est.distinct == distinct
    assert est.cached == 0 and est.to_look_up == distinct
    assert est.price == Decimal("0.006")
    assert est.cost == Decimal("0.006") * distinct
    assert est.to_dict()["cost"] == est.cost
    assert f"{distinct:,} to look up" in str(est)

    pricey = frame.hlr.estimate(
        "phone", default_region="GB", client=client, cache=tmp_path, price="0.01"
    )
    assert pricey.cost == Decimal("0.01") * distinct

    frame.hlr.validate(
        "phone",
        default_region="GB",
        client=client,
        cache=tmp_path,
        progress=False,
        retry_temporary=False,
    )
    sent = sb.stats().requests
    assert sent == distinct
    again = frame.hlr.estimate(
        "phone", default_region="GB", client=client, cache=tmp_path, retry_temporary=False
    )
    assert sb.stats().requests == sent
    assert again.cached == distinct and again.to_look_up == 0 and again.cost == 0
    # By default temporary outcomes (absent subscriber, overload, …) are looked up again.
    retry = frame.hlr.estimate("phone", default_region="GB", client=client, cache=tmp_path)
    assert retry.to_look_up == 2 and retry.cached == distinct - 2
    # Different options are a different cache key: nothing cached for detailed mode.
    detailed = frame.hlr.estimate(
        "phone", default_region="GB", detailed=True, client=client, cache=tmp_path
    )
    assert detailed.cached == 0 and detailed.to_look_up == distinct
    only_mobile = frame.hlr.estimate(
        "phone",
        default_region="GB",
        only_mobile=True,
        client=client,
        cache=tmp_path,
        progress=True,
    )
    assert only_mobile.skipped >= 1  # the London landline
    assert sb.stats().requests == sent


def test_series_estimate(sb: Any, client_for: Any) -> None:
    est = _contacts()["phone"].hlr.estimate(default_region="GB", client=client_for(sb), cache=False)
    assert est.distinct == 14 and est.cached == 0
    assert sb.stats().requests == 0


def test_budget_refuses_before_sending(sb: Any, client_for: Any, tmp_path: Path) -> None:
    client = client_for(sb)
    frame = _contacts()
    with pytest.raises(BudgetExceededError, match="budget") as info:
        frame.hlr.validate(
            "phone",
            default_region="GB",
            client=client,
            cache=tmp_path,
            budget=13,
            progress=False,
        )
    assert sb.stats().requests == 0
    est = info.value.estimate
    assert est.to_look_up == 14 and est.distinct == 14 and est.cached == 0
    assert est.rows == len(frame) and est.missing == 3 and est.invalid == 3
    assert est.cost == Decimal("0.006") * 14

    out = frame.hlr.validate(
        "phone",
        default_region="GB",
        client=client,
        cache=tmp_path,
        budget=14,
        progress=False,
        retry_temporary=False,
    )
    assert sb.stats().requests == 14
    # Everything cached now: budget=0 is enough and nothing more is sent.
    again = frame.hlr.validate(
        "phone",
        default_region="GB",
        client=client,
        cache=tmp_path,
        budget=0,
        progress=False,
        retry_temporary=False,
    )
    assert sb.stats().requests == 14
    assert (again["hlr_source"] == "cache").sum() == (out["hlr_source"] == "api").sum()
