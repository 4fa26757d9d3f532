"""The cache folder's files: names, locks, the write sequence and the quarantine.

Invariants: the cache touches only what it can prove is its own, a folder holding the marker
``pd_hlr-cache.json`` and in it only regular files whose names match :data:`OWN_NAMES`;
anything else is never read, moved or deleted. A folder without the marker is adopted only when
it is new, empty, or holds nothing but this scheme's files; otherwise it is refused
(:class:`~pd_hlr.errors.CacheFolderError`), and a folder owned by another user is never written
to (it may still be read). Cache files are opened with ``O_NOFOLLOW | O_NONBLOCK`` and used
only when regular: a planted link or FIFO is refused or skipped, never followed or waited on.
The files, one by one: ``docs/internals/cache.md``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import stat
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from .._warnings import warn
from ..errors import CacheFolderError, CacheNotWritableError

logger = logging.getLogger("pd_hlr.cache")

PART_GLOB = "part-*.parquet"
JOURNAL_GLOB = "journal-*.jsonl"
NEW_JOURNAL_GLOB = ".journal-*.new"
CLAIMS_GLOB = "claims-*.txt"
SEQ_FILE = "seq"
CLAIMS_LOCK = "claims.lock"
COMPACTION_LOCK = "compaction.lock"
COMPACTION_RECORD = "compaction.json"

MARKER = "pd_hlr-cache.json"
MARKER_BODY = b'{"pd_hlr_cache": 1, "note": "a pd-hlr cache: see pd_hlr/cache/folder.py"}\n'

_PART_NAME = re.compile(r"^part-s(\d{20})-n(\d+)-[0-9a-f]{12}\.parquet$")
_LEGACY_PART = r"part-\d{8}T\d+-\d+-[0-9a-f]+\.parquet"
_PART = rf"(?:part-s\d{{20}}-n\d+-[0-9a-f]{{12}}\.parquet|{_LEGACY_PART})"
_ID = r"\d+-[0-9a-f]{12}"

#: The exact names of the cache's own files, by kind. Nothing else in a folder is ever touched.
OWN_NAMES: dict[str, re.Pattern[str]] = {
    "part": re.compile(rf"^{_PART}$"),
    "journal": re.compile(rf"^journal-{_ID}\.jsonl$"),
    "new journal": re.compile(rf"^\.journal-{_ID}\.new$"),
    "claims": re.compile(rf"^claims-{_ID}\.txt$"),
    "quarantine": re.compile(rf"^quarantine-(?:\d{{8}}T\d{{6}}-{_ID}\.jsonl|{_PART})$"),
    "temp": re.compile(
        rf"^\.(?:{_PART}|seq|compaction\.json|pd_hlr-cache\.json"
        rf"|quarantine-\d{{8}}T\d{{6}}-{_ID}\.jsonl)(?:\.[0-9a-f]{{8}})?\.tmp$"
    ),
    "fixed": re.compile(
        r"^(?:seq|claims\.lock|compaction\.lock|compaction\.json|pd_hlr-cache\.json)$"
    ),
}
#: Files an operating system drops into any folder: neither the cache's nor a reason to refuse.
HARMLESS = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", ".directory"})


def kind_of(name: str) -> str | None:
    """The kind of cache file ``name`` is (a key of :data:`OWN_NAMES`), or None: not ours.

    >>> kind_of("part-s00000000000000000042-n7-0123456789ab.parquet"), kind_of("seq")
    ('part', 'fixed')
    >>> kind_of("part-00000-1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901-c000.snappy.parquet") is None
    True
    """
    for kind, pattern in OWN_NAMES.items():
        if pattern.match(name):
            return kind
    return None


_WARNED: set[str] = set()


def _skip_special(path: Path, what: str) -> None:
    """Warn once per path about a file named like a cache file that is not a regular file."""
    if str(path) in _WARNED:
        return
    _WARNED.add(str(path))
    warn(
        f"pd_hlr cache: {path} is named like a cache file but is {what}, not a regular file "
        "the cache wrote; it is skipped and left alone (remove it if you did not put it there)",
        RuntimeWarning,
    )


def _what(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "a special file"


def own_files(folder: Path, kind: str) -> list[Path]:
    """The cache's own files of ``kind`` in ``folder``, sorted: regular files whose names match
    :data:`OWN_NAMES` exactly. A link or special file under such a name is skipped (warned
    about once); files of any other name are not looked at."""
    pattern = OWN_NAMES[kind]
    out = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for e in entries:
        if not pattern.match(e.name):
            continue
        try:
            mode = e.stat(follow_symlinks=False).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISREG(mode):
            out.append(Path(e.path))
        else:
            _skip_special(Path(e.path), _what(mode))
    return sorted(out)


class NotRegularFile(OSError):
    """A cache file that is a link or a special file (never followed, never waited on)."""


def open_regular(path: Path, flags: int, mode: int = 0o600) -> int:
    """``os.open`` that never follows a symbolic link and never blocks on a FIFO: the file is
    opened with ``O_NOFOLLOW | O_NONBLOCK`` and kept only if it is a regular file (then the
    descriptor is made blocking again). Raises :class:`NotRegularFile` otherwise."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegularFile(errno.ELOOP, "a symbolic link, not followed", str(path)) from exc
        if exc.errno == errno.ENXIO:  # a FIFO opened for writing with no reader
            raise NotRegularFile(errno.ENXIO, "a FIFO, not a regular file", str(path)) from exc
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(
                errno.EINVAL, f"{_what(st.st_mode)}, not a regular file", str(path)
            )
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: Path) -> bytes:
    """The bytes of the regular file ``path`` (see :func:`open_regular`)."""
    fd = open_regular(path, os.O_RDONLY)
    try:
        return read_all(fd)
    finally:
        os.close(fd)


def read_all(fd: int) -> bytes:
    """Everything from ``fd``'s offset to its end, however long."""
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def refused(folder: Path, why: str, files: list[str] | None = None) -> CacheFolderError:
    return CacheFolderError(
        f"the cache refuses the folder {folder}: {why}. Nothing was read, written, moved or "
        "looked up. Choose a new or empty folder for the cache with cache=... (CLI: --cache "
        "DIR), or turn it off with cache=False (CLI: --no-cache).",
        path=str(folder),
        files=files,
    )


def _content_is_ours(path: Path, kind: str) -> bool:
    """Whether a file named like a cache file holds what the cache writes there (checked only
    when adopting a folder without the marker)."""
    try:
        if kind in ("part", "quarantine") and path.name.endswith(".parquet"):
            import pyarrow.parquet as pq

            names = set(pq.read_schema(path).names)
            return {"number", "options", "api", "checked_at"} <= names
        data = read_regular(path)
    except Exception:  # unreadable, not parquet, not our schema: not ours
        return False
    if kind == "quarantine":
        return True  # lines that were not entries, kept byte for byte
    if kind in ("journal", "new journal"):
        return all(
            not line.strip() or line.lstrip().startswith(b"{") for line in data.split(b"\n")[:1000]
        )
    if kind == "claims":
        return not data or b"\t" in data.partition(b"\n")[0]
    if path.name == "seq":
        return re.fullmatch(rb"\d*\n?", data) is not None
    if path.name == "compaction.json":
        return data.lstrip().startswith(b"{")
    return True  # lock files and temp files: their content means nothing


def claim_folder(folder: Path, *, create: bool) -> bool:
    """Make sure ``folder`` is this cache's (see the module's ownership rule), before anything
    in it is read or written. ``create``: make the folder and write the marker if needed (a
    writer); otherwise a folder that does not exist is fine (nothing to read) and a folder
    without the marker is only checked. Returns whether the folder exists. Raises
    :class:`~pd_hlr.errors.CacheFolderError` for a folder the cache cannot prove is its own."""
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        if not create:
            return False
        ensure_dir(folder)
        st = os.stat(folder)
    except NotADirectoryError as exc:
        raise refused(folder, "it is not a folder") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise refused(folder, "it is not a folder")
    if create and st.st_uid != os.geteuid():  # reading a published (read-only) cache is fine
        raise refused(
            folder,
            f"it is owned by another user (uid {st.st_uid}); a cache is private to one user "
            "(folder 0700, files 0600). A team shares answers by copying part files into each "
            "member's own cache, or by running under one account",
        )
    marker = folder / MARKER
    try:
        if stat.S_ISREG(os.lstat(marker).st_mode):
            return True
        raise refused(folder, f"{MARKER} is not a regular file", [MARKER])
    except FileNotFoundError:
        pass
    foreign: list[str] = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name in HARMLESS:
            continue
        kind = kind_of(entry.name)
        regular = entry.is_file(follow_symlinks=False)
        if kind is None or not regular or not _content_is_ours(Path(entry.path), kind):
            foreign.append(entry.name)
    if foreign:
        shown = ", ".join(foreign[:5]) + (
            f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        )
        raise refused(
            folder,
            f"it is not a pd-hlr cache (no {MARKER}) and holds files the cache did not write "
            f"({shown})",
            foreign,
        )
    if create:
        write_atomic(marker, MARKER_BODY)
        logger.debug("cache: adopted %s (marker written)", folder)
    return True


def unique(prefix: str, suffix: str) -> str:
    """A file name no other process will pick: ``<prefix>-<pid>-<random><suffix>``."""
    return f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:12]}{suffix}"


def part_name(max_seq: int, rows: int) -> str:
    return f"part-s{max(max_seq, 0):020d}-n{rows}-{uuid.uuid4().hex[:12]}.parquet"


def part_info(path: Path) -> tuple[int, int | None]:
    """(highest write sequence, rows) from a part's name; (-1, None) for an older name."""
    m = _PART_NAME.match(path.name)
    return (int(m.group(1)), int(m.group(2))) if m else (-1, None)


def ensure_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)


def not_writable(path: Path, exc: OSError, verb: str = "written") -> CacheNotWritableError:
    """The error for a cache folder that cannot be written (or read), raised before any
    request is sent."""
    reason = exc.strerror or type(exc).__name__
    err = CacheNotWritableError(
        f"the cache folder {path} cannot be {verb} ({reason}); nothing was looked up. "
        "Choose a writable folder with cache=... (CLI: --cache DIR), or turn the cache off "
        "with cache=False (CLI: --no-cache).",
        path=str(path),
    )
    err.__cause__ = exc
    return err


def open_lock(path: Path) -> int:
    """A descriptor on a lock file (created ``0600``; never through a link, never a FIFO)."""
    try:
        return open_regular(path, os.O_RDWR | os.O_CREAT)
    except NotRegularFile as exc:
        raise refused(path.parent, f"{path.name} is {exc.strerror}", [path.name]) from exc


@contextlib.contextmanager
def locked(path: Path, *, shared: bool = False, block: bool = True) -> Iterator[bool]:
    """Hold ``flock`` on the lock file ``path``. Yields False (without the lock) when
    ``block`` is false and another process holds it."""
    fd = open_lock(path)
    try:
        flags = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if block else fcntl.LOCK_NB)
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def still_linked(fd: int, path: Path) -> bool:
    """True when ``path`` still names the file open on ``fd`` (checked after taking its lock:
    another process may have folded and removed it meanwhile)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return own.st_nlink > 0 and (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino)


def write_atomic(path: Path, data: bytes, *, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` through a temp file and ``os.replace``."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


class Sequence:
    """The folder's write sequence: a counter in the file ``seq``, advanced under ``flock``.

    It never goes backwards: :meth:`raise_to` lifts it above anything found in the folder (a
    lost or damaged ``seq`` file, parts copied in from elsewhere), whatever the clocks say.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / SEQ_FILE
        self._fd = open_lock(self.path)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _read(self) -> int | None:
        data = os.pread(self._fd, 64, 0)
        try:
            return int(data.decode("ascii").strip() or "0")
        except (UnicodeDecodeError, ValueError):
            return None

    def _write(self, value: int) -> None:
        os.pwrite(self._fd, f"{value:020d}\n".encode(), 0)

    @contextlib.contextmanager
    def advance(self, n: int = 1) -> Iterator[int]:
        """Hold the sequence lock and take the next ``n`` values in one step: yields the first,
        the caller owns it and the ``n - 1`` after it. The last is written before it is
        yielded, so whatever the caller writes under the lock is ordered by it, and a reader of
        :func:`read_sequence`, which takes the lock shared, sees the values only once the
        caller's write is done."""
        if n < 1:
            raise ValueError(f"a sequence step takes at least one value, not {n}")
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            current = self._read()
            if current is None:
                logger.warning("cache sequence file %s was unreadable; rebuilt", self.path)
                current = 0
            self._write(current + n)
            yield current + 1
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def raise_to(self, floor: int) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            current = self._read()
            if current is None or current < floor:
                self._write(floor)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


def read_sequence(folder: Path) -> int:
    """The folder's write counter now, without creating anything (0 if none). Taken under the
    sequence lock (shared), so a value handed out by :meth:`Sequence.advance` is seen only once
    the entry written under it is in its journal."""
    try:
        fd = open_regular(folder / SEQ_FILE, os.O_RDONLY)
    except NotRegularFile as exc:
        raise refused(folder, f"{SEQ_FILE} is {exc.strerror}", [SEQ_FILE]) from exc
    except OSError:
        return 0
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        data = os.pread(fd, 64, 0)
    except OSError:
        return 0
    finally:
        os.close(fd)  # closing releases the lock
    try:
        return int(data.decode("ascii").strip() or "0")
    except (UnicodeDecodeError, ValueError):
        return 0


def quarantine_lines(
    folder: Path, lines: list[bytes], source: str, reason: str, *, loud: bool = True
) -> Path:
    """Move unreadable journal lines (or entries) aside, byte for byte, into a new side file,
    and warn once, naming it (``loud=False``: a line cut short by a kill, logged at DEBUG).
    Raises OSError when the side file cannot be written (the caller then keeps the source)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = folder / unique(f"quarantine-{stamp}", ".jsonl")
    body = b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines)
    write_atomic(path, body)
    if not loud:
        logger.debug("cache: a line cut short in %s kept aside in %s", source, path)
        return path
    warn(
        f"pd_hlr cache: {len(lines)} unreadable entr{'y' if len(lines) == 1 else 'ies'} from "
        f"{source} moved aside to {path} ({reason}); the rest of the cache is unaffected",
        RuntimeWarning,
    )
    return path


def quarantine_part(path: Path, exc: BaseException) -> Path | None:
    """Move a corrupt part aside (renamed ``quarantine-<name>``), warning once, naming it."""
    target = path.with_name("quarantine-" + path.name)
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return None
        raise
    warn(
        f"pd_hlr cache: corrupt part {path.name} moved aside to {target} "
        f"({type(exc).__name__}: {exc}); the rest of the cache is unaffected",
        RuntimeWarning,
    )
    return target
