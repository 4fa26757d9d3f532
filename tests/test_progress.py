"""The progress bar, read through tqdm's own output at a forced width, with an injected clock.

No test here measures wall-clock time: :attr:`Progress.clock` is replaced by a counter, so every
redraw decision is deterministic. The notebook tests run a real Jupyter kernel (nbclient).
"""

from __future__ import annotations

import io
import re
import textwrap
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pd_hlr import progress as progress_mod
from pd_hlr.progress import Progress

WIDTH = 100
FRAME = re.compile(
    r"HLR(?: lookups)?: +(\d+)%\|.*\| ([\d,]+)/([\d,]+) \[[^\]]*\] "
    r"cached ([\d,]+) · failed ([\d,]+)(?: · pace [\d.,]+/s)? · (?:spend ≈ |≈)([\d.,]+)"
)


class FakeClock:
    """Seconds that advance by ``step`` on every reading (threads included)."""

    def __init__(self, step: float) -> None:
        self.now = 1000.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    fake = FakeClock(0.6)  # every reading is more than Progress.interval after the last one
    monkeypatch.setattr(Progress, "clock", staticmethod(fake))
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    yield fake


def _frames(text: str) -> list[str]:
    return [f.rstrip("\n").rstrip() for f in text.split("\r") if f.strip()]


def _parsed(frames: list[str]) -> list[tuple[int, int, int, int, str]]:
    out = []
    for frame in frames:
        match = FRAME.search(frame)
        assert match, f"not a bar line: {frame!r}"
        _, done, total, cached, failed, spend = match.groups()
        out.append(
            (int(done.replace(",", "")), int(total.replace(",", "")),
             int(cached.replace(",", "")), int(failed), spend)
        )
    return out


def test_every_lookup_redraws_after_the_interval_whatever_came_before(clock: FakeClock) -> None:
    buf = io.StringIO()
    bar = Progress(20, cached=8_358, price=Decimal("0.006"), file=buf)
    for i in range(20):
        bar.done(failed=i % 7 == 3)
    bar.close()
    frames = _frames(buf.getvalue())
    parsed = _parsed(frames)
    # the total is the lookups, never the cache hits; hits sit beside the bar in every frame
    assert {p[1] for p in parsed} == {20}
    assert {p[2] for p in parsed} == {8_358}
    # one redraw per lookup: no count is skipped (tqdm's dynamic miniters would skip many)
    assert sorted({p[0] for p in parsed}) == list(range(21))
    assert parsed[-1][:4] == (20, 20, 8_358, 3)
    assert parsed[-1][4] == "0.102"  # 17 answers at 0.006
    assert all(len(f) <= WIDTH for f in frames)
    assert buf.getvalue().endswith("\n")  # the final line stays


def test_frozen_bar_of_a_big_cache_hit_cannot_happen(clock: FakeClock) -> None:
    """The reported case: 8,358 hits then 5,150 lookups froze tqdm's bar (miniters ~4,000)."""
    buf = io.StringIO()
    bar = Progress(5_150, cached=8_358, price=Decimal("0.006"), file=buf)
    for _ in range(60):
        bar.done(failed=False)
    counts = [p[0] for p in _parsed(_frames(buf.getvalue()))]
    assert counts == list(range(61))
    bar.close()


def test_tick_redraws_while_nothing_arrives(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(Progress, "clock", staticmethod(lambda: now[0]))
    monkeypatch.setattr(Progress, "interval", 3600.0)  # the ticker thread stays asleep
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    buf = io.StringIO()
    bar = Progress(4, cached=0, price=Decimal("0.01"), file=buf)
    drawn = len(_frames(buf.getvalue()))
    now[0] += 3599.0
    bar.tick()
    assert len(_frames(buf.getvalue())) == drawn  # not yet
    now[0] += 2.0
    bar.tick()
    frames = _frames(buf.getvalue())
    assert len(frames) == drawn + 1
    assert "[1:00:01<?" in frames[-1]  # the elapsed time moved without any answer
    bar.close()


def test_rate_and_eta_are_about_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr(Progress, "clock", staticmethod(lambda: now[0]))
    monkeypatch.setattr(Progress, "interval", 3600.0)
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    buf = io.StringIO()
    bar = Progress(10, cached=1_000_000, price=Decimal("0.006"), file=buf)
    for _ in range(5):
        now[0] += 2.0  # one lookup every two seconds, a million cache hits beside
        bar.done(failed=False)
    bar.close()
    last = _frames(buf.getvalue())[-1]
    assert "5/10 [00:10<" in last
    assert " 0.50/s]" in last  # 5 lookups in 10 s, not a million numbers per second


def test_the_pace_shows_once_the_server_has_signalled_a_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [0.0]
    monkeypatch.setattr(Progress, "clock", staticmethod(lambda: now[0]))
    monkeypatch.setattr(Progress, "interval", 1.0)
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    pace: list[float | None] = [None]
    buf = io.StringIO()
    bar = Progress(10, price=Decimal("0.006"), file=buf, rate=lambda: pace[0])
    now[0] += 2.0
    bar.done(failed=False)
    assert "pace" not in _frames(buf.getvalue())[-1]  # unthrottled: nothing to show
    pace[0] = 38.4
    now[0] += 2.0
    bar.done(failed=False)
    assert re.search(r" · pace 38/s · (spend ≈ |≈)0\.012$", _frames(buf.getvalue())[-1])
    pace[0] = 2.5
    now[0] += 2.0
    bar.tick()  # no answer arrived, the pace moved: the redraw shows it
    assert " · pace 2.5/s · " in _frames(buf.getvalue())[-1]
    bar.close()
    assert _parsed(_frames(buf.getvalue()))[-1][:2] == (2, 10)


def test_nothing_to_look_up_is_one_line(clock: FakeClock) -> None:
    buf = io.StringIO()
    Progress(0, cached=8_358, file=buf).close()
    assert buf.getvalue() == "HLR lookups: nothing to look up; cached 8,358\n"


def test_disabled_draws_nothing_and_counts(clock: FakeClock, capsys: Any) -> None:
    bar = Progress(3, cached=1, price=Decimal("0.5"), enabled=False)
    bar.done(failed=False)
    bar.done(failed=True)
    bar.close()
    bar.close()
    assert (bar.looked_up, bar.failed, bar.spend) == (1, 1, Decimal("0.5"))
    assert capsys.readouterr().err == ""


def test_progress_enabled_follows_the_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert progress_mod.progress_enabled(None, Tty()) is True
    assert progress_mod.progress_enabled(None, io.StringIO()) is False
    assert progress_mod.progress_enabled(False, Tty()) is False
    assert progress_mod.in_notebook() is False


# --- through a real, partly cached run -------------------------------------------------------
def test_partly_cached_run_draws_each_lookup_beside_the_cache_hits(
    sb: Any, client_for: Any, tmp_path: Path, clock: FakeClock, capsys: Any
) -> None:
    cached = [f"+4474001230{i:02d}" for i in range(40)]
    new = [f"+4474009870{i:02d}" for i in range(20)]
    client = client_for(sb, workers=4)
    opts = {"client": client, "cache": tmp_path / "c", "retry_temporary": False}
    pd.DataFrame({"phone": cached}).hlr.validate("phone", progress=False, **opts)
    capsys.readouterr()
    out = pd.DataFrame({"phone": cached + new}).hlr.validate("phone", progress=True, **opts)
    err = capsys.readouterr().err
    parsed = _parsed(_frames(err))
    assert {(p[1], p[2]) for p in parsed} == {(20, 40)}  # total = lookups; hits beside
    assert sorted({p[0] for p in parsed}) == list(range(21))
    assert parsed[-1][0] == 20 and parsed[-1][4] == "0.120"  # 20 × 0.006
    assert (out["hlr_source"] == "cache").sum() == 40
    assert sb.stats().received == dict.fromkeys(cached + new, 1)


def test_all_cached_run_says_so_in_one_line(
    sb: Any, client_for: Any, tmp_path: Path, clock: FakeClock, capsys: Any
) -> None:
    df = pd.DataFrame({"phone": [f"+4474001230{i:02d}" for i in range(5)]})
    opts = {"client": client_for(sb), "cache": tmp_path / "c", "retry_temporary": False}
    df.hlr.validate("phone", progress=False, **opts)
    df.hlr.validate("phone", progress=True, **opts)
    assert capsys.readouterr().err == "HLR lookups: nothing to look up; cached 5\n"


def test_a_run_against_a_hidden_limit_shows_its_pace_and_reports_it(
    make_sandbox: Any, client_for: Any, tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    import json

    from pd_hlr.report import RunReport

    monkeypatch.setenv("COLUMNS", str(WIDTH))
    monkeypatch.setattr(Progress, "interval", 0.05)
    server = make_sandbox(rate_limit=30)  # the client is not told
    numbers = [f"+4474009870{i:02d}" for i in range(90)]
    client = client_for(server, workers=8, max_retries=50)
    out = pd.DataFrame({"phone": numbers}).hlr.validate(
        "phone", client=client, cache=tmp_path / "c", progress=True
    )
    frames = _frames(capsys.readouterr().err)
    paces = [float(m) for f in frames for m in re.findall(r"· pace ([\d.]+)/s", f)]
    assert paces and all(0.5 <= p <= 1000 for p in paces)
    assert "pace" not in frames[0]  # nothing shown before the first limit signal
    stats = server.stats()
    assert stats.charged == dict.fromkeys(numbers, 1)  # the 429s cost nothing, no number twice
    report = out.hlr.report()
    assert report.looked_up == 90
    assert report.limit_signals == report.throttled == stats.status_counts[429] > 0
    assert report.rate is not None and report.rate_peak
    assert RunReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report
    assert "limit signals" in str(report) and "limit signals" in report._repr_html_()


def test_no_bar_off_a_terminal_by_default(sb: Any, client_for: Any, capsys: Any) -> None:
    pd.DataFrame({"phone": ["+447400123456"]}).hlr.validate(
        "phone", client=client_for(sb), cache=False
    )
    assert capsys.readouterr().err == ""


# --- in a real notebook kernel -----------------------------------------------------------------
CELL = textwrap.dedent(
    """
    import warnings
    warnings.simplefilter("always")
    {block}
    import pandas as pd, pd_hlr
    from pd_hlr import sandbox
    with sandbox.serve(token="t") as sb, pd_hlr.HLRClient(token="t", base_url=sb.url) as c:
        out = pd.DataFrame({{"phone": ["+447400123456", "+447400123457"]}}).hlr.validate(
            "phone", client=c, cache=False)
    print("rows", len(out))
    """
)


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    pytest.importorskip("nbclient")
    from ipykernel.kernelspec import install

    prefix = tmp_path / "jupyter-prefix"
    install(kernel_name="python3", prefix=str(prefix))
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    return "python3"


def _run_cell(kernel: str, source: str) -> list[Any]:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(source))
    NotebookClient(nb, kernel_name=kernel, timeout=120, allow_errors=False).execute()
    return list(nb.cells[0].outputs)


def _saved_view(outputs: list[Any]) -> str:
    """What a static render shows: each output's text/plain (or its stream text)."""
    parts = []
    for out in outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif "data" in out:
            parts.append(out.data.get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.slow
def test_notebook_without_ipywidgets_shows_a_text_bar_and_no_warning(kernel: str) -> None:
    block = "import sys; sys.modules['ipywidgets'] = None  # not installed"
    outputs = _run_cell(kernel, CELL.format(block=block))
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    view = _saved_view(outputs)
    assert "TqdmWarning" not in view and "IProgress" not in view
    bars = [o for o in outputs if o.output_type == "display_data"]
    assert len(bars) == 1  # one output, redrawn in place
    final = bars[0].data["text/plain"]
    assert FRAME.search(final) and "2/2" in final and "100%" in final
    assert "<progress value='2' max='2'" in bars[0].data["text/html"]
    assert "rows 2" in view


@pytest.mark.slow
def test_notebook_widget_bar_leaves_the_final_line_for_saved_notebooks(kernel: str) -> None:
    pytest.importorskip("ipywidgets")
    outputs = _run_cell(kernel, CELL.format(block=""))
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"]
    bars = [o for o in outputs if o.output_type == "display_data"]
    assert len(bars) == 1
    data = bars[0].data
    # the widget was replaced by its final line: nothing refers to widget state any more
    assert "application/vnd.jupyter.widget-view+json" not in data
    assert FRAME.search(data["text/plain"]) and "2/2" in data["text/plain"]


def test_module_docstring_example_matches_the_format() -> None:
    example = [line.strip() for line in progress_mod.__doc__.splitlines() if "%|" in line]
    assert example and FRAME.search(example[0])


@pytest.mark.parametrize("width", [60, 80, 90])
def test_a_narrow_terminal_keeps_the_bar_and_the_spend(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    buf = io.StringIO()
    bar = Progress(1_648, cached=8_358, price=Decimal("0.006"), file=buf)
    for _ in range(124):
        bar.done(failed=False)
    bar.close()
    last = _frames(buf.getvalue())[-1]
    assert len(last) <= width
    if width >= 80:  # short words, so a bar of a few cells and the spend still fit
        assert last.startswith("HLR:   8%|") and last.endswith("cached 8,358 · failed 0 · ≈0.744")
        assert len(last.split("|")[1]) >= 3
