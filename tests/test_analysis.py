"""After the lookups: row status, summary, display, filters, plot and parquet export.

Rule and counting tests pin hand-built frames whose counts are known; the rest run against the
real sandbox over HTTP (fixtures in ``conftest.py``), with libphonenumber as the independent
truth for network countries.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import phonenumbers
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pd_hlr
from pd_hlr import HLRClient, analysis, sandbox, schema

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
    assert isinstance(table, analysis.Summary) and isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["section", "value", "rows", "of", "share"]
    assert [str(table[c].dtype) for c in ("rows", "of", "share")] == ["int64", "int64", "float64"]
    assert (
        table["section"].isin(["status", "network", "country", "ported", "roaming", "source"]).all()
    )
    assert not table["value"].str.strip().eq("").any(), "no blank labels (e.g. empty network)"
    assert (table["share"] == table["rows"] / table["of"]).all()


def test_each_section_has_one_stated_denominator(out: pd.DataFrame) -> None:
    table = out.hlr.summary()
    n, answered = len(out), int(_answered(out).sum())
    assert 0 < answered < n
    expected = {"status": n, "source": n, "network": answered, "country": answered}
    expected.update({flag: answered for flag in ("ported", "roaming") if flag in out.columns})
    for section, of in table.groupby("section")["of"]:
        assert set(of) == {expected[section]}, section
    for name in ("status", "source", "network", "country"):  # each section covers its base
        assert _section(table, name)["rows"].sum() == expected[name]
    text = str(table)
    assert f"status: share of all {n:,} rows" in text
    assert f"source: share of all {n:,} rows" in text
    assert f"network: share of the {answered:,} answered rows" in text
    assert f"country: share of the {answered:,} answered rows" in text
    assert f"{n:,} rows, {answered:,} answered" in text.splitlines()[0]
    page = table._repr_html_()
    assert f"share of all {n:,} rows" in page and f"share of the {answered:,} answered rows" in page


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


def _truth_network(row: pd.Series) -> str:
    """A row's network label from its raw columns and libphonenumber (not analysis.py)."""
    if "current_network" in row.index:
        name = row["current_network"]
    else:
        ported = row["ported"] is True and not pd.isna(row["ported_network_name"])
        name = row["ported_network_name" if ported else "original_network_name"]
    if pd.isna(name) or not str(name).strip():
        return analysis.UNKNOWN
    number = phonenumbers.parse(row["hlr_number"])
    region = phonenumbers.region_code_for_number(number)
    region = region or phonenumbers.region_code_for_country_code(number.country_code)
    return f"{name} ({region})"


def test_network_and_country_sections(out: pd.DataFrame) -> None:
    table = out.hlr.summary(top=1000)
    answered = out[_answered(out).to_numpy()]
    truth = answered.apply(_truth_network, axis=1).value_counts()
    networks = _section(table, "network")
    assert dict(networks["rows"]) == dict(truth)
    assert networks.index[-1] == analysis.UNKNOWN  # answered rows without a network name
    assert all(re.fullmatch(r".+ \([A-Z]{2}\)", v) for v in networks.index[:-1])
    assert networks["share"].sum() == pytest.approx(1.0)
    countries = _section(table, "country")
    regions = answered["hlr_region"].fillna(analysis.UNKNOWN).value_counts()
    assert dict(countries["rows"]) == dict(regions)
    assert countries.index[-1] == analysis.UNKNOWN  # "+44 1000 000000": no region, sent
    assert countries["rows"].sum() == len(answered)


def test_summary_top_groups_the_rest(out_detailed: pd.DataFrame) -> None:
    networks = _section(out_detailed.hlr.summary(top=1), "network")
    assert list(networks.index[1:]) == [analysis.OTHER, analysis.UNKNOWN]
    assert networks["rows"].sum() == _answered(out_detailed).sum()
    everything = _section(out_detailed.hlr.summary(top=1000), "network")
    assert networks["rows"].iloc[0] == everything["rows"].iloc[0]
    assert networks.loc[analysis.OTHER, "rows"] == everything["rows"].iloc[1:-1].sum()


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


# --- hand-built frames: every count known in advance ----------------------------------------
def _frame(rows: list[dict[str, Any]], detailed: bool = False) -> pd.DataFrame:
    """A frame with the full result schema of a mode, the given cells filled in."""
    frame = schema.empty_frame(detailed, index=pd.RangeIndex(len(rows)))
    for col in dict.fromkeys(k for row in rows for k in row):
        frame[col] = pd.array([row.get(col) for row in rows], dtype=frame[col].dtype)
    return frame


def _ans(network: str | None, region: str | None, flag: str | None, source: str = "api") -> dict:
    row: dict[str, Any] = {"hlr_source": source, "current_network": network, "hlr_region": region}
    row.update({f: f == flag for f in ("live", "dead", "out_of_network")})
    return row


#: Summary mode, ten rows: five answered (two T-Mobiles in two countries, a dead number without
#: a network name, an out-of-network and a status-"Unknown" Vodafone), five never answered.
HAND = [
    _ans("T-Mobile", "DE", "live"),
    _ans("T-Mobile", "NL", "live"),
    _ans("", "DE", "dead", source="cache"),
    _ans("Vodafone", "DE", "out_of_network"),
    _ans("Vodafone", "DE", None),
    {"hlr_source": "invalid"},
    {"hlr_source": "ambiguous"},
    {"hlr_source": "missing"},
    {"hlr_source": "error", "hlr_region": "GB"},
    {"hlr_source": "skipped", "hlr_region": "GB"},
]


def _rows(table: pd.DataFrame) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in table.drop(columns="share").itertuples(index=False)]


def test_summary_of_a_hand_built_frame_pins_every_count() -> None:
    table = _frame(HAND).hlr.summary()
    assert _rows(table) == [
        ("status", "live", 2, 10),
        ("status", "dead", 1, 10),
        ("status", "out_of_network", 1, 10),
        ("status", "unknown", 1, 10),
        ("status", "invalid", 1, 10),
        ("status", "ambiguous", 1, 10),
        ("status", "missing", 1, 10),
        ("status", "skipped", 1, 10),
        ("status", "error", 1, 10),
        ("network", "Vodafone (DE)", 2, 5),
        ("network", "T-Mobile (DE)", 1, 5),
        ("network", "T-Mobile (NL)", 1, 5),
        ("network", "(unknown)", 1, 5),
        ("country", "DE", 4, 5),
        ("country", "NL", 1, 5),
        ("source", "api", 4, 10),
        ("source", "cache", 1, 10),
        ("source", "invalid", 1, 10),
        ("source", "ambiguous", 1, 10),
        ("source", "missing", 1, 10),
        ("source", "skipped", 1, 10),
        ("source", "error", 1, 10),
    ]
    assert table["share"].round(6).tolist()[:2] == [0.2, 0.1]
    assert _section(table, "network")["share"].tolist() == [0.4, 0.2, 0.2, 0.2]


def test_summary_reads_as_percentages_with_its_denominators() -> None:
    table = _frame(HAND).hlr.summary()
    assert (
        str(table)
        == repr(table)
        == textwrap.dedent(
            """\
        HLR summary: 10 rows, 5 answered (from the API or the cache)
        status: share of all 10 rows
          live                   2   20.0 %
          dead                   1   10.0 %
          out_of_network         1   10.0 %
          unknown                1   10.0 %
          invalid                1   10.0 %
          ambiguous              1   10.0 %
          missing                1   10.0 %
          skipped                1   10.0 %
          error                  1   10.0 %
        network: share of the 5 answered rows
          Vodafone (DE)          2   40.0 %
          T-Mobile (DE)          1   20.0 %
          T-Mobile (NL)          1   20.0 %
          (unknown)              1   20.0 %
        country: share of the 5 answered rows
          DE                     4   80.0 %
          NL                     1   20.0 %
        source: share of all 10 rows
          api                    4   40.0 %
          cache                  1   10.0 %
          invalid                1   10.0 %
          ambiguous              1   10.0 %
          missing                1   10.0 %
          skipped                1   10.0 %
          error                  1   10.0 %"""
        )
    )
    page = table._repr_html_()
    assert page.count("<tr>") == 2 + 4 + len(table)  # title, header, 4 sections, the rows
    assert '<td style="text-align:right">40.0 %</td>' in page
    assert "share of the 5 answered rows" in page and "0.4" not in page
    plain = table.to_frame()
    assert type(plain) is pd.DataFrame and plain.equals(pd.DataFrame(table))
    derived = table[table["section"] == "network"]  # anything derived is a plain DataFrame
    assert type(derived) is pd.DataFrame and "share" in repr(derived)


def test_html_escapes_network_names() -> None:
    frame = _frame([_ans("AT&T <Mobility>", "US", "live")])
    page = frame.hlr.summary()._repr_html_()
    assert "AT&amp;T &lt;Mobility&gt; (US)" in page and "<Mobility>" not in page


def test_detailed_networks_take_their_country_from_the_answer() -> None:
    def row(name: str | None, cc: str | None, region: str | None, **extra: Any) -> dict:
        base = {"hlr_source": "api", "status_group_name": "DELIVERED", "hlr_region": region}
        return base | {"original_network_name": name, "original_network_country_prefix": cc} | extra

    frame = _frame(
        [
            row("T-Mobile", "49", "DE"),
            row("T-Mobile", "31", "NL"),
            row("T-Mobile", "49", "NL"),  # the answer's country wins over the number's
            row(
                "Vodafone",
                "49",
                "DE",
                ported=True,
                ported_network_name="O2",
                ported_network_country_prefix="49",
            ),
            row("Vodafone", "49", "DE", ported=True, ported_network_name=""),  # no name: original
            row("Sure", "44", "JE"),  # a shared code: the number's region when it is one of them
            row("EE", "44", None),  # else the code's main region
            row("Telekom", "", "DE"),  # no prefix in the answer: the number's region
            row("Mystery", None, None),  # no country at all: the bare name
            row("", "49", "DE"),
        ],
        detailed=True,
    )
    assert analysis.network_label(frame).tolist() == [
        "T-Mobile (DE)",
        "T-Mobile (NL)",
        "T-Mobile (DE)",
        "O2 (DE)",
        "Vodafone (DE)",
        "Sure (JE)",
        "EE (GB)",
        "Telekom (DE)",
        "Mystery",
        pd.NA,
    ]
    networks = _section(frame.hlr.summary(), "network")
    assert dict(networks["rows"]) == {
        "T-Mobile (DE)": 2,
        "EE (GB)": 1,
        "Mystery": 1,
        "O2 (DE)": 1,
        "Sure (JE)": 1,
        "T-Mobile (NL)": 1,
        "Telekom (DE)": 1,
        "Vodafone (DE)": 1,
        "(unknown)": 1,
    }
    assert list(networks.index) == list(dict(networks["rows"]))  # by rows, ties by name


def _plot_networks(frame: pd.DataFrame, top: int) -> list[str]:
    fig = frame.hlr.plot(top=top)
    return [t.get_text() for t in fig.axes[1].get_yticklabels()][::-1]  # top to bottom


@pytest.mark.parametrize("top", [1, 2, 3, 10])
def test_summary_and_plot_list_the_same_networks(top: int) -> None:
    """One rule for both: the ``top`` named networks, then "(other)", then "(unknown)"."""
    frame = _frame(HAND[:5] * 2 + [_ans("Orange", "FR", "live"), _ans(None, "FR", "dead")])
    networks = _section(frame.hlr.summary(top=top), "network")
    assert _plot_networks(frame, top) == list(networks.index)
    named = ["Vodafone (DE)", "T-Mobile (DE)", "T-Mobile (NL)", "Orange (FR)"]
    expected = named[:top] + (["(other)"] if top < len(named) else []) + ["(unknown)"]
    assert list(networks.index) == expected
    assert networks.loc["(unknown)", "rows"] == 3  # two blank names and one missing


def test_plot_of_the_sandbox_run_agrees_with_the_summary(out: pd.DataFrame) -> None:
    for top in (2, 10):
        networks = _section(out.hlr.summary(top=top), "network")
        assert _plot_networks(out, top) == list(networks.index)
        bars = out.hlr.plot(top=top).axes[1].patches[::-1]
        assert [int(b.get_width()) for b in bars] == networks["rows"].tolist()


def test_summary_by_country() -> None:
    table = _frame(HAND).hlr.summary(by="country")
    assert list(table.columns) == ["country", "section", "value", "rows", "of", "share"]
    assert [tuple(r) for r in table.drop(columns="share").itertuples(index=False)] == [
        ("DE", "rows", "all", 4, 10),
        ("DE", "status", "live", 1, 4),
        ("DE", "status", "dead", 1, 4),
        ("DE", "status", "out_of_network", 1, 4),
        ("DE", "status", "unknown", 1, 4),
        ("DE", "network", "Vodafone (DE)", 2, 4),
        ("DE", "network", "T-Mobile (DE)", 1, 4),
        ("DE", "network", "(unknown)", 1, 4),
        ("GB", "rows", "all", 2, 10),
        ("GB", "status", "skipped", 1, 2),
        ("GB", "status", "error", 1, 2),
        ("NL", "rows", "all", 1, 10),
        ("NL", "status", "live", 1, 1),
        ("NL", "network", "T-Mobile (NL)", 1, 1),
        ("(unknown)", "rows", "all", 3, 10),
        ("(unknown)", "status", "invalid", 1, 3),
        ("(unknown)", "status", "ambiguous", 1, 3),
        ("(unknown)", "status", "missing", 1, 3),
    ]
    text = str(table)
    assert (
        text.splitlines()[0]
        == "HLR summary by country: 10 rows, 5 answered (from the API or the cache)"
    )
    assert "country GB: 2 rows (20.0 % of all), 0 answered" in text
    assert "  network: share of its 4 answered rows" in text
    # top=1: one country keeps its group, the others are pooled; "(unknown)" stays apart
    pooled = _frame(HAND).hlr.summary(by="country", top=1)
    assert list(dict.fromkeys(pooled["country"])) == ["DE", "(other)", "(unknown)"]
    other = pooled[pooled["country"] == "(other)"].set_index(["section", "value"])["rows"]
    assert other.to_dict() == {
        ("rows", "all"): 3,
        ("status", "live"): 1,
        ("status", "skipped"): 1,
        ("status", "error"): 1,
        ("network", "T-Mobile (NL)"): 1,
    }


def test_summary_by_status() -> None:
    table = _frame(HAND).hlr.summary(by="status")
    in_hand = [s for s in analysis.STATUS_ORDER if s != "unreachable"]  # a detailed-mode status
    assert list(dict.fromkeys(table["status"])) == in_hand
    live = table[table["status"] == "live"].set_index(["section", "value"])
    assert live["rows"].to_dict() == {
        ("rows", "all"): 2,
        ("network", "T-Mobile (DE)"): 1,
        ("network", "T-Mobile (NL)"): 1,
        ("country", "DE"): 1,
        ("country", "NL"): 1,
    }
    assert set(live["of"]) == {10, 2}
    assert "status" not in set(table["section"]) and "source" not in set(table["section"])
    invalid = table[table["status"] == "invalid"]
    assert list(invalid["section"]) == ["rows"]  # never answered: no network or country


def test_summary_by_rejects_an_unknown_dimension() -> None:
    with pytest.raises(ValueError, match=r"by='carrier'.*\['country', 'status'\]"):
        _frame(HAND).hlr.summary(by="carrier")


def test_summary_by_country_of_the_sandbox_run(out_detailed: pd.DataFrame) -> None:
    table = out_detailed.hlr.summary(by="country")
    regions = out_detailed["hlr_region"].fillna(analysis.UNKNOWN).value_counts()
    size = table[table["section"] == "rows"].set_index("country")["rows"]
    assert size.to_dict() == regions.to_dict()
    for country, group in table.groupby("country"):
        status = group[group["section"] == "status"]
        assert status["rows"].sum() == regions[country]
        networks = group[group["section"] == "network"]
        if country != analysis.UNKNOWN:
            assert all(v.endswith(f"({country})") for v in networks["value"])


ROW = st.one_of(
    st.builds(
        _ans,
        st.sampled_from(["T-Mobile", "Vodafone", "Orange", "", None]),
        st.sampled_from(["DE", "NL", "GB", None]),
        st.sampled_from(["live", "dead", "out_of_network", None]),
        st.sampled_from(["api", "cache"]),
    ),
    st.builds(
        lambda source, region: {"hlr_source": source, "hlr_region": region},
        st.sampled_from(["invalid", "ambiguous", "missing", "skipped", "error"]),
        st.sampled_from(["GB", None]),
    ),
)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(ROW, max_size=40),
    cuts=st.lists(st.integers(0, 40), max_size=4),
    by=st.sampled_from([None, "country", "status"]),
    top=st.integers(1, 4),
)
def test_summary_from_counts_of_any_split_equals_the_summary(
    rows: list[dict[str, Any]], cuts: list[int], by: str | None, top: int
) -> None:
    frame = _frame(rows)
    bounds = [0, *sorted(min(c, len(rows)) for c in cuts), len(rows)]
    parts = [frame.iloc[a:b] for a, b in itertools.pairwise(bounds)]
    counts = pd.concat([analysis.summary_counts(p, "", by=by) for p in parts])
    whole = frame.hlr.summary(by=by, top=top)
    pd.testing.assert_frame_equal(analysis.summary_from_counts(counts, top=top), whole)
    status = whole[whole["section"] == "status"]
    assert status["rows"].sum() == (len(rows) if by != "status" else 0)


@pytest.mark.parametrize("by", [None, "country", "status"])
def test_zero_rows(out_detailed: pd.DataFrame, by: str | None) -> None:
    empty = out_detailed.iloc[:0]
    table = empty.hlr.summary(by=by)
    assert len(table) == 0
    assert list(table.columns) == ([by] if by else []) + ["section", "value", "rows", "of", "share"]
    assert str(table).startswith("HLR summary") and str(table).endswith(": 0 rows")
    assert "0 rows" in table._repr_html_()
    meta = analysis.summary_counts(empty, "", by=by)  # what the Dask face builds its meta from
    assert len(meta) == 0 and str(meta["rows"].dtype) == "int64"
    pd.testing.assert_frame_equal(analysis.summary_from_counts(meta), table)
    fig = empty.hlr.plot()
    assert [[t.get_text() for t in ax.texts] for ax in fig.axes] == [["no rows"], ["no rows"]]
    assert len(empty.hlr.status()) == 0 and len(empty.hlr.live()) == 0


def test_ambiguous_is_a_status_of_its_own() -> None:
    frame = _frame(HAND)
    status = frame.hlr.status()
    assert status.tolist()[5:8] == ["invalid", "ambiguous", "missing"]
    assert len(analysis.filter_status(frame, "ambiguous")) == 1
    assert set(analysis.STATUS_COLORS) == set(analysis.STATUS_ORDER)
    fig = frame.hlr.plot()
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()][::-1]
    assert labels == [s for s in analysis.STATUS_ORDER if s != "unreachable"]
    colours = [b.get_facecolor() for b in fig.axes[0].patches[::-1]]
    from matplotlib.colors import to_rgba

    assert colours[labels.index("ambiguous")] == to_rgba(analysis.STATUS_COLORS["ambiguous"])


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
    assert [t.get_text() for t in fig.axes[1].texts] == ["no rows"]  # nothing was answered
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
