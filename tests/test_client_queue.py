"""``lookup_many``'s workers: long-lived threads named ``pd_hlr_<k>`` pulling numbers from one
shared queue, never more threads than numbers, each number sent once, every outcome delivered
once to ``on_result``, and no worker left behind when the call returns."""

from __future__ import annotations

import collections
import threading
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
