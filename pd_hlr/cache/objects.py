"""The cache on object storage: ``HLRCache("s3://bucket/prefix")``, shared by a team.

The same cache as a folder (one schema, one read path, one ranking by write sequence, shared
with :class:`~pd_hlr.cache.HLRCache`), on objects; only what touches storage differs, behind
the object-store seam (``s3.py``). Invariants: no object is changed in place (a part is one
PUT: readers see all of it or nothing); the marker, commit groups and ``claims.json`` change
only by conditional writes (``If-None-Match: *``, ``If-Match``); compaction deletes only objects
it read in full; a group number is never reused; a claimer holds at most :data:`CLAIM_CHUNK`
numbers and renews its lease, so one resumed after a takeover pays twice for at most that many,
a killed one for its in-flight requests. The objects, compaction, claims and leases in full:
``docs/internals/cache.md``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import random
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from .._warnings import warn
from ..errors import CacheFolderError, CacheNotWritableError
from . import compaction
from .claims import LEASE_SECONDS
from .entry import BadEntry, Entry
from .folder import MARKER, MARKER_BODY, OWN_NAMES, part_info
from .journal import parse_journal
from .lookup import MEMO
from .parts import encode_part, entries_to_table, newest, read_part
from .s3 import ObjectInfo, S3Store
from .store import ClaimedLookups, HLRCache

logger = logging.getLogger("pd_hlr.cache")

#: Write sequence values per commit group: entry ``i`` of group ``g`` is ``g * GROUP_SPAN + i``.
GROUP_SPAN = 1 << 16
#: Most answers in one commit group.
GROUP_MAX = 4096
#: Most numbers one claimer holds at once (bounds what a resumed, taken-over claimer repays).
CLAIM_CHUNK = 64
CLAIMS_OBJECT = "claims.json"
COMPACTION_OBJECT = "compaction.json"

_GROUP = re.compile(r"^journal-g(\d{20})\.jsonl$")
#: The exact names of the cache's own objects. Nothing else under the prefix is ever touched.
OBJECT_NAMES: dict[str, re.Pattern[str]] = {
    "part": OWN_NAMES["part"],
    "group": _GROUP,
    "quarantine": re.compile(r"^quarantine-\d{8}T\d{6}-[0-9a-f]{12}\.jsonl$"),
    "fixed": re.compile(r"^(?:claims\.json|compaction\.json|pd_hlr-cache\.json)$"),
}


def object_kind(name: str) -> str | None:
    """The kind of cache object ``name`` is, or None: not ours.

    >>> object_kind("journal-g00000000000000000007.jsonl"), object_kind("data.csv")
    ('group', None)
    """
    for kind, pattern in OBJECT_NAMES.items():
        if pattern.match(name):
            return kind
    return None


def group_name(group: int) -> str:
    return f"journal-g{group:020d}.jsonl"


def group_of(name: str) -> int:
    m = _GROUP.match(name)
    return int(m.group(1)) if m else -1


class ObjectPart:
    """A part on the store, as the read path takes it: ``name``, ``open()`` (ranged reads),
    ``memo_id`` (immutable: its URL and size name its content)."""

    def __init__(self, store: S3Store, info: ObjectInfo) -> None:
        self.store = store
        self.info = info
        self.name = info.name

    @property
    def memo_id(self) -> tuple[str, int, int]:
        return (str(self), self.info.size, 0)

    def open(self) -> Any:
        return self.store.open(self.name, self.info.size)

    def __str__(self) -> str:
        return self.store.url_of(self.name)

    def __repr__(self) -> str:
        return f"ObjectPart({str(self)!r})"


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S")


class ObjectCache(HLRCache):
    """:class:`~pd_hlr.cache.HLRCache` on an object store (``s3://bucket/prefix``).

    Made by ``HLRCache("s3://…")``; takes the same arguments, plus ``lease`` (seconds a
    claimer may go unrenewed before its numbers are taken over)."""

    def __init__(
        self,
        path: str,
        *,
        flush_every: int = 1000,
        flush_seconds: float = 10.0,
        fsync: bool = False,
        memo: bool = True,
        compact: bool = True,
        lease: float = LEASE_SECONDS,
    ) -> None:
        self.url = str(path).rstrip("/")
        self.store = S3Store(self.url)
        self.path = self.url  # type: ignore[assignment]  # what messages name
        self.flush_every = int(flush_every)
        self.flush_seconds = float(flush_seconds)
        self.fsync = bool(fsync)
        self.memo = bool(memo)
        self.auto_compact = bool(compact)
        self.lease = float(lease)
        self._owned = False
        # the entries of each commit group read, by (name, ETag): a group is never rewritten
        # with other answers (created once, then only emptied), so it is read once per run
        self._group_entries: dict[tuple[str, str], list[Entry]] = {}

    # several writers fold and merge at once: list again more patiently than a folder does
    _relists = 64
    _relist_pause = 0.01

    def __repr__(self) -> str:
        return f"HLRCache({self.url!r})"

    def __reduce__(self) -> Any:
        settings: dict[str, Any] = {
            "flush_every": self.flush_every,
            "flush_seconds": self.flush_seconds,
            "fsync": self.fsync,
            "memo": self.memo,
            "compact": self.auto_compact,
            "lease": self.lease,
        }
        return (functools.partial(HLRCache, **settings), (self.url,))

    # -- objects ----------------------------------------------------------------------------
    def _objects(self, kind: str, start: str = "") -> list[ObjectInfo]:
        pattern = OBJECT_NAMES[kind]
        return [o for o in self.store.list(start) if pattern.match(o.name)]

    def _parts(self) -> list[ObjectPart]:  # type: ignore[override]
        return [ObjectPart(self.store, o) for o in self._objects("part", "part-")]

    def _group_names(self) -> list[ObjectInfo]:
        """Every group object, the emptied ones (folded: see :meth:`_retire`) included."""
        return self._objects("group", "journal-g")

    def _groups(self) -> list[ObjectInfo]:
        """The group objects that hold answers (not yet folded)."""
        return [o for o in self._group_names() if o.size > 0]

    def _retire(self, name: str) -> None:
        """A folded group is emptied, not deleted: its name stays taken, so no writer with an
        older listing can create that group number again (see the module's doc); emptied
        groups are deleted by compaction once older than two leases, the newest one kept."""
        self.store.put(name, b"")

    def _drop_retired(self) -> None:
        names = self._group_names()
        if len(names) < 2:
            return
        newest = max(names, key=lambda o: group_of(o.name))
        cutoff = time.time() - 2 * self.lease
        for o in names:
            if o.size == 0 and o is not newest and o.mtime < cutoff:
                self.store.delete(o.name)

    def _own(self, *, create: bool = False) -> bool:
        """The prefix is this cache's (marker), or new / holding only cache objects (then
        adopted when ``create``); anything else is refused, as a folder is."""
        if self._owned:
            return True
        try:
            objects = self.store.list(folders=True)
        except FileNotFoundError as exc:  # no such bucket
            if create:
                raise CacheNotWritableError(
                    f"the cache {self.url} cannot be written (no such bucket); nothing was "
                    "looked up",
                    path=self.url,
                ) from exc
            return False
        except OSError as exc:
            raise CacheNotWritableError(
                f"the cache {self.url} cannot be {'written' if create else 'read'} ({exc}); "
                "nothing was looked up. Check the AWS configuration (AWS_ENDPOINT_URL, "
                "AWS_PROFILE, ...), or turn the cache off with cache=False (CLI: --no-cache).",
                path=self.url,
            ) from exc
        names = [o.name for o in objects]
        if MARKER in names:
            self._owned = True
            return True
        foreign = [n for n in names if object_kind(n) is None]
        if foreign:
            shown = ", ".join(foreign[:5]) + (
                f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
            )
            raise CacheFolderError(
                f"the cache refuses {self.url}: it is not a pd-hlr cache (no {MARKER}) and "
                f"holds objects the cache did not write ({shown}). Nothing was read, written, "
                "moved or looked up. Choose a new or empty prefix for the cache.",
                path=self.url,
                files=foreign,
            )
        if not create:
            return bool(names)
        try:
            self.store.create(MARKER, MARKER_BODY)
        except OSError as exc:
            raise CacheNotWritableError(
                f"the cache {self.url} cannot be written ({exc}); nothing was looked up",
                path=self.url,
            ) from exc
        self._owned = True
        return True

    def sequence(self) -> int:
        """The write sequence now (see :meth:`HLRCache.sequence`): every stored entry's
        ``seq`` is at most this, every entry written later has a higher one."""
        self._own()
        groups = max((group_of(o.name) for o in self._group_names()), default=-1)
        top = (groups + 1) * GROUP_SPAN - 1 if groups >= 0 else 0
        return max([top, *(part_info(Path(p.name))[0] for p in self._parts())])

    def _next_group(self) -> int:
        groups = max((group_of(o.name) for o in self._group_names()), default=0)
        parts = max((part_info(Path(p.name))[0] for p in self._parts()), default=0)
        return max(groups, parts // GROUP_SPAN) + 1

    # -- reading ----------------------------------------------------------------------------
    def _journal_table(self) -> pa.Table | None:
        entries: list[Entry] = []
        seen: dict[tuple[str, str], list[Entry]] = {}
        names = self._group_names()
        top = max((group_of(o.name) for o in names), default=-1)
        for g in (o for o in names if o.size > 0):
            key = (g.name, g.etag)
            got = self._group_entries.get(key)
            if got is None:
                try:
                    data, etag = self.store.get(g.name)
                except FileNotFoundError:
                    logger.debug("cache: group %s folded while read; listing again", g.name)
                    raise  # folded meanwhile: its part was written first, so list again
                got = parse_journal(data).entries
                if etag != g.etag:  # emptied since listed (its part was written first)
                    key = (g.name, etag)
            seen[key] = got
            entries.extend(got)
        # keep only the groups still holding answers, and those committed since the listing
        # (a copy first: writer threads add their groups to it meanwhile)
        seen.update((k, v) for k, v in dict(self._group_entries).items() if group_of(k[0]) > top)
        self._group_entries = seen
        if not entries:
            return None
        table, _bad = entries_to_table(entries)
        return table

    def _read_parts(self, parts: Sequence[Any], cols: list[str]) -> list[pa.Table]:
        out = []
        for p in parts:
            try:
                out.append(read_part(p.open(), cols))
            except FileNotFoundError:
                logger.debug("cache: part %s merged away while read; listing again", p.name)
                raise
            except (OSError, ValueError, pa.ArrowException) as exc:
                self._skip_part(p, exc)
        return out

    def _skip_part(self, path: Any, exc: BaseException) -> None:
        """A part that failed mid-read because a compaction deleted it meanwhile (its HEAD
        passed, a ranged GET found nothing) is listed again, like one gone before the read;
        only a part that is still there and unreadable is skipped with a warning."""
        if isinstance(path, ObjectPart) and not isinstance(exc, FileNotFoundError):
            try:
                gone = not self.store.exists(path.name)
            except OSError:
                gone = False  # cannot tell: skipped with a warning, as any unreadable part
            if gone:
                logger.debug("cache: part %s merged away while read", path.name)
                raise FileNotFoundError(2, "merged away while read", str(path)) from exc
        super()._skip_part(path, exc)

    def _inventory(self) -> tuple[int, int, int]:
        parts = self._objects("part", "part-")
        groups = self._groups()
        return len(parts), len(groups), sum(o.size for o in (*parts, *groups))

    def _last_compaction(self) -> dict[str, Any] | None:
        try:
            info = json.loads(self.store.get(COMPACTION_OBJECT)[0])
        except (OSError, ValueError):
            return None
        return info if isinstance(info, dict) else None

    def _quarantined(self) -> int:
        return len(self._objects("quarantine", "quarantine-"))

    # -- writing ----------------------------------------------------------------------------
    def _put_part(self, table: pa.Table) -> str | None:
        encoded = encode_part(table)
        if encoded is None:
            return None
        name, data = encoded
        self.store.put(name, data)
        return name

    def quarantine(self, lines: list[bytes], source: str, reason: str) -> None:
        name = f"quarantine-{_stamp()}-{uuid.uuid4().hex[:12]}.jsonl"
        self.store.put(name, b"".join(x if x.endswith(b"\n") else x + b"\n" for x in lines))
        warn(
            f"pd_hlr cache: {len(lines)} unreadable entr{'y' if len(lines) == 1 else 'ies'} "
            f"from {source} moved aside to {self.store.url_of(name)} ({reason}); the rest of "
            "the cache is unaffected",
            RuntimeWarning,
        )

    def _fold(self, groups: Sequence[ObjectInfo]) -> int:
        """Rewrite ``groups`` into one part, then delete them (only those read in full)."""
        entries: list[Entry] = []
        done = []
        for g in groups:
            try:
                data, _ = self.store.get(g.name)
            except FileNotFoundError:
                continue  # folded by another process meanwhile
            contents = parse_journal(data)
            entries.extend(contents.entries)
            if contents.bad:
                self.quarantine(contents.bad, g.name, contents.reasons[0])
            done.append(g)
        if entries:
            table, bad = entries_to_table(entries)
            self._put_part(table)
            if bad:
                self.quarantine([e.to_line() for e, _ in bad], "a group", bad[0][1])
        for g in done:
            self._retire(g.name)
        return len(entries)

    def fold_orphans(self, *, older_than: float | None = None) -> int:
        """Fold commit groups into a part (those older than ``older_than`` seconds by the
        store's clock, when given: a live writer folds its own)."""
        if not self._own():
            return 0
        groups = self._groups()
        if older_than is not None and groups:
            now = time.time()
            groups = [g for g in groups if now - g.mtime >= older_than]
        return self._fold(groups) if groups else 0

    def _merge(self, parts: Sequence[ObjectPart]) -> dict[str, int]:
        """Merge ``parts`` into one new part; delete only those read in full."""
        tables, done, unreadable = [], [], 0
        for p in parts:
            try:
                tables.append(read_part(p.open()))
            except FileNotFoundError:
                continue  # merged away by another process meanwhile
            except (OSError, ValueError, pa.ArrowException) as exc:
                try:
                    self._skip_part(p, exc)
                except FileNotFoundError:
                    continue  # merged away while read
                unreadable += 1
                continue
            done.append(p)
        merged = newest(pa.concat_tables(tables)) if tables else None
        if merged is not None and merged.num_rows and len(done) > 1:
            self._put_part(merged)
            for p in done:
                self.store.delete(p.name)
        return {
            "parts_in": len(done),
            "entries": merged.num_rows if merged is not None else 0,
            "unreadable": unreadable,
        }

    def _record(self, kind: str, result: dict[str, Any], seconds: float) -> None:
        info = {"at": datetime.now(UTC).isoformat(), "kind": kind, "seconds": round(seconds, 3)}
        info.update(result)
        with contextlib.suppress(OSError):
            self.store.put(COMPACTION_OBJECT, json.dumps(info).encode())

    def compact(self) -> dict[str, int]:
        """Fold every commit group and merge all parts into one (newest per key). Deletes
        only the objects it rewrote."""
        t0 = time.perf_counter()
        if not self._own():
            return {"parts_before": 0, "entries": 0, "unreadable": 0}
        self.fold_orphans()
        parts = self._parts()
        result = self._merge(parts) if len(parts) > 1 else {}
        self._drop_retired()
        MEMO.forget(self.url)
        out = {
            "parts_before": len(parts),
            "entries": result.get("entries", 0),
            "unreadable": result.get("unreadable", 0),
        }
        if len(parts) > 1:
            self._record("manual", dict(out), time.perf_counter() - t0)
        return out

    def auto_compact_now(self) -> dict[str, int] | None:
        """Size-tiered merging (see ``pd_hlr.cache.compaction``), as a writer does on close."""
        if not self._own():
            return None
        t0 = time.perf_counter()
        with contextlib.suppress(OSError):
            self._drop_retired()
        total = {"parts_in": 0, "entries": 0, "merges": 0, "unreadable": 0}
        for _ in range(64):
            todo = compaction.plan(
                [(p, part_info(Path(p.name))[1] or 0) for p in self._parts()]
            )
            if not todo:
                break
            result = self._merge(todo)
            if result["parts_in"] < 2:
                break
            for k in ("parts_in", "entries", "unreadable"):
                total[k] += result[k]
            total["merges"] += 1
        if not total["merges"]:
            return None
        MEMO.forget(self.url)
        self._record("auto", total, time.perf_counter() - t0)
        return total

    def clear(self) -> int:
        """Delete every part and commit group (the cache's own objects only)."""
        if not self._own():
            return 0
        objects = [*self._objects("part", "part-"), *self._groups()]
        for o in objects:
            self.store.delete(o.name)
        MEMO.forget(self.url)
        return len(objects)  # emptied groups stay: their names keep the numbering going up

    def claimed(self, options: str, api: str, *, since: int | None) -> ObjectClaimedLookups:
        return ObjectClaimedLookups(self, options, api, since=since, lease=self.lease)


class ObjectWriter:
    """Commits answers in small groups, each one object, before ``add`` returns. Thread-safe:
    the answers that arrive while a group is being written go together in the next one."""

    def __init__(self, cache: ObjectCache) -> None:
        self.cache = cache
        self.written = 0
        self._cv = threading.Condition()
        self._queue: list[Entry] = []
        self._enqueued = 0
        self._durable = 0
        self._committing = False
        self._pending: list[Entry] = []  # committed, not yet folded into a part
        self._mine: list[str] = []  # this writer's group objects not yet folded
        self._last_fold = time.monotonic()
        # the group number after this writer's last commit, and when it was sent (both clocks)
        self._hint: tuple[int, float, float] | None = None  # (next group, monotonic, wall)
        cache._own(create=True)
        with contextlib.suppress(OSError):
            cache.fold_orphans(older_than=2 * cache.lease)

    def add(self, entry: Entry) -> None:
        """Make one answer durable (in a committed group object) now."""
        try:
            entry = entry.checked()
        except BadEntry as exc:
            line = repr(entry).encode("ascii", "backslashreplace")
            self.cache.quarantine([line], "a paid answer", str(exc))
            return
        with self._cv:
            self._queue.append(entry)
            self._enqueued += 1
            ticket = self._enqueued
            while self._durable < ticket:
                if self._committing:
                    self._cv.wait()
                    continue
                batch, self._queue = self._queue[:GROUP_MAX], self._queue[GROUP_MAX:]
                upto = self._durable + len(batch)
                self._committing = True
                self._cv.release()
                try:
                    self._commit(batch)
                except BaseException:
                    self._cv.acquire()
                    self._queue[:0] = batch  # the next committer tries them again
                    self._committing = False
                    self._cv.notify_all()
                    raise
                self._cv.acquire()
                self._durable = upto
                self._committing = False
                self.written += len(batch)
                self._cv.notify_all()
            due = len(self._pending) >= self.cache.flush_every or (
                time.monotonic() - self._last_fold >= self.cache.flush_seconds
            )
        if due:
            self.flush()

    def _next_group(self) -> int:
        """The number to try for the next group: the one after this writer's last commit
        while that commit is less than a quarter lease old by both clocks (no LIST: the numbers
        are dense, and no group that young is ever deleted, so a free one there is above every
        taken one),
        else the highest listed plus one."""
        hint = self._hint
        if hint is not None:
            # A quarter of a lease, by both clocks: a suspended laptop's monotonic clock stands
            # still, and the deleting machine reads the wall clock (LastModified).
            fresh = self.cache.lease / 4
            if time.monotonic() - hint[1] < fresh and abs(time.time() - hint[2]) < fresh:
                return hint[0]
        return self.cache._next_group()

    def _commit(self, batch: list[Entry]) -> None:
        """PUT one group object holding ``batch``; its group number (so its entries' write
        sequence) is taken by the create itself (``If-None-Match: *``)."""
        store = self.cache.store
        for attempt in range(200):
            group = self._next_group()
            entries = [replace(e, seq=group * GROUP_SPAN + i) for i, e in enumerate(batch)]
            body = b"".join(e.to_line() for e in entries)
            sent, sent_wall = time.monotonic(), time.time()
            etag = store.create(group_name(group), body)
            if etag is not None:
                self._hint = (group + 1, sent, sent_wall)
                # what this process's readers would GET back: known already
                self.cache._group_entries[(group_name(group), etag)] = entries
                with self._cv:
                    self._pending.extend(entries)
                    self._mine.append(group_name(group))
                logger.debug("cache: group %d committed (%d answers)", group, len(batch))
                return
            if self._hint is not None:  # taken by another writer: list, then try at once
                self._hint = None
                continue
            time.sleep(random.uniform(0, 0.01 * min(attempt + 1, 10)))  # another took it
        raise CacheNotWritableError(  # pragma: no cover - 200 lost races in a row
            f"the cache {self.cache.url} kept refusing new commit groups", path=self.cache.url
        )

    def flush(self) -> None:
        """Fold this writer's committed groups into a part now, then delete them."""
        with self._cv:
            while self._committing:
                self._cv.wait()
            pending, self._pending = self._pending, []
            mine, self._mine = self._mine, []
            self._last_fold = time.monotonic()
        if not pending:
            return
        try:
            table, bad = entries_to_table(pending)
            self.cache._put_part(table)
        except BaseException:
            with self._cv:  # the groups stay: the next reader replays them
                self._pending[:0] = pending
                self._mine[:0] = mine
            raise
        if bad:
            self.cache.quarantine([e.to_line() for e, _ in bad], "a run", bad[0][1])
        for name in mine:
            with contextlib.suppress(OSError):
                self.cache._retire(name)

    def close(self) -> None:
        """Fold what is committed (if that fails, the groups stay for the next reader), then
        merge parts size-tiered."""
        try:
            self.flush()
        except (OSError, ValueError, pa.ArrowException) as exc:
            warn(f"pd_hlr cache: folding skipped ({type(exc).__name__}: {exc})", RuntimeWarning)
            return
        self.cache.compact_after_writing(self.written)


class _Unchanged(Exception):
    """Raised by a claims change that has nothing to write, carrying its result."""

    def __init__(self, result: Any) -> None:
        self.result = result


class ObjectClaims:
    """This process's claims in ``claims.json`` for one (options, API host) key.

    The object maps each claimer's id to its key, process, host, renewal count (``beat``) and
    numbers; every change is a compare-and-swap on its ETag. ``lease``: renew every
    ``lease / 4`` seconds from a daemon thread (None: never, for tests that play a suspended
    claimer)."""

    def __init__(
        self, store: S3Store, options: str, api: str, *, lease: float | None = LEASE_SECONDS
    ) -> None:
        self.store = store
        self.key = f"{api}\t{options}"
        self.lease = LEASE_SECONDS if lease is None else float(lease)
        #: Seconds between two renewals: a quarter of the lease, so a live claimer renews
        #: three times before a waiter may take its numbers over.
        self.renew_every = self.lease / 4
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.lost = False
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._cas(self._enter)
        if lease is not None:
            self._beat = threading.Thread(
                target=self._heartbeat, args=(self.renew_every,), name="pd_hlr-claims",
                daemon=True,
            )
            self._beat.start()

    def __enter__(self) -> ObjectClaims:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _entry(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "beat": 0,
            "lease": self.lease,
            "numbers": [],
        }

    def _enter(self, holders: dict[str, Any]) -> bool:
        holders[self.id] = self._entry()
        return True

    def _cas(self, change: Callable[[dict[str, Any]], Any]) -> Any:
        """Apply ``change`` to the holders (it edits them in place and returns a result; it
        returns None to write nothing) by compare-and-swap, again until it wins."""
        for attempt in range(1000):
            try:
                data, etag = self.store.get(CLAIMS_OBJECT)
                doc = json.loads(data)
                holders = doc.get("holders", {}) if isinstance(doc, dict) else {}
            except FileNotFoundError:
                etag, holders = None, {}
            except ValueError:  # damaged: rebuilt (claims are only ever a few seconds old)
                etag, holders = "*", {}
            try:
                result = change(holders)
            except _Unchanged as same:  # nothing to write: the answer as it stands
                return same.result
            if result is None:
                return None
            body = json.dumps({"holders": holders}, separators=(",", ":")).encode()
            if etag is None:
                ok = self.store.create(CLAIMS_OBJECT, body)
            elif etag == "*":
                ok = self.store.put(CLAIMS_OBJECT, body)
            else:
                ok = self.store.replace(CLAIMS_OBJECT, body, etag)
            if ok is not None:
                return result
            time.sleep(random.uniform(0, 0.005 * min(attempt + 1, 20)))
        raise TimeoutError("claims.json kept changing")  # pragma: no cover

    def claim(
        self, numbers: Sequence[str], limit: int = CLAIM_CHUNK
    ) -> tuple[list[str], dict[str, tuple[int, int | None, frozenset[str], float]]]:
        """Claim up to ``limit`` numbers no live claimer holds. Returns (claimed, the other
        holders of the rest: id → (beat, pid, their numbers among ``numbers``, their lease))."""
        wanted = list(numbers)

        def change(holders: dict[str, Any]) -> Any:
            others = {}
            taken: set[str] = set()
            asked = set(wanted)
            for hid, h in holders.items():
                if hid == self.id or h.get("key") != self.key:
                    continue
                held = asked.intersection(h.get("numbers", ()))
                if held:
                    lease = float(h.get("lease", LEASE_SECONDS))
                    others[hid] = (int(h.get("beat", 0)), h.get("pid"), frozenset(held), lease)
                    taken |= held
            mine = [n for n in wanted if n not in taken][:limit]
            if not mine and self.id in holders and not holders[self.id].get("numbers"):
                raise _Unchanged((mine, others))  # only waiting: no write
            if self.id not in holders:
                if not self.lost:
                    self.lost = True
                holders[self.id] = self._entry()
            holders[self.id]["numbers"] = mine
            return mine, others

        return self._cas(change)

    def release(self) -> None:
        """Give back every claim (their answers are committed, or they failed)."""

        def change(holders: dict[str, Any]) -> Any:
            if self.id not in holders:
                return None
            holders[self.id]["numbers"] = []
            return True

        self._cas(change)

    def refresh(self) -> None:
        """Renew the lease (bump this claimer's ``beat``)."""

        def change(holders: dict[str, Any]) -> Any:
            if self._stop.is_set():
                return None  # closing: its entry is being removed
            if self.id not in holders:
                if not self.lost:
                    self.lost = True
                    logger.warning(
                        "pd_hlr cache: this process's claims were taken over (it was not "
                        "renewing them: suspended?); it claims again before paying"
                    )
                return None
            holders[self.id]["beat"] = int(holders[self.id].get("beat", 0)) + 1
            return True

        self._cas(change)

    def take_over(self, holder: str, beat: int) -> bool:
        """Remove ``holder``'s claims if it is still at renewal ``beat`` (stale)."""

        def change(holders: dict[str, Any]) -> Any:
            h = holders.get(holder)
            if h is None or int(h.get("beat", 0)) != beat:
                return None
            del holders[holder]
            return True

        return bool(self._cas(change))

    def _heartbeat(self, every: float) -> None:
        while not self._stop.wait(every):
            with contextlib.suppress(OSError, TimeoutError):
                self.refresh()

    def close(self) -> None:
        self._stop.set()
        if self._beat is not None and self._beat is not threading.current_thread():
            self._beat.join(30)  # a renewal in flight ends before the entry goes

        def change(holders: dict[str, Any]) -> Any:
            return holders.pop(self.id, None) is not None or None

        with contextlib.suppress(OSError, TimeoutError):
            self._cas(change)


class ObjectClaimedLookups(ClaimedLookups):
    """:class:`~pd_hlr.cache.ClaimedLookups` across machines: claims in ``claims.json``, at
    most :data:`CLAIM_CHUNK` at a time; a claimer whose lease runs out is taken over."""

    def run(
        self,
        numbers: Sequence[str],
        lookup: Callable[[list[str]], Any],
        on_served: Callable[[int], None] | None = None,
    ) -> None:
        cache: ObjectCache = self.cache  # type: ignore[assignment]
        pending = list(numbers)
        seen: dict[str, tuple[int, float]] = {}
        told = False
        delay = self.poll
        try:
            claims = ObjectClaims(cache.store, self.options, self.api, lease=self.lease)
        except OSError as exc:
            raise CacheNotWritableError(
                f"the cache {cache.url} cannot be written ({exc}); nothing was looked up",
                path=cache.url,
            ) from exc
        with claims:
            while pending:
                mine, others = claims.claim(pending)
                if mine:
                    # no release after: the next claim replaces these numbers in the same
                    # compare-and-swap, and leaving the block removes this claimer's entry
                    todo = self._serve(mine, on_served)
                    if todo:
                        lookup(todo)
                    done = set(mine)
                    pending = [n for n in pending if n not in done]
                    delay = self.poll
                    continue
                pending = self._serve(pending, on_served)
                if not pending:
                    break
                now = self.clock()
                if not told and others:
                    told = True
                    logger.info(
                        "pd_hlr cache: waiting for %d number(s) other process(es) are looking "
                        "up (claims in %s); their answers are served as they land",
                        sum(len(h[2]) for h in others.values()),
                        cache.url,
                    )
                for hid, (beat, pid, held, their_lease) in others.items():
                    last = seen.get(hid)
                    lease = max(self.lease, their_lease)  # never sooner than it renews
                    if last is None or last[0] != beat:
                        seen[hid] = (beat, now)
                    elif now - last[1] >= lease and claims.take_over(hid, beat):
                        logger.warning(
                            "pd_hlr cache: process %s (%s) did not renew its claims on %d "
                            "number(s) for %.0f s (the lease): they are taken over",
                            pid,
                            hid,
                            len(held),
                            now - last[1],
                        )
                        seen.pop(hid, None)
                        delay = 0.0
                self.sleep(delay)
                delay = min(max(delay, self.poll) * 1.5, self.max_poll)


__all__ = [
    "CLAIM_CHUNK",
    "GROUP_SPAN",
    "ObjectCache",
    "ObjectClaimedLookups",
    "ObjectClaims",
    "ObjectWriter",
    "object_kind",
]


ObjectCache._writer_class = ObjectWriter


HLRCache.url_cache = ObjectCache  # HLRCache("s3://…") opens this class
