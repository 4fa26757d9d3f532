"""The cache under real processes: kill -9, Ctrl-C, folders shared by several processes.

Every test here starts real Python processes and asserts the sandbox's charge ledger: nothing
paid twice beyond the documented in-flight bound (a killed process's ``workers``), nothing paid
lost, nothing left hanging (every wait has a generous timeout that only catches a hang).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

import pd_hlr
from pd_hlr.cache import HLRCache

from .conftest import TOKEN
from .test_cache import numbers, run, temporary

OPTS = pd_hlr.LookupOptions().key()
HANG = 120  # seconds: only a hang takes this long

CHILD = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import pandas as pd
    import pd_hlr
    numbers = open(sys.argv[1]).read().split()
    go = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    while go is not None and not go.exists():  # start together with the other processes
        time.sleep(0.005)
    client = pd_hlr.HLRClient(token=os.environ["T"], base_url=os.environ["URL"], workers=4)
    out = pd.DataFrame({"phone": numbers}).hlr.validate(
        "phone", client=client, cache=sys.argv[2], progress=False,
        retry_temporary=os.environ.get("RETRY_TEMPORARY", "1") == "1")
    print(dict(out["hlr_source"].value_counts()), flush=True)
    """
)

#: A process that journals entries (no HTTP) and then dies by kill -9, or waits on stdin.
WRITER = textwrap.dedent(
    """
    import json, os, signal, sys
    from datetime import UTC, datetime
    from pd_hlr.cache import CacheWriter, Entry, HLRCache
    folder, mode = sys.argv[1], sys.argv[2]
    w = CacheWriter(HLRCache(folder, flush_every=10**9, flush_seconds=1e9))
    for line in sys.stdin if mode == "kill" else []:
        n, o, a, r = json.loads(line)
        w.add(Entry(n, o, a, r, datetime.now(UTC)))
    if mode == "kill":
        print("journalled", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    for line in sys.stdin:
        if not line.strip():
            break
        n, o, a, r = json.loads(line)
        w.add(Entry(n, o, a, r, datetime.now(UTC)))
        print("journalled", flush=True)
    w.close()
    """
)


_SPAWNED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_child_outlives_its_test():
    """A test that fails (or hangs out its timeout) never leaves its children running."""
    yield
    while _SPAWNED:
        proc = _SPAWNED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _child(
    tmp_path: Path, numbers_: list[str], server, name: str = "n", go: Path | None = None, **env
) -> subprocess.Popen:
    """A separate process validating ``numbers_`` into the cache folder ``tmp_path / "c"``."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    nums = tmp_path / f"{name}.txt"
    nums.write_text("\n".join(numbers_))
    env = {**os.environ, "T": TOKEN, "URL": server.url, **env}
    cmd = [sys.executable, str(script), str(nums), str(tmp_path / "c")]
    cmd += [str(go)] if go is not None else []
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    _SPAWNED.append(proc)
    return proc


def killed_writer(folder: Path, entries: list[tuple[str, str, str, dict]]) -> None:
    """Journal ``entries`` (number, options, api, result) in a real process that then dies by
    ``kill -9``: leaves an orphan journal, exactly as a killed run does."""
    proc = subprocess.run(
        [sys.executable, "-c", WRITER, str(folder), "kill"],
        input="".join(json.dumps(e) + "\n" for e in entries),
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert proc.returncode == -signal.SIGKILL and "journalled" in proc.stdout, proc.stderr


def _interrupt_after(proc: subprocess.Popen, server, charged: int, sig: int) -> None:
    """Send ``sig`` to ``proc`` once the sandbox has charged ``charged`` lookups."""
    deadline = time.monotonic() + HANG
    while server.stats().total_charged < charged and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(sig)


@pytest.mark.slow
def test_sigkill_mid_run_pays_again_only_for_in_flight(make_sandbox, tmp_path):
    server = make_sandbox(latency=0.02)
    all_numbers = numbers(400)
    proc = _child(tmp_path, all_numbers, server)
    _interrupt_after(proc, server, 120, signal.SIGKILL)
    proc.wait(timeout=HANG)
    paid_before = server.stats().total_charged
    assert 120 <= paid_before < 400
    out = run(pd.DataFrame({"phone": all_numbers}), server, tmp_path / "c", workers=4)
    charged = server.stats().charged
    retried = temporary(all_numbers)  # temporary answers are looked up again by design
    twice = [n for n, c in charged.items() if c > 1 and n not in retried]
    assert len(twice) <= 4, twice  # at most the in-flight requests of the killed run
    assert set(charged) == set(all_numbers)
    assert (out["hlr_source"] == "cache").sum() >= paid_before - 4 - len(retried)


@pytest.mark.slow
def test_ctrl_c_mid_run_saves_everything_answered(make_sandbox, tmp_path):
    server = make_sandbox(latency=0.02)
    all_numbers = numbers(400)
    proc = _child(tmp_path, all_numbers, server)
    _interrupt_after(proc, server, 100, signal.SIGINT)
    assert proc.wait(timeout=HANG) != 0  # KeyboardInterrupt ended the run
    paid = {n for n, c in server.stats().charged.items() if c}
    assert 100 <= len(paid) < 400
    # everything answered before Ctrl-C was folded into a part: no journal or claim is left
    assert not list((tmp_path / "c").glob("journal-*"))
    assert not list((tmp_path / "c").glob("claims-*"))
    server.reset_stats()
    run(pd.DataFrame({"phone": all_numbers}), server, tmp_path / "c", workers=4,
        retry_temporary=True)
    # the re-run looks up only the rest (and the temporary outcomes, by design)
    assert set(server.stats().received) == (set(all_numbers) - paid) | (
        paid & temporary(sorted(paid))
    )


@pytest.mark.slow
@pytest.mark.parametrize("processes", [2, 4])
def test_processes_sharing_a_folder_pay_once_per_number(make_sandbox, tmp_path, processes):
    """Overlapping lists, started together: every number is paid exactly once in all."""
    server = make_sandbox(latency=0.02)
    go = tmp_path / "go"
    lists = [numbers(120, start=60 * i) for i in range(processes)]  # each overlaps the next
    procs = [
        _child(tmp_path, lst, server, f"p{i}", go=go, RETRY_TEMPORARY="0")
        for i, lst in enumerate(lists)
    ]
    time.sleep(1.0)  # let them import; they wait for the go file
    go.touch()
    assert [p.wait(timeout=HANG) for p in procs] == [0] * processes
    sources = [p.stdout.read() for p in procs]
    charged = server.stats().charged
    union = set().union(*lists)
    assert set(charged) == union, (sources, sorted(union - set(charged)))
    assert Counter(charged.values()) == {1: len(union)}, "a number was paid twice"
    assert all("error" not in s for s in sources), sources
    assert not list((tmp_path / "c").glob("claims-*"))


@pytest.mark.slow
def test_a_dead_process_s_claims_are_taken_over(make_sandbox, tmp_path):
    server = make_sandbox()
    folder = tmp_path / "c"
    folder.mkdir()
    claim = textwrap.dedent(
        """
        import os, signal, sys
        from pathlib import Path
        from pd_hlr.cache.claims import Claims
        c = Claims(Path(sys.argv[1]), sys.argv[2], "127.0.0.1")
        mine, others = c.claim(sys.argv[3].split(","))
        assert len(mine) == len(sys.argv[3].split(",")), others
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    wanted = numbers(30)
    proc = subprocess.run(
        [sys.executable, "-c", claim, str(folder), OPTS, ",".join(wanted)], timeout=HANG
    )
    assert proc.returncode == -signal.SIGKILL
    assert list(folder.glob("claims-*")), "the dead process left its claims behind"
    out = run(pd.DataFrame({"phone": wanted}), server, folder)
    assert (out["hlr_source"] == "api").all()
    assert Counter(server.stats().charged.values()) == {1: 30}
    assert not list(folder.glob("claims-*"))


@pytest.mark.slow
def test_kill_9_while_another_waits_pays_at_most_the_in_flight_twice(make_sandbox, tmp_path):
    server = make_sandbox(latency=0.05)
    all_numbers = numbers(300)
    first = _child(tmp_path, all_numbers, server, "a", RETRY_TEMPORARY="0")
    deadline = time.monotonic() + HANG
    while server.stats().total_charged < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    second = _child(tmp_path, all_numbers, server, "b", RETRY_TEMPORARY="0")
    _interrupt_after(first, server, 120, signal.SIGKILL)
    first.wait(timeout=HANG)
    assert second.wait(timeout=HANG) == 0
    charged = server.stats().charged
    assert set(charged) == set(all_numbers)
    twice = [n for n, c in charged.items() if c > 1]
    assert len(twice) <= 4, twice  # the killed process's workers' in-flight lookups
    assert all(c <= 2 for c in charged.values())


@pytest.mark.slow
def test_journals_are_never_folded_before_their_writer_holds_them(tmp_path):
    """Row 15: writers start (and die by kill -9) while other processes fold orphan journals in
    a loop. Every answer a writer journalled must survive."""
    folder = tmp_path / "c"
    folder.mkdir()
    folder_loop = textwrap.dedent(
        """
        import sys, time
        from pd_hlr.cache import HLRCache
        cache, stop = HLRCache(sys.argv[1]), time.monotonic() + float(sys.argv[2])
        while time.monotonic() < stop:
            cache.fold_orphans()
        """
    )
    folders = [
        subprocess.Popen([sys.executable, "-c", folder_loop, str(folder), "60"]) for _ in range(2)
    ]
    journalled: list[str] = []
    try:
        time.sleep(1.0)
        for i in range(12):
            batch = numbers(5, start=5 * i)
            killed_writer(folder, [(n, OPTS, "127.0.0.1", {"to": n, "live": True}) for n in batch])
            journalled += batch
    finally:
        for p in folders:
            p.kill()
            p.wait(timeout=HANG)
    cache = HLRCache(folder)
    cache.fold_orphans()
    assert set(cache.get(journalled, OPTS, "127.0.0.1").index) == set(journalled)
    assert not list(folder.glob("journal-*")) and not list(folder.glob(".journal-*"))


@pytest.mark.slow
def test_two_processes_writing_one_cache_lose_nothing(make_sandbox, tmp_path):
    server = make_sandbox(latency=0.005)
    procs = [
        _child(tmp_path, numbers(150), server, "a"),
        _child(tmp_path, numbers(150, start=100), server, "b"),  # 50 overlap
    ]
    assert [p.wait(timeout=HANG) for p in procs] == [0, 0]
    before = server.stats().requests
    out = run(pd.DataFrame({"phone": numbers(250)}), server, tmp_path / "c", retry_temporary=True)
    retried = temporary(numbers(250))
    assert server.stats().requests == before + len(retried)
    assert set(server.stats().received) >= retried
    assert (out.loc[~out["hlr_number"].isin(retried), "hlr_source"] == "cache").all()


def test_an_unwritable_folder_fails_before_any_request(sb, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    df = pd.DataFrame({"phone": numbers(5)})
    for bad in (tmp_path / "a-file", tmp_path / "a-file" / "cache"):
        with pytest.raises(pd_hlr.CacheNotWritableError) as info:
            run(df, sb, bad)
        msg = str(info.value)
        assert str(bad) in msg and "cache=" in msg and "--cache DIR" in msg and "--no-cache" in msg
        assert info.value.path == str(bad)
        assert isinstance(info.value, PermissionError)
    assert sb.stats().requests == 0


UNPRIVILEGED = textwrap.dedent(
    """
    import os, sys
    import pandas as pd
    import pd_hlr
    url, folder, scratch = sys.argv[1], sys.argv[2], sys.argv[3]
    client = pd_hlr.HLRClient(token=os.environ["T"], base_url=url, workers=2)
    df = pd.DataFrame({"phone": ["+447400000001", "+447400000002"]})
    # warm up every lazy import as root, then drop to nobody: real permission checks from here
    df.hlr.validate("phone", client=client, cache=scratch, progress=False)
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
    out = df.hlr.validate("phone", client=client, cache=folder, progress=False,
                          retry_temporary=False)
    print("warm", dict(out["hlr_source"].value_counts()), flush=True)
    more = pd.DataFrame({"phone": ["+447400000001", "+447400000003"]})
    try:
        more.hlr.validate("phone", client=client, cache=folder, progress=False)
    except pd_hlr.CacheNotWritableError as exc:
        print("refused", exc.path, str(exc).replace(chr(10), " "), flush=True)
    try:  # a folder this user may not even read
        df.hlr.validate("phone", client=client, cache=sys.argv[4], progress=False)
    except pd_hlr.CacheNotWritableError as exc:
        print("unreadable", exc.path, str(exc).replace(chr(10), " "), flush=True)
    """
)


@pytest.mark.skipif(os.geteuid() != 0, reason="drops privileges from root to nobody")
def test_a_read_only_folder_serves_warm_runs_and_refuses_misses_before_paying(sb, tmp_path):
    shared = Path(tempfile.mkdtemp(prefix="pd-hlr-ro-"))  # under /tmp: others may traverse it
    try:
        folder = shared / "cache"
        run(pd.DataFrame({"phone": ["+447400000001", "+447400000002"]}), sb, folder)
        os.chmod(shared, 0o755)
        os.chmod(folder, 0o755)  # readable by everyone, writable by its owner (root) only
        for f in folder.iterdir():
            os.chmod(f, 0o644)
        before = sb.stats().total_charged
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                UNPRIVILEGED,
                sb.url,
                str(folder),
                str(tmp_path / "scratch"),
                str(tmp_path / "scratch"),
            ],
            capture_output=True,
            text=True,
            timeout=HANG,
            env={**os.environ, "T": TOKEN},
        )
    finally:
        shutil.rmtree(shared)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "warm {'cache': 2}"
    assert lines[1].startswith(f"refused {folder} ") and "--no-cache" in lines[1]
    assert lines[2].startswith(f"unreadable {tmp_path / 'scratch'} ") and "be read" in lines[2]
    # the scratch warm-up paid for the two numbers again (another folder); nothing else
    assert sb.stats().total_charged == before + 2
