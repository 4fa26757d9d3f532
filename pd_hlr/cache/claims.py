"""Cross-process claims: a number is paid for by one process at a time.

Before paying, a process claims its numbers, under the folder-wide ``claims.lock``, into its
own ``claims-<pid>-<id>.txt``, ``flock``-ed for as long as it lives: the kernel drops the lock
on exit (``kill -9`` included) and the numbers are free again. Only claims of the same options
and API host conflict. Claims are released once looked up, so a waiter finds the answer in the
cache: after ``kill -9`` only the numbers in flight (at most ``workers``) are paid twice. A
live claimant refreshes its file every quarter of :data:`LEASE_SECONDS`; a waiter that sees a
holder unrefreshed for a whole lease stops with :class:`~pd_hlr.errors.StaleClaimsError`,
never taking the numbers over. Claims and leases in full: ``docs/internals/cache.md``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import StaleClaimsError
from .folder import (
    CLAIMS_LOCK,
    NotRegularFile,
    claim_folder,
    locked,
    open_regular,
    own_files,
    read_all,
    unique,
)

logger = logging.getLogger("pd_hlr.cache")

#: Seconds a claimant may go without refreshing its claims before a waiter gives up on it
#: (it refreshes every quarter of this while it runs).
LEASE_SECONDS = 60.0


@dataclass(frozen=True)
class Holder:
    """Another live claimant: its claims file, its process id, the numbers it holds (of those
    asked) and the file's stamp (inode, modification time, size), which every refresh changes."""

    path: Path
    pid: int | None
    numbers: frozenset[str]
    stamp: tuple[int, int, int]


def _pid(path: Path) -> int | None:
    with contextlib.suppress(IndexError, ValueError):
        return int(path.name.split("-")[1])
    return None  # pragma: no cover - own_files lists only claims-<pid>-<id>.txt


class Claims:
    """This process's claims for one (options, API host) key in a cache folder.

    ``lease``: refresh the claims file every ``lease / 4`` seconds from a daemon thread while
    the claims are open (None: never, for tests that play a suspended process)."""

    def __init__(
        self, folder: Path, options: str, api: str, *, lease: float | None = LEASE_SECONDS
    ) -> None:
        self.folder = folder
        self._header = f"{api}\t{options}\n".encode()
        self.path = folder / unique("claims", ".txt")
        claim_folder(folder, create=True)
        # Created and locked under the claims lock: another process judges claims files only
        # under that lock, so it never sees this one unlocked and takes it for a dead one's.
        with locked(folder / CLAIMS_LOCK):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, self._header)
        self._fd = fd
        self._fd_lock = threading.Lock()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        #: Seconds between two refreshes (a quarter of the lease; None: never refreshed).
        self.every = None if lease is None else lease / 4
        if self.every is not None:
            self._beat = threading.Thread(
                target=self._heartbeat, args=(self.every,), name="pd_hlr-claims", daemon=True
            )
            self._beat.start()

    def __enter__(self) -> Claims:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def refresh(self) -> None:
        """Renew the lease: move the claims file's modification time on (at least by 1 ns,
        whatever the file system clock's grain), so a waiter sees its stamp change."""
        with self._fd_lock:
            if self._fd >= 0:
                now = max(time.time_ns(), os.fstat(self._fd).st_mtime_ns + 1)
                os.utime(self._fd, ns=(now, now))

    def _heartbeat(self, every: float) -> None:
        while not self._stop.wait(every):
            self.refresh()

    def close(self) -> None:
        self._stop.set()
        with self._fd_lock:
            if self._fd >= 0:
                self.path.unlink(missing_ok=True)
                os.close(self._fd)
                self._fd = -1

    def _holders(self) -> list[Holder]:
        """Live claimants of the same key and what they hold (call under the claims lock)."""
        found: list[Holder] = []
        for path in own_files(self.folder, "claims"):
            if path == self.path:
                continue
            try:
                fd = open_regular(path, os.O_RDONLY)
            except (FileNotFoundError, NotRegularFile):
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:  # its owner is alive
                    st = os.fstat(fd)
                    head, _, body = read_all(fd).partition(b"\n")
                    if head + b"\n" == self._header:
                        numbers = frozenset(body.decode("utf-8", "replace").split())
                        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
                        found.append(Holder(path, _pid(path), numbers, stamp))
                else:  # its owner died: take its claims over
                    path.unlink(missing_ok=True)
            finally:
                os.close(fd)
        return found

    def _others(self) -> set[str]:
        """Numbers held by live claimants of the same key (call under the claims lock)."""
        return {n for h in self._holders() for n in h.numbers}

    def claim(self, numbers: Sequence[str]) -> tuple[list[str], list[str]]:
        """Claim every number no live process holds. Returns (claimed, held by others)."""
        with locked(self.folder / CLAIMS_LOCK):
            others = self._others()
            mine = [n for n in numbers if n not in others]
            if mine:
                os.lseek(self._fd, 0, os.SEEK_END)
                os.write(self._fd, ("\n".join(mine) + "\n").encode())
        return mine, [n for n in numbers if n in others]

    def held(self, numbers: Iterable[str]) -> list[str]:
        """The numbers among ``numbers`` that live processes other than this one hold."""
        with locked(self.folder / CLAIMS_LOCK):
            others = self._others()
        return [n for n in numbers if n in others]

    def holders(self, numbers: Iterable[str]) -> list[Holder]:
        """The live claimants holding any of ``numbers`` (each with only those numbers)."""
        wanted = set(numbers)
        with locked(self.folder / CLAIMS_LOCK):
            found = self._holders()
        return [
            Holder(h.path, h.pid, h.numbers & wanted, h.stamp) for h in found if h.numbers & wanted
        ]

    def release(self) -> None:
        """Give back every claim (their answers are journalled, or they failed)."""
        with locked(self.folder / CLAIMS_LOCK):
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, self._header, 0)


class LeaseWatch:
    """A waiter's view of the holders it waits for: says once what it waits for (INFO), warns
    once per holder that stops refreshing (half a lease), and raises
    :class:`~pd_hlr.errors.StaleClaimsError` once a holder's claims file has not changed for a
    whole ``lease`` by ``clock`` (monotonic: a machine asleep does not count)."""

    def __init__(
        self, lease: float = LEASE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.lease = lease
        self.clock = clock
        self._seen: dict[Path, tuple[tuple[int, int, int], float]] = {}
        self._told = False
        self._warned: set[Path] = set()

    def check(self, holders: Sequence[Holder]) -> None:
        now = self.clock()
        if not self._told and holders:
            self._told = True
            waiting = sum(len(h.numbers) for h in holders)
            logger.info(
                "pd_hlr cache: waiting for %d number(s) that process(es) %s are looking up "
                "(claims in %s); their answers are served from the cache as they land",
                waiting,
                ", ".join(str(h.pid) for h in holders),
                holders[0].path.parent,
            )
        for h in holders:
            stamp, since = self._seen.get(h.path, (None, now))
            if stamp != h.stamp:
                self._seen[h.path] = (h.stamp, now)
                continue
            idle = now - since
            if idle >= self.lease:
                raise StaleClaimsError(
                    f"{len(h.numbers)} number(s) this run needs are claimed by process {h.pid} "
                    f"({h.path}), which has not refreshed its claims for {idle:.0f} s (the "
                    f"lease is {self.lease:.0f} s): it is suspended (Ctrl-Z, docker pause, a "
                    "closed laptop lid) or hung. Resume it (fg, kill -CONT, docker unpause) or "
                    "end it, then run again: every answer this run received is in the cache, "
                    "and none of those numbers was paid for twice.",
                    pid=h.pid,
                    path=str(h.path),
                    numbers=len(h.numbers),
                )
            if idle >= self.lease / 2 and h.path not in self._warned:
                self._warned.add(h.path)
                logger.warning(
                    "pd_hlr cache: process %s has not refreshed its claims on %d number(s) for "
                    "%.0f s (suspended?); this run stops waiting for it after %.0f s",
                    h.pid,
                    len(h.numbers),
                    idle,
                    self.lease,
                )
