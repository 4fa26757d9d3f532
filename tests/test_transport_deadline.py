"""An attempt's deadline without a lock: the attempt (``finish``) and the watchdog (``expire``)
race for one token, in every order; a socket is cut only for an attempt that expired, and never
after the attempt has finished (its connection may be back in the pool by then)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from pd_hlr.transport import _Deadline, _Watchdog


class Sock:
    def __init__(self) -> None:
        self.shutdowns = 0

    def shutdown(self, how: int) -> None:
        self.shutdowns += 1


class Conn:
    def __init__(self) -> None:
        self.sock: Any = Sock()


def test_finished_first_the_watchdog_cuts_nothing() -> None:
    deadline, conn = _Deadline(at=0.0), Conn()
    deadline.attach(conn)
    deadline.finish()
    assert deadline.done
    deadline.expire()
    assert not deadline.expired and conn.sock.shutdowns == 0


def test_expired_first_the_socket_is_cut_and_finish_returns() -> None:
    deadline, conn = _Deadline(at=0.0), Conn()
    deadline.attach(conn)
    deadline.expire()
    assert deadline.expired and deadline.done and conn.sock.shutdowns == 1
    deadline.finish()  # lost the race: the cut is already done, no wait
    deadline.expire()  # once only
    assert conn.sock.shutdowns == 1


def test_expired_before_the_socket_is_known_the_attempt_cuts_it_itself() -> None:
    deadline, conn = _Deadline(at=0.0), Conn()
    deadline.expire()  # the watchdog saw no socket yet
    deadline.attach(conn)
    assert conn.sock.shutdowns == 1


def test_a_connection_without_socket_is_ignored() -> None:
    deadline, conn = _Deadline(at=0.0), Conn()
    conn.sock = None
    deadline.attach(conn)
    deadline.expire()
    assert deadline.expired


@pytest.mark.parametrize("seed", range(20))
def test_racing_threads_decide_once(seed: int) -> None:
    """Many deadlines, each finished by one thread while another expires it: exactly one side
    wins each, a socket is cut only when the watchdog won, and never after ``finish``
    returned (what the attempt saw then is what stays)."""
    pairs = [(_Deadline(at=0.0), Conn()) for _ in range(500)]
    for deadline, conn in pairs:
        deadline.attach(conn)
    start = threading.Barrier(2)
    seen: dict[int, tuple[bool, int]] = {}

    def attempts() -> None:
        start.wait()
        for deadline, conn in pairs[seed % 7 :] + pairs[: seed % 7]:
            deadline.finish()
            seen[id(deadline)] = (deadline.expired, conn.sock.shutdowns)

    def watchdog() -> None:
        start.wait()
        for deadline, _ in pairs:
            deadline.expire()

    threads = [threading.Thread(target=attempts), threading.Thread(target=watchdog)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for deadline, conn in pairs:
        assert deadline.done
        assert conn.sock.shutdowns == (1 if deadline.expired else 0)
        assert seen[id(deadline)] == (deadline.expired, conn.sock.shutdowns)


def test_the_watchdog_expires_only_due_deadlines() -> None:
    now = [0.0]
    dog = _Watchdog(clock=lambda: now[0])
    dog._thread = threading.current_thread()  # no thread: expire_due is driven by hand
    due, later = dog.arm(1.0), dog.arm(5.0)
    finished = dog.arm(1.0)
    dog.release(finished)
    now[0] = 2.0
    assert dog.expire_due(now[0]) == pytest.approx(3.0)
    assert due.expired and not later.expired and not finished.expired
