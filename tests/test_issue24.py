"""Issue 24 (round two of never pay twice / lose nothing / leak nothing), rows 1-4, 9, 10, 12.

Every test runs against the real sandbox over HTTP, with faults from its knobs, and asserts what
was charged (the sandbox's ledger), what is on disk and what the user sees.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import pd_hlr  # noqa: F401  (registers df.hlr)
from pd_hlr import HLRCache, sandbox
from pd_hlr.errors import APIError, BudgetExceededError

from .conftest import TOKEN

NUMBERS = [f"+4474001{i:05d}" for i in range(40)]


def _frame(numbers: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"phone": numbers, "name": [f"n{i}" for i in range(len(numbers))]})


def _files_text(folder: Path) -> str:
    """Every file under ``folder`` as text (bytes decoded leniently)."""
    return "\n".join(
        p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file()
    )


def _parquet_text(folder: Path) -> str:
    """Every parquet file under ``folder`` decoded to text (compressed pages are not greppable
    as bytes)."""
    import pyarrow.parquet as pq

    parts = []
    for p in folder.rglob("*.parquet"):
        frame = pq.read_table(p).to_pandas()
        parts.append(frame.to_json(date_format="iso", default_handler=str))
    return "\n".join(parts)


# ------------------------------------------------------------------------------------- row 1
def test_row1_re_running_at_once_pays_nothing_again_for_temporary_answers(
    make_sandbox: Callable[..., Any], client_for: Any, tmp_path: Path
) -> None:
    sb = make_sandbox(faults=sandbox.Faults(temporary=1.0))  # every answer temporary (charged)
    client = client_for(sb)
    frame, cache = _frame(NUMBERS[:6]), tmp_path / "c"
    first = frame.hlr.validate("phone", client=client, cache=cache)
    assert first["hlr_source"].eq("api").all() and first["status"].eq("Unknown").all()
    assert sb.stats().charged == {n: 1 for n in NUMBERS[:6]}
    # what the user sees before spending: the estimate says the re-run costs nothing
    est = frame.hlr.estimate("phone", client=client, cache=cache)
    assert (est.cached, est.to_look_up) == (6, 0)
    again = frame.hlr.validate("phone", client=client, cache=cache)
    assert again["hlr_source"].eq("cache").all()
    assert sb.stats().charged == {n: 1 for n in NUMBERS[:6]}  # nothing paid twice
    assert again.hlr.report().looked_up == 0
    # on disk: one entry per number, each temporary
    stored = HLRCache(cache).stats()
    assert (stored["entries"], stored["temporary"]) == (6, 6)
    # retry_temporary=True chooses to look them up again at once: the estimate says so first
    est = frame.hlr.estimate("phone", client=client, cache=cache, retry_temporary=True)
    assert (est.cached, est.to_look_up) == (0, 6)
    frame.hlr.validate("phone", client=client, cache=cache, retry_temporary=True)
    assert sb.stats().charged == {n: 2 for n in NUMBERS[:6]}


def test_row1_a_temporary_answer_older_than_the_minimum_age_is_looked_up_again(
    make_sandbox: Callable[..., Any], client_for: Any, tmp_path: Path
) -> None:
    from pd_hlr.cache import Entry
    from pd_hlr.pipeline import api_namespace
    from pd_hlr.settings import LookupOptions

    sb = make_sandbox(faults=sandbox.Faults(temporary=1.0))
    client = client_for(sb)
    numbers = NUMBERS[:4]
    answers = {n: client.lookup(n) for n in numbers}  # 4 charged, temporary answers
    cache = HLRCache(tmp_path / "c")
    now = dt.datetime.now(dt.UTC)
    ages = {numbers[0]: dt.timedelta(minutes=5), numbers[1]: dt.timedelta(minutes=50),
            numbers[2]: dt.timedelta(minutes=70), numbers[3]: dt.timedelta(hours=30)}
    with cache.writer() as writer:  # answers received that long ago (an injected clock)
        for n, age in ages.items():
            writer.add(Entry(n, LookupOptions().key(), api_namespace(client), answers[n],
                             now - age))
    sb.configure(faults=sandbox.Faults())
    frame = _frame(numbers)
    # the default minimum age is one hour: the two older ones are looked up again
    est = frame.hlr.estimate("phone", client=client, cache=cache)
    assert (est.cached, est.to_look_up) == (2, 2)
    out = frame.hlr.validate("phone", client=client, cache=cache)
    assert out["hlr_source"].tolist() == ["cache", "cache", "api", "api"]
    assert sb.stats().charged == {numbers[0]: 1, numbers[1]: 1, numbers[2]: 2, numbers[3]: 2}
    # a duration chooses another age; False serves them whatever their age (max_age applies)
    cache2 = HLRCache(tmp_path / "c2")
    with cache2.writer() as writer:
        for n, age in ages.items():
            writer.add(Entry(n, LookupOptions().key(), api_namespace(client), answers[n],
                             now - age))
    for value, cached in (("10min", 1), ("2D", 4), (False, 4), (True, 0)):
        est = frame.hlr.estimate("phone", client=client, cache=cache2, retry_temporary=value)
        assert est.cached == cached, value
    est = frame.hlr.estimate(
        "phone", client=client, cache=cache2, retry_temporary=False, max_age="1D"
    )
    assert est.cached == 3


@pytest.mark.parametrize(
    ("value", "message"),
    [(3600, "retry_temporary needs a unit"), ("3600", "needs a unit"),
     ("soon", "is not a duration"), ("-1h", "must not be negative")],
)
def test_row1_retry_temporary_values_are_checked(value: Any, message: str) -> None:
    from pd_hlr.settings import ValidateSettings

    with pytest.raises(ValueError, match=message):
        ValidateSettings.from_kwargs(retry_temporary=value)
    assert ValidateSettings().retry_temporary == pd.Timedelta(hours=1)  # the documented default


# ------------------------------------------------------------------------------------- row 3
@pytest.mark.parametrize("face", ["pandas", "series", "estimate", "dask", "polars", "client"])
def test_row3_a_route_the_spec_does_not_define_is_refused_before_any_request(
    make_sandbox: Callable[..., Any], client_for: Any, tmp_path: Path, face: str
) -> None:
    sb = make_sandbox()
    client = client_for(sb)
    frame = _frame(NUMBERS[:3])
    opts: dict[str, Any] = {"client": client, "cache": tmp_path / "c", "route": "premium"}
    with pytest.raises(ValueError, match="route must be one of 'standard', 'detailed'"):
        if face == "pandas":
            frame.hlr.validate("phone", **opts)
        elif face == "series":
            frame["phone"].hlr.validate(**opts)
        elif face == "estimate":
            frame.hlr.estimate("phone", **opts)
        elif face == "dask":
            dd = pytest.importorskip("dask.dataframe")
            import pd_hlr.dask

            dd.from_pandas(frame, npartitions=2).hlr.validate("phone", **opts)
        elif face == "polars":
            pl = pytest.importorskip("polars")
            import pd_hlr.polars  # noqa: F401

            pl.from_pandas(frame).hlr.validate("phone", **opts)
        else:
            client.lookup_many(NUMBERS[:3], route="premium")
    with pytest.raises(ValueError, match="not 'Standard'"):
        client.lookup(NUMBERS[0], route="Standard")
    assert sb.stats().requests == 0  # nothing sent, nothing charged
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").glob("part-*"))
    # the spec's values are still sent and charged once
    client.lookup(NUMBERS[0], route="standard")
    assert sb.stats().charged == {NUMBERS[0]: 1}


# ------------------------------------------------------------------------------------- row 4
@pytest.mark.parametrize("fault", ["missing_to", "nan_field"])
def test_row4_a_complete_billed_answer_is_bought_once_per_run(
    make_sandbox: Callable[..., Any], client_for: Any, tmp_path: Path, fault: str
) -> None:
    sb = make_sandbox(faults=sandbox.Faults(**{fault: 1.0}))
    client = client_for(sb, max_retries=5, backoff_factor=0)
    numbers = NUMBERS[:4]
    out = _frame(numbers).hlr.validate("phone", client=client, cache=tmp_path / "c")
    # what was charged: each number once (was 6 each: the first attempt and five retries)
    assert sb.stats().charged == {n: 1 for n in numbers}
    assert sb.stats().requests == len(numbers)
    # what the user sees: an error row naming it, counted as possibly charged
    assert out["hlr_source"].eq("error").all()
    assert out["hlr_error"].str.contains("charged; not retried").all()
    assert client.stats.possibly_charged_numbers == set(numbers)
    assert client.stats.failures == {"incomplete_result": len(numbers)}
    # on disk: nothing unusable was cached
    assert HLRCache(tmp_path / "c").to_frame().empty
    # one lookup of one number
    with pytest.raises(APIError) as info:
        client.lookup(NUMBERS[10])
    assert info.value.kind == "incomplete_result" and info.value.attempts == 1
    assert sb.stats().charged[NUMBERS[10]] == 1


def test_row4_budget_one_pays_for_one_lookup(
    make_sandbox: Callable[..., Any], client_for: Any, tmp_path: Path
) -> None:
    sb = make_sandbox(faults=sandbox.Faults(missing_to=1.0))
    client = client_for(sb, max_retries=5, backoff_factor=0)
    out = _frame(NUMBERS[:1]).hlr.validate("phone", client=client, cache=False, budget=1)
    assert sb.stats().total_charged == 1  # budget=1 bought one lookup, not six
    assert out["hlr_source"].tolist() == ["error"]
    with pytest.raises(BudgetExceededError):
        _frame(NUMBERS[:2]).hlr.validate("phone", client=client, cache=False, budget=1)
    assert sb.stats().total_charged == 1


# ------------------------------------------------------------------------------------ row 10
def test_row10_a_token_echoed_into_a_200_is_scrubbed_everywhere(
    make_sandbox: Callable[..., Any], client_for: Any, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sb = make_sandbox(faults=sandbox.Faults(echo_token=1.0))
    client = client_for(sb)
    numbers = NUMBERS[:5]
    cache = tmp_path / "c"
    out = _frame(numbers).hlr.validate("phone", client=client, cache=cache, detailed=True)
    assert sb.stats().charged == {n: 1 for n in numbers}
    assert sb.stats().fault_counts == {"echo_token": len(numbers)}
    # the answers were kept (the echo is the gateway's, the answer is sound), scrubbed
    assert out["hlr_source"].eq("api").all()
    assert out["original_network_name"].str.contains(r"\[Bearer \*\*\*\]").all()
    frame_text = out.to_json(date_format="iso") + out.to_html() + out._repr_html_() + repr(out)
    assert TOKEN not in frame_text
    assert "Bearer ***" in out["hlr_extra"].iloc[0]
    # on disk: journal and parts (decoded too: parquet pages are compressed)
    HLRCache(cache).compact()
    assert TOKEN not in _files_text(cache) + _parquet_text(cache)
    # exports
    out.to_parquet(tmp_path / "out.parquet")
    out.to_csv(tmp_path / "out.csv")
    assert TOKEN not in _files_text(tmp_path / "out.parquet") + _parquet_text(tmp_path)
    assert TOKEN not in (tmp_path / "out.csv").read_text()
    # a re-run serves them from the cache, still scrubbed, and pays nothing
    again = _frame(numbers).hlr.validate("phone", client=client, cache=cache, detailed=True)
    assert again["hlr_source"].eq("cache").all()
    assert TOKEN not in again.to_json(date_format="iso")
    assert sb.stats().total_charged == len(numbers)
    # one lookup, and the log said it once, without the token
    assert TOKEN not in json.dumps(client.lookup(NUMBERS[20]))
    echoed = [r for r in caplog.records if "echoed the API token" in r.getMessage()]
    assert len(echoed) == 1
    assert all(TOKEN not in r.getMessage() for r in caplog.records)



def test_row10_a_short_token_is_scrubbed_as_the_echoed_header_only(
    make_sandbox: Callable[..., Any], client_for: Any
) -> None:
    sb = make_sandbox(token="t", faults=sandbox.Faults(echo_token=1.0))
    result = client_for(sb).lookup(NUMBERS[0])
    assert result["to"] == NUMBERS[0] and "status" in result  # "t" in ordinary text is kept
    assert result["gateway"] == {"request_headers": {"Authorization": "***"}}
    assert "Bearer t" not in json.dumps(result)


# ------------------------------------------------------------------------------- rows 2 and 12
HANG = 120.0  # only a hang waits this long (a guard, not a speed check)


def _when_charged(server: Any, count: int, then: Callable[[], None]) -> threading.Thread:
    """Call ``then`` (from a watcher thread) once the sandbox has charged ``count`` lookups."""

    def watch() -> None:
        deadline = time.monotonic() + HANG
        while server.stats().total_charged < count and time.monotonic() < deadline:
            time.sleep(0.005)
        then()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _cached_numbers(folder: Path) -> set[str]:
    frame = HLRCache(folder).to_frame(raw=False)
    return set(frame["number"]) if len(frame) else set()


def _paid_twice(server: Any) -> dict[str, int]:
    return {n: c for n, c in server.stats().charged.items() if c > 1}


#: A run that stops mid-way: every answer is charged, then delivered 0.2 s later (the in-flight
#: window a stop must wait out).
SLOW = {"faults": sandbox.Faults(slow=1.0, slow_seconds=0.2)}

_PY_CHILD = """
import json, os, signal, sys
import pandas as pd
import pd_hlr
from pd_hlr import HLRClient, RunInterrupted
host = os.environ.get("HOST_HANDLER") == "1"
seen = []
if host:  # a host that installed its own SIGTERM handler (a scheduler's agent, say)
    signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
numbers = json.loads(os.environ["NUMBERS"])
client = HLRClient(token=os.environ["TOKEN"], base_url=os.environ["URL"], workers=8)
print("ready", flush=True)
try:
    out = pd.DataFrame({"phone": numbers}).hlr.validate(
        "phone", client=client, cache=os.environ["CACHE"], progress=False)
    print(json.dumps({"finished": len(out), "host_saw": seen,
                      "handler_kept": signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL}))
except RunInterrupted as exc:
    print(json.dumps({"signal": exc.signal, "message": str(exc),
                      "partial_api": int((exc.partial["hlr_source"] == "api").sum()),
                      "looked_up": exc.looked_up, "remaining": exc.remaining,
                      "restored": signal.getsignal(signal.SIGTERM) is signal.SIG_DFL}))
"""


def _python_child(server: Any, numbers: list[str], cache: Path, **env: str) -> Any:
    import os
    import subprocess
    import sys

    full = {**os.environ, "NUMBERS": json.dumps(numbers), "TOKEN": TOKEN, "URL": server.url,
            "CACHE": str(cache), **env}
    proc = subprocess.Popen([sys.executable, "-c", _PY_CHILD], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_row2_sigterm_stops_a_python_run_like_ctrl_c(
    make_sandbox: Callable[..., Any], client_for: Any, tmp_path: Path
) -> None:
    import signal

    server = make_sandbox(**SLOW)
    numbers, cache = NUMBERS[:40], tmp_path / "c"
    proc = _python_child(server, numbers, cache)
    _when_charged(server, 12, lambda: proc.send_signal(signal.SIGTERM))
    out, err = proc.communicate(timeout=HANG)
    assert proc.returncode == 0, err  # the run ended with RunInterrupted, not death by signal
    got = json.loads(out.strip().splitlines()[-1])
    assert got["signal"] == "SIGTERM" and got["restored"]
    paid = set(server.stats().charged)
    assert 12 <= len(paid) < len(numbers)
    # on disk: every answer paid for, the in-flight ones included
    assert _cached_numbers(cache) == paid
    assert got["looked_up"] == got["partial_api"] == len(paid)
    assert got["remaining"] == len(numbers) - len(paid)
    assert "a re-run continues with the" in got["message"] and ".partial" in got["message"]
    # the re-run pays only for the rest: nothing twice
    _frame(numbers).hlr.validate("phone", client=client_for(server), cache=cache)
    assert _paid_twice(server) == {} and set(server.stats().charged) == set(numbers)


def test_row2_a_host_handler_for_sigterm_is_never_overridden(
    make_sandbox: Callable[..., Any], tmp_path: Path
) -> None:
    import signal

    server = make_sandbox(**SLOW)
    numbers = NUMBERS[:24]
    proc = _python_child(server, numbers, tmp_path / "c", HOST_HANDLER="1")
    _when_charged(server, 8, lambda: proc.send_signal(signal.SIGTERM))
    out, err = proc.communicate(timeout=HANG)
    assert proc.returncode == 0, err
    got = json.loads(out.strip().splitlines()[-1])
    # the host's handler got the signal, the run went on to the end, the handler stayed
    assert got == {"finished": 24, "host_saw": [signal.SIGTERM], "handler_kept": True}
    assert server.stats().charged == {n: 1 for n in numbers}


def _default_stop_signals() -> None:
    """In a child before it runs: SIGTERM, SIGHUP and SIGINT back to their defaults."""
    import signal

    for name in ("SIGTERM", "SIGHUP"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.mark.parametrize(
    ("engine", "sig", "code"),
    [("pandas", "SIGTERM", 143), ("pandas", "SIGHUP", 129), ("pandas", "SIGINT", 130),
     ("dask", "SIGTERM", 143), ("polars", "SIGTERM", 143)],
)
def test_row2_sigterm_and_sighup_stop_the_cli_like_ctrl_c(
    make_sandbox: Callable[..., Any], client_for: Any, tmp_path: Path, engine: str, sig: str,
    code: int,
) -> None:
    import os
    import signal
    import subprocess
    import sys

    server = make_sandbox(**SLOW)
    numbers, cache = NUMBERS[:40], tmp_path / "c"
    src = tmp_path / "in.csv"
    pd.DataFrame({"phone": numbers}).to_csv(src, index=False)
    env = {**os.environ, "PROVERO_API_TOKEN": TOKEN, "PROVERO_BASE_URL": server.url}
    argv = [sys.executable, "-m", "pd_hlr.cli", "validate", str(src), "-c", "phone",
            "--cache", str(cache), "--out", str(tmp_path / "out.parquet"), "--no-progress",
            "--engine", engine]
    # The child starts with the default handlers: under nohup (SIGHUP ignored, which the child
    # would inherit) pd-hlr rightly keeps the host's choice and this would test nothing.
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, preexec_fn=_default_stop_signals)
    _when_charged(server, 12, lambda: proc.send_signal(getattr(signal, sig)))
    _, err = proc.communicate(timeout=HANG)
    assert proc.returncode == code, err  # the documented exit code, not death by the signal
    paid = set(server.stats().charged)
    assert 12 <= len(paid) < len(numbers)
    how = "interrupted" if sig == "SIGINT" else f"stopped by {sig}"
    assert f"pd-hlr: {how}: " in err and "a re-run continues with the" in err
    assert ".partial" not in err  # no Python attribute on the command line
    assert len(err.strip().splitlines()) == 1, err  # one line, no traceback
    assert _cached_numbers(cache) == paid  # in-flight answers journalled
    assert not (tmp_path / "out.parquet").exists()
    _frame(numbers).hlr.validate("phone", client=client_for(server), cache=cache)
    assert _paid_twice(server) == {} and set(server.stats().charged) == set(numbers)


def test_row12_an_interrupted_notebook_run_says_what_was_saved_with_partial(
    make_sandbox: Callable[..., Any], client_for: Any, tmp_path: Path
) -> None:
    import signal
    import traceback

    from pd_hlr import RunInterrupted

    server = make_sandbox(**SLOW)
    numbers, cache = NUMBERS[:40], tmp_path / "c"
    client = client_for(server, workers=8)
    main = threading.main_thread().ident
    assert main is not None
    # a real SIGINT to the main thread, as Kernel → Interrupt and Ctrl-C send
    _when_charged(server, 12, lambda: signal.pthread_kill(main, signal.SIGINT))
    with pytest.raises(KeyboardInterrupt) as info:  # it still stops the cell
        _frame(numbers).hlr.validate("phone", client=client, cache=cache, progress=False)
    exc = info.value
    assert isinstance(exc, RunInterrupted) and not isinstance(exc, Exception)
    paid = set(server.stats().charged)
    message = str(exc)
    assert message.startswith("pd-hlr: interrupted: ")
    assert f"{len(paid)} of 40 numbers were looked up and are saved in the cache" in message
    assert f"a re-run continues with the {40 - len(paid)} left" in message
    assert message.endswith("The result so far is in .partial.")
    # .partial: the caller's rows, the answered ones with their answers
    partial = exc.partial
    assert list(partial["name"]) == [f"n{i}" for i in range(40)]
    assert set(partial.loc[partial["hlr_source"] == "api", "phone"]) == paid
    assert partial.loc[partial["hlr_source"] == "error", "hlr_error"].str.contains(
        "interrupted by SIGINT").all()
    assert exc.report.stopped == "RunInterrupted (SIGINT)" and exc.looked_up == len(paid)
    # the traceback is short: no chained KeyboardInterrupt through client and cache code
    assert exc.__suppress_context__ and exc.__cause__ is None
    assert len(traceback.extract_tb(exc.__traceback__)) <= 6
    assert _cached_numbers(cache) == paid
    # a re-run continues: it pays only for the rest
    again = _frame(numbers).hlr.validate("phone", client=client, cache=cache)
    assert _paid_twice(server) == {} and set(server.stats().charged) == set(numbers)
    assert (again["hlr_source"] == "cache").sum() == len(paid)


def test_row12_run_interrupted_pickles_with_its_facts() -> None:
    import pickle

    from pd_hlr import RunInterrupted

    exc = RunInterrupted("pd-hlr: stopped by SIGTERM: 3 of 9 numbers were looked up", "SIGTERM")
    exc.looked_up, exc.remaining = 3, 6
    back = pickle.loads(pickle.dumps(exc))
    assert (type(back), str(back), back.signal, back.exit_code) == (
        RunInterrupted, str(exc), "SIGTERM", 143)
    assert (back.looked_up, back.remaining, back.partial) == (3, 6, None)


# ------------------------------------------------------------------------------------- row 9
#: The exit code of each case, the same for every engine (pd_hlr.cli.EXIT_CODES says why).
EXIT_TABLE = {
    "ok": 0,
    "some numbers failed": 6,
    "unreadable input": 2,
    "insufficient balance": 3,
    "wrong token": 4,
    "over budget": 5,
    "missing extra": 2,
}
ENGINES = ("pandas", "dask", "polars")


def _exit_case(case: str, engine: str, real_api: Any, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> tuple[int, Any]:
    import os
    import subprocess
    import sys

    from pd_hlr import cli
    from pd_hlr.settings import TOKEN_ENV

    src = tmp_path / "in.csv"
    lines = ["phone,name", f"{NUMBERS[0]},a", f"{NUMBERS[1]},b"]
    if case == "unreadable input":
        lines.insert(2, f"{NUMBERS[2]},b,c,d")  # a ragged line
    src.write_text("\n".join(lines) + "\n")
    knobs: dict[str, Any] = {}
    if case == "some numbers failed":
        knobs["faults"] = sandbox.Faults(wrong_to=1.0)
    if case == "insufficient balance":
        knobs["balance"] = 0
    server = real_api(**knobs)
    if case == "wrong token":
        monkeypatch.setenv(TOKEN_ENV, "not-the-token")
    argv = ["validate", str(src), "-c", "phone", "--engine", engine, "--no-progress",
            "--cache", str(tmp_path / "c"), "--out", str(tmp_path / "out.parquet")]
    if case == "over budget":
        argv += ["--budget", "1"]
    if case != "missing extra":
        return cli.main(argv), server
    # the engine's extra not installed: its import fails, as it does without the package
    blocked = {"dask": "dask", "polars": "polars", "pandas": "openpyxl"}[engine]
    code = (f"import sys; sys.modules[{blocked!r}] = None\n"
            f"from pd_hlr.cli import main; sys.exit(main({argv!r}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ), timeout=HANG)
    assert "Traceback" not in proc.stderr, proc.stderr
    if engine != "pandas":
        assert f"pd-hlr[{engine}]" in proc.stderr, proc.stderr  # names the extra to install
    return proc.returncode, server


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", list(EXIT_TABLE))
def test_row9_the_same_exit_code_for_every_engine(
    real_api: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], case: str, engine: str,
) -> None:
    from pd_hlr import cli

    if engine == "pandas" and case == "missing extra":
        expected = 0  # the pandas engine needs no extra (a CSV needs no openpyxl)
    else:
        expected = EXIT_TABLE[case]
    code, server = _exit_case(case, engine, real_api, tmp_path, monkeypatch)
    assert code == expected, capsys.readouterr().err
    assert expected in cli.EXIT_CODES  # every code the table uses is documented
    charged = server.stats().total_charged
    if case == "unreadable input" and engine == "polars":
        # Polars reads only the phone column for the lookups and meets the ragged line when
        # the whole row is written: what it paid for is in the cache (a re-run pays nothing)
        assert _cached_numbers(tmp_path / "c") == set(server.stats().charged)
    elif case in ("unreadable input", "insufficient balance", "wrong token", "over budget"):
        assert charged == 0  # refused before paying
    if case == "some numbers failed":
        assert server.stats().charged == {NUMBERS[0]: 1, NUMBERS[1]: 1}  # once, never again
    out = tmp_path / "out.parquet"
    assert out.exists() == (code in (0, 6))  # written exactly when the run finished
