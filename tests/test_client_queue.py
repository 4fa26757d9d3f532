"""``lookup_many``'s workers: long-lived threads named ``pd_hlr_<k>`` pulling numbers from one
shared queue, never more threads than numbers, each number sent once, every outcome delivered
once to ``on_result``, and no worker left behind when the call returns."""

from __future__ import annotations

import collections
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from pd_hlr import sandbox

from .conftest import bounded


@pytest.mark.parametrize(("workers", "count"), [(1, 5), (4, 40), (16, 7)])
def test_workers_share_one_queue_and_deliver_each_number_once(
    make_sandbox: Callable[..., sandbox.Sandbox],
    client_for: Callable[..., Any],
    workers: int,
    count: int,
) -> None:
    server = make_sandbox(latency=0.005)
    client = client_for(server, workers=workers)
    numbers = [f"+4479{i:08d}" for i in range(count)]
    delivered: collections.Counter[str] = collections.Counter()
    threads: set[str] = set()
    lock = threading.Lock()

    def on_result(number: str, outcome: Any) -> None:
        with lock:
            delivered[number] += 1
            threads.add(threading.current_thread().name)

    before = set(threading.enumerate())
    out = bounded(lambda: client.lookup_many(numbers + numbers[:3], on_result=on_result))
    assert list(out) == numbers and delivered == dict.fromkeys(numbers, 1)
    assert server.stats().charged == dict.fromkeys(numbers, 1)
    assert threads <= {f"pd_hlr_{k}" for k in range(min(workers, count))}
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("pd_hlr_")]


def test_ctrl_c_returns_only_after_every_delivery_has_finished(
    make_sandbox: Callable[..., sandbox.Sandbox], client_for: Callable[..., Any]
) -> None:
    """A Ctrl-C lands while the caller waits for a worker that is still delivering (a slow
    journal write, say): ``lookup_many`` raises only once that delivery has finished. (On
    Python 3.11 an interrupted ``Thread.join`` marks the running thread stopped; a second
    ``join`` would then not wait for it.)"""
    server = make_sandbox()
    client = client_for(server, workers=2)
    delivered: list[str] = []
    finished: list[str] = []
    lock = threading.Lock()

    def on_result(number: str, outcome: Any) -> None:
        with lock:
            delivered.append(number)
            first = len(delivered) == 1
        if first:  # a real SIGINT to the main thread, as Ctrl-C sends
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # type: ignore[arg-type]
        # pd_hlr_0, whom the caller waits for first, is still delivering when Ctrl-C lands
        time.sleep(0.5 if threading.current_thread().name == "pd_hlr_0" else 0.1)
        with lock:
            finished.append(number)

    with pytest.raises(KeyboardInterrupt):
        client.lookup_many([f"+4479{i:08d}" for i in range(50)], on_result=on_result)
    with lock:
        assert delivered and sorted(finished) == sorted(delivered)
    assert set(server.stats().charged) == set(delivered)


def test_a_second_ctrl_c_while_answers_are_delivered_still_waits_for_them(
    make_sandbox: Callable[..., sandbox.Sandbox], client_for: Callable[..., Any]
) -> None:
    """Ctrl-C twice (the usual impatience in a notebook): the second lands while the caller
    waits for the answers in flight. ``lookup_many`` still raises only once every paid answer
    has been delivered (to the journal, in a run), and raises the first interrupt."""
    server = make_sandbox()
    client = client_for(server, workers=2)
    seen: list[int] = []  # interrupts the main thread has handled
    delivered: list[str] = []
    finished: list[str] = []
    lock = threading.Lock()

    def on_sigint(signum: int, frame: Any) -> None:
        seen.append(signum)
        raise KeyboardInterrupt(f"interrupt {len(seen)}")

    def interrupt_and_wait(count: int) -> None:
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # type: ignore[arg-type]
        for _ in range(2000):  # until the main thread has handled it (bounded, not timed)
            if len(seen) >= count:
                return
            time.sleep(0.005)

    def on_result(number: str, outcome: Any) -> None:
        with lock:
            delivered.append(number)
            first = len(delivered) == 1
        if first:  # this delivery is still under way when both interrupts are handled
            interrupt_and_wait(1)
            time.sleep(0.05)  # the caller is waiting for this worker by now
            interrupt_and_wait(2)
        with lock:
            finished.append(number)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        with pytest.raises(KeyboardInterrupt, match="interrupt 1"):
            client.lookup_many([f"+4479{i:08d}" for i in range(50)], on_result=on_result)
        with lock:
            assert len(seen) == 2 and delivered and sorted(finished) == sorted(delivered)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert set(server.stats().charged) == set(delivered)
