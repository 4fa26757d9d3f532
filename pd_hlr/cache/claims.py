"""Cross-process claims: a number is paid for by one process at a time.

Before paying for numbers, a process claims them: under the folder-wide lock ``claims.lock`` it
reads every other live claimant's file and appends the numbers nobody holds to its own
``claims-<pid>-<id>.txt``, on which it holds an exclusive ``flock`` for as long as it lives. A
claims file whose lock can be taken belongs to a dead process (the kernel drops ``flock`` on
exit, ``kill -9`` included): it is removed, and its numbers are free again. A claims file names
its request options and API host on its first line; only claims for the same key conflict.

What is claimed is released once looked up (every answer is journalled before that), so a
process waiting for another's claim finds the answer in the cache. After ``kill -9`` the only
numbers paid twice are those the killed process had in flight (at most its ``workers``).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from .folder import CLAIMS_GLOB, CLAIMS_LOCK, ensure_dir, locked, unique


class Claims:
    """This process's claims for one (options, API host) key in a cache folder."""

    def __init__(self, folder: Path, options: str, api: str) -> None:
        self.folder = folder
        self._header = f"{api}\t{options}\n".encode()
        self.path = folder / unique("claims", ".txt")
        ensure_dir(folder)
        # Created and locked under the claims lock: another process judges claims files only
        # under that lock, so it never sees this one unlocked and takes it for a dead one's.
        with locked(folder / CLAIMS_LOCK):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, self._header)
        self._fd = fd

    def __enter__(self) -> Claims:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = -1

    def _others(self) -> set[str]:
        """Numbers held by live claimants of the same key (call under the claims lock)."""
        held: set[str] = set()
        for path in self.folder.glob(CLAIMS_GLOB):
            if path == self.path:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:  # its owner is alive
                    data = b""
                    while chunk := os.read(fd, 1 << 20):
                        data += chunk
                    head, _, body = data.partition(b"\n")
                    if head + b"\n" == self._header:
                        held.update(body.decode("utf-8", "replace").split())
                else:  # its owner died: take its claims over
                    path.unlink(missing_ok=True)
            finally:
                os.close(fd)
        return held

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

    def release(self) -> None:
        """Give back every claim (their answers are journalled, or they failed)."""
        with locked(self.folder / CLAIMS_LOCK):
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, self._header, 0)
