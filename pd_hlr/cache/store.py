"""The cache as a whole: :class:`HLRCache` (reading, maintenance) and :class:`CacheWriter`."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import settings as _settings
from .._warnings import warn
from ..errors import CacheNotWritableError
from ..settings import CACHE_ENV
from . import compaction
from .claims import LEASE_SECONDS, Claims, LeaseWatch
from .entry import BadEntry, Entry, seq_field
from .folder import (
    CLAIMS_GLOB,
    COMPACTION_LOCK,
    claim_folder,
    locked,
    not_writable,
    own_files,
    part_info,
    quarantine_lines,
    read_sequence,
)
from .folder import (
    Sequence as WriteSequence,
)
from .journal import Journal, drop_orphan, journals, orphans, read_journal, take_orphan
from .lookup import MEMO, lookup
from .parts import (
    ANSWER_COLUMNS,
    CACHE_SCHEMA,
    LEAN_COLUMNS,
    entries_to_table,
    newest,
    newest_per_number,
    read_part,
    scan,
    to_pandas_types,
    write_part,
)
from .s3 import is_url

logger = logging.getLogger("pd_hlr.cache")

#: How many times a read lists the parts again when a compaction removed one meanwhile.
_RELIST = 8


def default_cache_path() -> Path:
    """``$PD_HLR_CACHE``, else ``$XDG_CACHE_HOME/pd_hlr``, else ``~/.cache/pd_hlr``
    (``$PD_HLR_CACHE`` may name ``s3://bucket/prefix``: then that text, not a Path)."""
    env = os.environ.get(CACHE_ENV)
    if env and is_url(env):
        return env  # type: ignore[return-value]
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pd_hlr"


def _wanted_array(numbers: Any) -> pa.Array:
    """The wanted numbers as one Arrow array (built once per read)."""
    if isinstance(numbers, pa.ChunkedArray):
        numbers = numbers.combine_chunks()
    if isinstance(numbers, pa.Array):
        return numbers.cast(pa.large_string())
    if isinstance(numbers, pd.Index | pd.Series):
        return pa.array(numbers.array, from_pandas=True).cast(pa.large_string())
    return pa.array(list(numbers), pa.large_string())


def _filter(table: pa.Table, mask: Any) -> pa.Table:
    """``table.filter(mask)``, without copying when the mask keeps every row."""
    if mask.null_count == 0 and (pc.sum(mask).as_py() or 0) == table.num_rows:
        return table
    return table.filter(mask)


def _of_key(table: pa.Table, options: str | None, api: str | None) -> pa.Table:
    """The rows of ``options`` / ``api`` (None: any)."""
    mask = None
    if options is not None:
        mask = pc.equal(table["options"], options)
    if api is not None:
        m = pc.equal(table["api"], api)
        mask = m if mask is None else pc.and_(mask, m)
    return table if mask is None else _filter(table, mask)


class HLRCache:
    """A folder of parquet parts + journals holding every paid answer.

    >>> cache = HLRCache(cache_dir)
    >>> out = df.hlr.validate("phone", cache=cache, client=client, default_region="GB",
    ...                       progress=False)
    >>> cache.stats()["entries"], cache.stats()["parts"]
    (2, 1)

    A lookup reads the key columns of every part, joins them once with the numbers asked, and
    then only the row groups holding a hit (``pd_hlr.cache.lookup``). ``memo=True`` (the
    default) keeps those key columns (the int64 ``key``, with ``seq`` and ``checked_at`` where
    they are needed to rank entries) in a process-wide memo, so a notebook's re-runs read only
    the row groups they need; ``memo=False`` keeps nothing after the call (the Dask path uses
    it). ``compact=False`` turns off the size-tiered merge a writer runs when it closes.
    """

    #: The cache class of an object-store URL (``objects.py`` registers ``ObjectCache`` here:
    #: it builds on this module, so this module does not import it).
    url_cache: ClassVar[type[HLRCache] | None] = None

    def __new__(cls, path: Any = None, *args: Any, **kwargs: Any) -> HLRCache:
        """``s3://bucket/prefix``: the same cache on object storage (``objects.py``)."""
        if cls is HLRCache and is_url(path) and HLRCache.url_cache is not None:
            return super().__new__(HLRCache.url_cache)
        return super().__new__(cls)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        flush_every: int = 1000,
        flush_seconds: float = 10.0,
        fsync: bool = False,
        memo: bool = True,
        compact: bool = True,
    ) -> None:
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"cache path must be a str or os.PathLike, not {type(path).__name__}")
        self.path = Path(path).expanduser()
        self.flush_every = int(flush_every)
        self.flush_seconds = float(flush_seconds)
        self.fsync = bool(fsync)
        self.memo = bool(memo)
        #: Merge parts size-tiered when a writer closes (see ``pd_hlr.cache.compaction``).
        self.auto_compact = bool(compact)

    #: What :meth:`writer` opens (the object store has its own: ``objects.ObjectWriter``).
    _writer_class: Any = None  # CacheWriter, set below the class

    #: How many times a read lists again when something listed was merged away meanwhile,
    #: and the pause (times the attempt) between two listings.
    _relists = _RELIST
    _relist_pause = 0.0

    def __repr__(self) -> str:
        return f"HLRCache({str(self.path)!r})"

    # -- files ----------------------------------------------------------------------------
    def _parts(self) -> list[Path]:
        return own_files(self.path, "part")

    def _own(self, *, create: bool = False) -> bool:
        """Check that the folder is this cache's before touching anything in it (see the
        ownership rule in ``pd_hlr/cache/folder.py``); ``create``: make it and its marker.
        Returns whether the folder exists."""
        try:
            return claim_folder(self.path, create=create)
        except CacheNotWritableError:
            raise
        except OSError as exc:
            raise not_writable(self.path, exc, "written" if create else "read") from exc

    def sequence(self) -> int:
        """The folder's write sequence now: every entry stored now has a ``seq`` at most this,
        every entry written later a higher one — also when parts were copied in from another
        folder or the counter file was lost (the stored entries' own ``seq`` count too)."""
        self._own()
        try:
            return max(read_sequence(self.path), self._max_stored_seq())
        except CacheNotWritableError:
            raise
        except PermissionError as exc:
            raise not_writable(self.path, exc, "read") from exc

    def _max_stored_seq(self) -> int:
        """The highest ``seq`` of any part (from its metadata) or journal entry."""
        parts = max((part_info(p)[0] for p in self._parts()), default=0)
        journal = self._journal_table()
        if journal is None or journal.num_rows == 0:
            return parts
        return max(parts, int(pc.max(journal["seq"]).as_py() or 0))

    # -- reading --------------------------------------------------------------------------
    def _journal_table(self) -> pa.Table | None:
        entries: list[Entry] = []
        for j in journals(self.path):
            entries.extend(read_journal(j).entries)
        if not entries:
            return None
        table, _bad = entries_to_table(entries)  # bad ones are quarantined when folded
        return table

    def _read_parts_one_by_one(
        self, parts: Sequence[Path], columns: Sequence[str]
    ) -> list[pa.Table]:
        """Each part alone: a part that cannot be read is skipped with a warning naming it."""
        out = []
        for p in parts:
            try:
                out.append(read_part(p, columns))
            except FileNotFoundError:
                raise
            except (OSError, ValueError, pa.ArrowException) as exc:
                self._skip_part(p, exc)
        return out

    def _read(self, cols: list[str], read_once: Callable[[], list[pa.Table]]) -> pa.Table:
        """``read_once()`` (journals, then parts), again when a compaction removed a part it
        listed; the tables it gives, as one."""
        self._own()
        try:
            for attempt in range(self._relists):
                try:
                    tables = read_once()
                except FileNotFoundError:
                    # a compaction replaced parts meanwhile: list them again
                    time.sleep(self._relist_pause * attempt)
                    continue
                break
            else:  # pragma: no cover - eight compactions during one read
                raise RuntimeError(f"the parts of {self.path} kept changing while being read")
        except PermissionError as exc:
            raise not_writable(self.path, exc, "read") from exc
        if not tables:
            return CACHE_SCHEMA.empty_table().select(cols)
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def _stored(self, columns: Sequence[str]) -> pa.Table:
        """Every stored row (journals, then parts) with ``columns``, not yet deduplicated."""
        cols = list(dict.fromkeys(columns))

        def read_once() -> list[pa.Table]:
            # Journals before parts: a journal folded meanwhile had its part written first.
            jt = self._journal_table()
            tables = [jt.select(cols)] if jt is not None else []
            return tables + self._read_parts(self._parts(), cols)

        return self._read(cols, read_once)

    def _read_parts(self, parts: Sequence[Path], cols: list[str]) -> list[pa.Table]:
        if not parts:
            return []
        try:
            return list(scan(parts, cols, None, None))  # one scan: no per-part Python work
        except FileNotFoundError:
            raise
        except (OSError, ValueError, pa.ArrowException):
            # one part is unreadable: read them one by one to skip only that one
            return self._read_parts_one_by_one(parts, cols)

    def _skip_part(self, path: Path, exc: BaseException) -> None:
        warn(
            f"pd_hlr cache: skipping unreadable part {path} ({type(exc).__name__}: {exc})",
            RuntimeWarning,
        )

    def _lookup(
        self, wanted: pa.Array, cols: list[str], options: str, api: str, since: int | None
    ) -> pa.Table:
        """The stored rows of the wanted numbers (journals + parts), not yet deduplicated."""

        def read_once() -> list[pa.Table]:
            tables: list[pa.Table] = []
            jt = self._journal_table()  # journals before parts (see _stored)
            if jt is not None:
                jt = _of_key(jt, options, api)
                mask = pc.is_in(jt["number"], value_set=wanted)
                if since is not None:
                    mask = pc.and_(mask, pc.greater(jt["seq"], since))
                tables.append(jt.filter(mask).select(cols))
            parts = self._parts()
            if self.memo and since is None:
                MEMO.forget(self.path, keep=parts)  # parts merged away by any process
            if since is not None:  # only parts holding something written after ``since``
                parts = [p for p in parts if part_info(p)[0] > since]
            found = lookup(
                parts,
                wanted,
                cols,
                options,
                api,
                since=since,
                memo=self.memo,
                on_unreadable=self._skip_part,
            )
            return tables + ([found.select(cols)] if found is not None else [])

        return self._read(cols, read_once)

    def get(
        self,
        numbers: Iterable[str],
        options: str,
        api: str,
        *,
        max_age: str | pd.Timedelta | None = None,
        include_temporary: bool = False,
        temporary_max_age: str | pd.Timedelta | None = None,
        now: datetime | None = None,
        columns: Iterable[str] | None = None,
        since: int | None = None,
    ) -> pd.DataFrame:
        """Servable cached answers for ``numbers`` under ``options``/``api``.

        Returns a frame indexed by number with ``hlr_checked_at``, the API columns of both
        modes (or only ``columns``) and ``hlr_extra``. Entries older than ``max_age`` and
        (unless ``include_temporary``) temporary outcomes are left out, so the caller looks them
        up again; with ``temporary_max_age``, only those older than it. ``since`` (a
        :meth:`sequence` value) serves only answers written after it, temporary ones included:
        what another process paid for while this one waited.

        >>> cache = HLRCache(cache_dir)
        >>> _ = df.hlr.validate("phone", cache=cache, client=client, progress=False)
        >>> hits = cache.get(["+447400123456", "+447400999999"], "detailed=0,roaming=0,route=,"
        ...                  "msisdn=1", "127.0.0.1", columns=["live"])
        >>> hits.index.tolist(), list(hits.columns)
        (['+447400123456'], ['hlr_checked_at', 'live', 'hlr_extra'])
        """
        # The option's own validator: 30 (no unit) is refused, as validate(max_age=30) is.
        max_age = _settings.parse_max_age(max_age)
        temporary_max_age = _settings.parse_max_age(temporary_max_age, "temporary_max_age")
        wanted = _wanted_array(numbers)
        answer_cols = ANSWER_COLUMNS
        if columns is not None:
            asked = set(columns)
            answer_cols = [c for c in ANSWER_COLUMNS if c in asked or c == "hlr_extra"]
        cols = ["number", "key", "seq", "checked_at", "temporary", *answer_cols]

        if len(wanted):
            table = self._lookup(wanted, cols, options, api, since)
        else:
            table = CACHE_SCHEMA.empty_table().select(cols)
        table = newest_per_number(table)
        mask = None
        now = now or datetime.now(UTC)
        if since is None and not include_temporary and table.num_rows:
            mask = pc.invert(pc.fill_null(table["temporary"], False))
            if temporary_max_age is not None and temporary_max_age > pd.Timedelta(0):
                young = now - temporary_max_age.to_pytimedelta()
                mask = pc.or_(mask, pc.greater_equal(table["checked_at"], pa.scalar(young)))
        if max_age is not None and table.num_rows:  # with ``since`` too: a guard against clocks
            cutoff = now - max_age.to_pytimedelta()
            fresh = pc.greater_equal(table["checked_at"], pa.scalar(cutoff))
            mask = fresh if mask is None else pc.and_(mask, fresh)
        if mask is not None:
            table = _filter(table, mask)
        table = table.drop_columns(["temporary", "seq", "key"])
        frame = table.to_pandas(types_mapper=to_pandas_types, self_destruct=True)
        del table
        frame = frame.rename(columns={"checked_at": "hlr_checked_at"}).set_index("number")
        frame.index.name = None
        return frame

    def to_frame(self, *, raw: bool = True) -> pd.DataFrame:
        """Every key's newest entry as a DataFrame (with the raw JSON unless ``raw=False``)."""
        cols = [f.name for f in CACHE_SCHEMA] if raw else LEAN_COLUMNS
        table = newest(self._stored(cols))
        return table.to_pandas(types_mapper=to_pandas_types)

    def stats(self) -> dict[str, Any]:
        """Entries (newest per key), stored rows, temporary entries, parts, journals, bytes,
        oldest and newest answer, the last compaction, quarantined files."""
        table = self._stored(["number", "options", "api", "checked_at", "temporary", "seq"])
        latest = newest(table)
        parts, n_journals, sizes = self._inventory()
        checked = latest["checked_at"]
        last = self._last_compaction()
        return {
            "path": str(self.path),
            "entries": latest.num_rows,
            "stored_rows": table.num_rows,
            "temporary": int(pc.sum(pc.fill_null(latest["temporary"], False)).as_py() or 0),
            "parts": parts,
            "journals": n_journals,
            "bytes": sizes,
            "oldest": pc.min(checked).as_py() if latest.num_rows else None,
            "newest": pc.max(checked).as_py() if latest.num_rows else None,
            "last_compaction": last.get("at") if last else None,
            "quarantined": self._quarantined(),
        }

    def _inventory(self) -> tuple[int, int, int]:
        """(parts, journals, bytes of both)."""
        parts = self._parts()
        files = [*parts, *journals(self.path)]
        sizes = 0
        for f in files:
            with contextlib.suppress(OSError):
                sizes += f.stat().st_size
        return len(parts), len(files) - len(parts), sizes

    def _last_compaction(self) -> dict[str, Any] | None:
        return compaction.last(self.path)

    def _quarantined(self) -> int:
        return len(own_files(self.path, "quarantine"))

    # -- maintenance ----------------------------------------------------------------------
    def _seqs_in_parts(self) -> set[int]:
        """The write-sequence value of every entry in a part (the ``seq`` column only)."""
        seqs: set[int] = set()
        for table in self._read_parts(self._parts(), ["seq"]):
            seqs.update(s for s in table["seq"].to_pylist() if s is not None)
        return seqs

    def fold_orphans(self) -> int:
        """Fold journals whose writer is gone (no lock held) into a part; lines that are not
        entries are moved aside (see :func:`~pd_hlr.cache.folder.quarantine_lines`). Returns
        the number of entries folded."""
        if not self._own():
            return 0
        folded = 0
        in_parts: set[int] | None = None
        for j in orphans(self.path):
            taken = take_orphan(j)
            if taken is None:
                continue
            fd, contents = taken
            try:
                if in_parts is None:
                    in_parts = self._seqs_in_parts()
                # A writer killed after writing a part but before removing its journal left
                # those lines in both: fold only what no part holds (each entry's seq is its own).
                entries = [e for e in contents.entries if e.seq is None or e.seq not in in_parts]
                if entries:
                    table, bad = entries_to_table(entries)
                    write_part(self.path, table, fsync=self.fsync)
                    folded += table.num_rows
                    if bad:
                        quarantine_lines(
                            self.path, [e.to_line() for e, _ in bad], j.name, bad[0][1]
                        )
                if contents.bad:
                    quarantine_lines(self.path, contents.bad, j.name, contents.reasons[0])
                if contents.torn:
                    quarantine_lines(self.path, [contents.torn], j.name, "cut short", loud=False)
            except BaseException:
                os.close(fd)
                raise
            drop_orphan(j, fd)
        return folded

    def compact(self) -> dict[str, int]:
        """Fold orphan journals and merge all parts into one (newest per key), atomically.
        Only parts read in full are removed; one that cannot be read now stays."""
        t0 = time.perf_counter()
        with locked(self.path / COMPACTION_LOCK) if self._own() else contextlib.nullcontext():
            self.fold_orphans()
            parts = self._parts()
            result = compaction.merge(self.path, parts, fsync=self.fsync) if parts else {}
            MEMO.forget(self.path)
        out = {
            "parts_before": len(parts),
            "entries": result.get("entries", 0),
            "unreadable": result.get("unreadable", 0),
        }
        if parts:
            compaction.record(self.path, "manual", {**out}, time.perf_counter() - t0)
        return out

    def auto_compact_now(self) -> dict[str, int] | None:
        """Size-tiered compaction (what a writer does when it closes); skipped while another
        process compacts this folder."""
        if not self._own():
            return None
        with locked(self.path / COMPACTION_LOCK, block=False) as got:
            if not got:
                return None
            result = compaction.tiered(self.path, self._parts, fsync=self.fsync)
            if result is not None:
                MEMO.forget(self.path)
            return result

    def compact_after_writing(self, written: int) -> None:
        """What a writer does when it closes: merge parts size-tiered (when it wrote anything
        and ``compact`` is on); a failure is a warning, never an error."""
        if not (self.auto_compact and written):
            return
        try:
            self.auto_compact_now()
        except (OSError, ValueError, pa.ArrowException) as exc:
            warn(f"pd_hlr cache: compaction skipped ({type(exc).__name__}: {exc})", RuntimeWarning)

    def clear(self) -> int:
        """Delete every part and journal of this cache (its own files only: see the ownership
        rule in ``pd_hlr/cache/folder.py``). Returns the number of files removed."""
        if not self._own():
            return 0
        files = self._parts() + journals(self.path)
        for f in files:
            f.unlink(missing_ok=True)
        MEMO.forget(self.path)
        return len(files)

    @contextlib.contextmanager
    def writer(self) -> Iterator[Any]:
        """A writer for one run; folded into a part on exit, whatever the exit.

        Opening it proves the folder takes writes: :class:`~pd_hlr.errors.CacheNotWritableError`
        otherwise (before any request is sent)."""
        w = self._writer_class(self)
        try:
            yield w
        finally:
            w.close()

    def claimed(self, options: str, api: str, *, since: int | None) -> ClaimedLookups:
        """The cross-process lookup loop for one run (see :class:`ClaimedLookups`)."""
        return ClaimedLookups(self, options, api, since=since)


class _Slot:
    """One answer waiting in the commit queue: its entry, its line but for its ``seq``, and the
    latch its thread waits on (released once: when its group is written, or to make it lead)."""

    __slots__ = ("done", "entry", "error", "latch", "line")

    def __init__(self, entry: Entry, line: tuple[bytes, bytes]) -> None:
        self.entry = entry
        self.line = line
        self.done = False
        self.error: BaseException | None = None
        self.latch: threading.Lock | None = None  # made when it has to wait

    def release(self) -> None:
        """Wake its thread (its group is written, or it leads the next one)."""
        if self.latch is not None:
            self.latch.release()


def _await(latch: threading.Lock) -> BaseException | None:
    """Acquire ``latch``, however often a signal handler raises meanwhile (Ctrl-C in the main
    thread): the answer is in the queue, so its thread sees it through (it may be handed the
    next group to write). Returns the first exception raised meanwhile, to raise after."""
    caught = None
    while True:
        try:
            latch.acquire()
            return caught
        except BaseException as exc:
            caught = caught or exc


def _group_failed(error: BaseException) -> BaseException:
    """What a follower raises when its group's journal write failed (a new exception per
    thread, caused by the leader's)."""
    what = "the journal write of this answer's commit group failed"
    if isinstance(error, OSError) and error.errno is not None:
        new: BaseException = OSError(error.errno, f"{what}: {error.strerror}", error.filename)
    else:
        new = RuntimeError(f"{what} ({type(error).__name__}: {error})")
    new.__cause__ = error
    return new


class CacheWriter:
    """Journals answers as they arrive and folds them into parts. Thread-safe.

    ``add`` returns only once the answer is in the journal (in the OS's hands; synced with
    ``fsync``), so the caller may count it as progress. Answers that arrive together are
    journalled together (*group commit*): a thread that finds no write under way leads; the
    answers arriving while it writes queue up, their threads waiting, holding no lock, on a
    latch of their own. When its write is done the leader hands the queue to its first
    thread, which takes every answer queued as its group, takes their write sequence values in
    one step under the sequence lock (newest still means last written, across processes),
    writes their lines with one ``write`` and releases its followers (who raise if the write
    failed). A group holds at most one answer per thread adding, so a kill -9 loses at most
    the answers in flight and one group. Every ``flush_every`` answers / ``flush_seconds`` the
    journal is swapped for a new one and folded into a part by the thread that found it due,
    while the others go on writing to the new journal.
    """

    def __init__(self, cache: HLRCache) -> None:
        self.cache = cache
        self._mutex = threading.Lock()
        self._queue: list[_Slot] = []  # answers waiting for the write under way
        self._committing = False  # a leader is writing (or handing over to the next)
        self._idle = threading.Condition(self._mutex)  # flush and close wait on it
        self._pending: list[Entry] = []  # in the current journal, not yet in a part
        self._unfolded: list[tuple[Journal, list[Entry]]] = []  # swapped out, to fold
        self._fold_lock = threading.Lock()  # one part written at a time
        self._last_fold = time.monotonic()
        #: answers journalled, and the commit groups they took (one write, one sequence step
        #: each)
        self.written = 0
        self.commits = 0
        self._journal: Journal | None = None
        self._closed = False
        cache._own(create=True)
        try:
            self._journal = Journal(cache.path, fsync=cache.fsync)
            self._seq = WriteSequence(cache.path)
        except CacheNotWritableError:
            if self._journal is not None:
                self._journal.retire()
            raise
        except OSError as exc:
            raise not_writable(cache.path, exc) from exc
        self._seq.raise_to(cache._max_stored_seq())
        cache.fold_orphans()

    def add(self, entry: Entry) -> None:
        """Make one answer durable now (with the others arriving meanwhile); fold into a part
        every N answers / T seconds."""
        try:
            entry = entry.checked()
            line = entry.line_parts()  # encoded here, not by the leader
        except BadEntry as exc:
            text = repr(entry).encode("ascii", "backslashreplace")
            quarantine_lines(self.cache.path, [text], "a paid answer", str(exc))
            return
        slot = _Slot(entry, line)
        latch = None
        with self._mutex:
            if self._committing:
                slot.latch = latch = threading.Lock()
                latch.acquire()
                self._queue.append(slot)
            else:
                self._committing = True
        interrupted = None
        group = [slot]
        if latch is not None:
            interrupted = _await(latch)  # released when its group is written, or to lead
            if slot.done:
                if interrupted is not None:
                    raise interrupted
                if slot.error is not None:
                    raise _group_failed(slot.error)
                return
            with self._mutex:  # lead: the queue (this slot first) is the group
                group, self._queue = self._queue, []
        self._lead(group)
        if interrupted is not None:
            raise interrupted

    def _lead(self, group: list[_Slot]) -> None:
        """Write ``group`` (no lock held but the sequence lock), hand the queue to its first
        thread (or mark the writer idle), release the followers; fold if due."""
        fold = False
        error: BaseException | None = None
        try:
            if self._closed:  # an answer after close: said plainly, no journal left behind
                raise ValueError(f"the cache writer of {self.cache.path} is closed")
            if self._journal is None:  # only a leader (or close, when none is) touches it
                self._journal = Journal(self.cache.path, fsync=self.cache.fsync)
            with self._seq.advance(len(group)) as first:
                self._journal.write(
                    b"".join(
                        s.line[0] + seq_field(first + i) + s.line[1] for i, s in enumerate(group)
                    )
                )
            entries = [s.entry.with_seq(first + i) for i, s in enumerate(group)]
        except BaseException as exc:
            error = exc
            raise
        finally:
            with self._mutex:
                if error is None:
                    self._pending.extend(entries)
                    self.written += len(entries)
                    self.commits += 1
                    fold = len(self._pending) >= self.cache.flush_every or (
                        time.monotonic() - self._last_fold >= self.cache.flush_seconds
                    )
                    if fold:
                        self._swap_locked()
                following = self._queue[0] if self._queue else None
                if following is None:
                    self._committing = False
                    self._idle.notify_all()
            for s in group[1:]:
                s.error = error
                s.done = True
                s.release()
            if following is not None:
                following.release()  # it leads the next group
        if fold:
            self._fold()

    def _swap_locked(self) -> None:
        """Set the current journal and its answers aside for folding (under the mutex, with no
        group being written); the next leader opens a new journal."""
        self._last_fold = time.monotonic()
        if self._journal is None:
            return
        if self._pending:
            self._unfolded.append((self._journal, self._pending))
        else:  # nothing in it but its first byte (or a write cut back)
            self._journal.retire()
        self._journal = None
        self._pending = []

    def _fold(self) -> None:
        """Fold every journal set aside into one part, then retire them: a journal is removed
        only once every line in it is in a part. On failure they stay set aside (and on disk)."""
        with self._fold_lock:
            with self._mutex:
                batches, self._unfolded = self._unfolded, []
            if not batches:
                return
            try:
                table, bad = entries_to_table([e for _, es in batches for e in es])
                write_part(self.cache.path, table, fsync=self.cache.fsync)
                if bad:
                    lines = [e.to_line() for e, _ in bad]
                    quarantine_lines(self.cache.path, lines, "a run", bad[0][1])
            except BaseException:
                with self._mutex:
                    self._unfolded[:0] = batches
                raise
            for journal, _ in batches:
                journal.retire()

    def _quiet(self) -> None:
        """Wait (holding the mutex) until no group is being written or queued."""
        while self._committing:
            self._idle.wait()

    def flush(self) -> None:
        """Fold what is journalled into a part now."""
        with self._mutex:
            self._quiet()
            self._swap_locked()
        self._fold()

    def close(self) -> None:
        """Fold what is pending (if that fails, the journals stay for the next reader), then
        merge parts size-tiered (see ``pd_hlr.cache.compaction``)."""
        try:
            self.flush()
        finally:
            with self._mutex:
                self._quiet()
                left = [j for j, _ in self._unfolded]
                if self._journal is not None:
                    left.append(self._journal)
                self._unfolded, self._journal = [], None
                self._closed = True
            for journal in left:
                journal.close()
            self._seq.close()
        self.cache.compact_after_writing(self.written)


HLRCache._writer_class = CacheWriter


class ClaimedLookups:
    """One run's lookups, paid once across every process sharing the cache folder.

    ``run(numbers, lookup)``: claim what no live process holds and look those up (each answer
    is journalled as it arrives); wait for the numbers others hold, serving their answers from
    the cache as they land; claim what they gave back unanswered; repeat until nothing is left.
    A holder that stops refreshing its claims for ``lease`` seconds (suspended) ends the wait
    with :class:`~pd_hlr.errors.StaleClaimsError` (see ``pd_hlr.cache.claims``).
    ``served`` is what other processes paid for during this run (a ``get`` frame).
    """

    def __init__(
        self,
        cache: HLRCache,
        options: str,
        api: str,
        *,
        since: int | None,
        poll: float = 0.05,
        max_poll: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        lease: float = LEASE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cache = cache
        self.options = options
        self.api = api
        self.since = cache.sequence() if since is None else since
        self.poll = poll
        self.max_poll = max_poll
        self.sleep = sleep
        self.lease = lease
        self.clock = clock
        self._served: list[pd.DataFrame] = []
        self.served_numbers: set[str] = set()

    def _serve(self, numbers: list[str], on_served: Callable[[int], None] | None) -> list[str]:
        """Serve what others answered since this run began; return the rest."""
        if not numbers:
            return numbers
        fresh = self.cache.get(numbers, self.options, self.api, since=self.since)
        if not len(fresh):
            return numbers
        self._served.append(fresh)
        got = set(fresh.index)
        self.served_numbers |= got
        if on_served is not None:
            on_served(len(got))
        return [n for n in numbers if n not in got]

    def run(
        self,
        numbers: Sequence[str],
        lookup: Callable[[list[str]], Any],
        on_served: Callable[[int], None] | None = None,
    ) -> None:
        pending = list(numbers)
        watch = LeaseWatch(self.lease, self.clock)
        with Claims(self.cache.path, self.options, self.api, lease=self.lease) as claims:
            while pending:
                mine, others = claims.claim(pending)
                try:
                    mine = self._serve(mine, on_served)  # answered between our read and claim
                    if mine:
                        lookup(mine)
                finally:
                    claims.release()
                pending = others
                delay = self.poll
                while pending:
                    pending = self._serve(pending, on_served)
                    if not pending:
                        break
                    holders = claims.holders(pending)
                    if sum(len(h.numbers) for h in holders) < len(pending):
                        break  # some were given back unanswered: claim them
                    watch.check(holders)  # says what it waits for; stops at a stale lease
                    self.sleep(delay)
                    delay = min(delay * 1.5, self.max_poll)

    def served(self) -> pd.DataFrame | None:
        """What other processes answered for this run (None when nothing)."""
        if not self._served:
            return None
        return pd.concat(self._served) if len(self._served) > 1 else self._served[0]


__all__ = ["CLAIMS_GLOB", "CacheWriter", "ClaimedLookups", "HLRCache", "default_cache_path"]
