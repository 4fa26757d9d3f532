"""Durable parquet cache of paid HLR answers: never pay twice, lose nothing.

A cache is a folder (created ``0700``: it holds personal data) with two kinds of file:

``part-*.parquet``
    Immutable parquet parts with one explicit schema (:data:`CACHE_SCHEMA`). A part is written
    to a hidden temp name in the same folder and moved into place with ``os.replace``, so a
    reader never sees half a part. Unique names let several processes write one folder.
``journal-*.jsonl``
    Append-only journals, one JSON line per answer, written with a single ``write`` on an
    ``O_APPEND`` descriptor the moment the answer arrives (so it survives ``kill -9``; pass
    ``fsync=True`` to survive a power cut too). A writer holds an exclusive ``flock`` on its
    journal; journals nobody holds (their process died) are folded into a part by the next
    writer or by :meth:`HLRCache.compact`, and every reader replays all journals, ignoring a last
    line cut short by a kill.

Readers take the newest entry per key (number + request options + API host). A detailed
answer is never served to a summary request (the summary's ``status``/``live``/``dead`` cannot be
derived exactly from the detailed payload), nor the reverse; every option that changes the
answer (``detailed``, ``roaming``, ``route``, ``msisdn``) is part of the key.

Temporary outcomes (a non-OK error with ``permanent: false``, e.g. carrier overload) are stored
but not served by default: the next run looks them up again.

>>> cache = HLRCache(tmp_path / "hlr_cache")                     # doctest: +SKIP
>>> out = df.hlr.validate("phone", cache=cache)                  # doctest: +SKIP
>>> cache.stats()["entries"]                                     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import schema
from .settings import CACHE_ENV

logger = logging.getLogger("pd_hlr.cache")

#: Bump when the stored columns change meaning. Older parts still load (missing columns read
#: as null through :data:`CACHE_SCHEMA`); their ``raw`` JSON lets new columns be re-derived.
CACHE_SCHEMA_VERSION = 1

_KEY_FIELDS = [
    pa.field("number", pa.large_string()),
    pa.field("options", pa.large_string()),
    pa.field("api", pa.large_string()),
]


def _union_api_fields() -> list[schema.Field]:
    seen: dict[str, schema.Field] = {}
    for f in (*schema.SUMMARY_FIELDS, *schema.DETAILED_FIELDS):
        seen.setdefault(f.column, f)
    return list(seen.values())


_API_FIELDS = _union_api_fields()

#: The one schema every part is written with and every part is read through.
CACHE_SCHEMA = pa.schema(
    [
        *_KEY_FIELDS,
        pa.field("checked_at", pa.timestamp("us", tz="UTC")),
        pa.field("schema_version", pa.int16()),
        pa.field("temporary", pa.bool_()),
        pa.field("raw", pa.large_string()),
        *(pa.field(f.column, schema.ARROW_TYPES[f.kind]) for f in _API_FIELDS),
        pa.field("hlr_extra", pa.large_string()),
    ]
)

_PART_GLOB = "part-*.parquet"
_JOURNAL_GLOB = "journal-*.jsonl"


def _to_pandas_types(t: pa.DataType) -> Any:
    if pa.types.is_large_string(t) or pa.types.is_string(t):
        return schema.PANDAS_DTYPES["string"]
    if pa.types.is_boolean(t):
        return schema.PANDAS_DTYPES["bool"]
    if pa.types.is_integer(t):
        return schema.PANDAS_DTYPES["int"]
    return None


def default_cache_path() -> Path:
    """``$PD_HLR_CACHE``, else ``$XDG_CACHE_HOME/pd_hlr``, else ``~/.cache/pd_hlr``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pd_hlr"


@dataclass(frozen=True)
class Entry:
    """One answer to store: the lookup key, the raw result object and when it arrived."""

    number: str
    options: str
    api: str
    result: Mapping[str, Any]
    checked_at: datetime


def _entries_to_table(entries: list[Entry]) -> pa.Table:
    """Flatten entries (any mix of modes) into a table with :data:`CACHE_SCHEMA`."""
    n = len(entries)
    cols: dict[str, pa.Array] = {}
    cols["number"] = pa.array([e.number for e in entries], pa.large_string())
    cols["options"] = pa.array([e.options for e in entries], pa.large_string())
    cols["api"] = pa.array([e.api for e in entries], pa.large_string())
    cols["checked_at"] = pa.array([e.checked_at for e in entries], pa.timestamp("us", tz="UTC"))
    cols["schema_version"] = pa.array([CACHE_SCHEMA_VERSION] * n, pa.int16())
    cols["raw"] = pa.array(
        [json.dumps(e.result, separators=(",", ":"), sort_keys=True) for e in entries],
        pa.large_string(),
    )
    detailed_mask = [_options_detailed(e.options) for e in entries]
    frames = []
    for mode in (False, True):
        idx = [i for i, d in enumerate(detailed_mask) if d == mode]
        if idx:
            flat = schema.flatten([entries[i].result for i in idx], detailed=mode)
            flat.index = pd.Index(idx)
            flat["temporary"] = schema.is_temporary(flat)
            frames.append(flat)
    merged = pd.concat(frames).sort_index() if frames else pd.DataFrame(index=pd.RangeIndex(0))
    for field in CACHE_SCHEMA:
        if field.name in cols:
            continue
        if field.name in merged.columns:
            cols[field.name] = pa.array(merged[field.name], type=field.type, from_pandas=True)
        else:
            cols[field.name] = pa.nulls(n, field.type)
    return pa.table([cols[f.name] for f in CACHE_SCHEMA], schema=CACHE_SCHEMA)


def _options_detailed(options: str) -> bool:
    return "detailed=1" in options.split(",")


def _entry_from_line(line: bytes) -> Entry | None:
    try:
        rec = json.loads(line)
        return Entry(
            number=rec["n"],
            options=rec["o"],
            api=rec["a"],
            result=rec["r"],
            checked_at=datetime.fromisoformat(rec["t"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


def _read_journal(path: Path) -> list[Entry]:
    """Entries of one journal; a line cut short (no newline, or bad JSON) is ignored."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    entries = []
    for line in data.split(b"\n"):
        if line.strip():
            entry = _entry_from_line(line)
            if entry is not None:
                entries.append(entry)
    return entries


#: Columns kept in memory between reads: everything but the raw JSON (the bulk of a part),
#: which only ``to_frame()`` and ``compact()`` need, and read from disk when they do.
_LEAN_COLUMNS = [f.name for f in CACHE_SCHEMA if f.name != "raw"]
_LEAN_SCHEMA = pa.schema([CACHE_SCHEMA.field(n) for n in _LEAN_COLUMNS])
#: Lean columns that are bookkeeping, not API answer columns.
_LEAN_META = ("number", "options", "api", "checked_at", "schema_version", "temporary")


def _filter(table: pa.Table, mask: Any) -> pa.Table:
    """``table.filter(mask)``, without copying the table when the mask keeps every row."""
    kept = pc.sum(mask).as_py() or 0
    if kept == table.num_rows and mask.null_count == 0:
        return table
    return table.filter(mask)


def _read_part(path: Path, *, raw: bool, columns: list[str] | None = None) -> pa.Table | None:
    """One part through the explicit schema (older parts gain null columns); None when it is
    gone or unreadable (a truncated or corrupt part is skipped with a warning naming it).
    ``columns`` reads only those (``raw`` must then be false)."""
    if raw:
        columns = None
    elif columns is None:
        columns = _LEAN_COLUMNS
    try:
        return pq.read_table(path, schema=CACHE_SCHEMA, columns=columns)
    except FileNotFoundError:
        return None
    except Exception as exc:
        warnings.warn(
            f"pd_hlr cache: skipping unreadable part {path} ({type(exc).__name__}: {exc})",
            RuntimeWarning,
            stacklevel=5,
        )
        return None


class _PartMemo:
    """Process-wide memo of loaded parts (without ``raw``): parts are immutable, so
    (path, size, mtime) is a key. A notebook's re-runs read each part from disk once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: dict[tuple[str, int, int], pa.Table] = {}

    def get(self, path: Path) -> pa.Table | None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        key = (str(path), st.st_size, st.st_mtime_ns)
        with self._lock:
            table = self._tables.get(key)
        if table is not None:
            return table
        table = _read_part(path, raw=False)
        if table is None:
            return None
        with self._lock:
            self._tables[key] = table
        return table

    def forget(self, paths: Iterable[Path]) -> None:
        names = {str(p) for p in paths}
        with self._lock:
            for key in [k for k in self._tables if k[0] in names]:
                del self._tables[key]


_MEMO = _PartMemo()


class HLRCache:
    """A folder of parquet parts + journals holding every paid answer.

    >>> cache = HLRCache("hlr_cache")                    # doctest: +SKIP
    >>> cache.stats(); cache.to_frame(); cache.compact(); cache.clear()   # doctest: +SKIP

    ``memo=True`` (the default) keeps the parts read (without the raw JSON) in a process-wide
    memo, so re-runs in one process (a notebook) read each part from disk once, at the cost of
    holding the whole cache in memory for the life of the process. ``memo=False`` reads, filters
    and drops one part at a time: a lookup then holds only the entries it asked for (the Dask
    path uses it to keep the calling process small).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        flush_every: int = 1000,
        flush_seconds: float = 10.0,
        fsync: bool = False,
        memo: bool = True,
    ) -> None:
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"cache path must be a str or os.PathLike, not {type(path).__name__}")
        self.path = Path(path).expanduser()
        self.flush_every = int(flush_every)
        self.flush_seconds = float(flush_seconds)
        self.fsync = bool(fsync)
        self.memo = bool(memo)

    def __repr__(self) -> str:
        return f"HLRCache({str(self.path)!r})"

    # -- files ----------------------------------------------------------------------------
    def _ensure_dir(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o700)

    def _parts(self) -> list[Path]:
        return sorted(self.path.glob(_PART_GLOB)) if self.path.is_dir() else []

    def _journals(self) -> list[Path]:
        return sorted(self.path.glob(_JOURNAL_GLOB)) if self.path.is_dir() else []

    def _write_part(self, table: pa.Table) -> Path | None:
        """Write ``table`` as a new part, atomically. Returns its path (None if empty)."""
        if table.num_rows == 0:
            return None
        self._ensure_dir()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"part-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:12]}.parquet"
        tmp = self.path / f".{name}.tmp"
        try:
            pq.write_table(table, tmp, compression="zstd")
            os.chmod(tmp, 0o600)
            if self.fsync:
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            os.replace(tmp, self.path / name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return self.path / name

    # -- reading --------------------------------------------------------------------------
    def _load(
        self,
        *,
        raw: bool = False,
        keep: Callable[[pa.Table], pa.Table] | None = None,
        columns: list[str] | None = None,
    ) -> pa.Table:
        """Every stored entry (not yet deduplicated): journals first, then parts.

        ``keep`` filters (and may project) each journal/part as it is read, before they are put
        together (so a lookup never holds the whole cache twice, and without the memo holds one
        unfiltered part at a time). ``raw=False`` leaves out the raw JSON column; ``columns``
        (only with ``raw=False``) is the subset of lean columns ``keep`` needs to see.

        Journals are listed before parts: a journal folded meanwhile had its part written
        before it was deleted, so the part listing that follows still sees those answers.
        """
        schema_ = CACHE_SCHEMA if raw else _LEAN_SCHEMA
        tables = []
        journal_entries: list[Entry] = []
        for j in self._journals():
            journal_entries.extend(_read_journal(j))
        if journal_entries:
            table = _entries_to_table(journal_entries)
            table = table if raw else table.select(columns or _LEAN_COLUMNS)
            tables.append(keep(table) if keep is not None else table)
            del table
        del journal_entries
        for p in self._parts():
            if raw:
                t = _read_part(p, raw=True)
            elif self.memo:
                t = _MEMO.get(p)
                t = t.select(columns) if t is not None and columns else t
            else:
                t = _read_part(p, raw=False, columns=columns)
            if t is not None:
                tables.append(keep(t) if keep is not None else t)
        if not tables:
            empty = schema_.empty_table()
            empty = empty.select(columns) if columns and not raw else empty
            return keep(empty) if keep is not None else empty
        return pa.concat_tables(tables)

    @staticmethod
    def _newest(table: pa.Table, keys: tuple[str, ...] = ("api", "options", "number")) -> pa.Table:
        """Keep the newest entry per key (by default (number, options, api)), in key order.

        Only the key columns are sorted; the table itself is copied once (one ``take``)."""
        if table.num_rows == 0:
            return table
        order = pc.sort_indices(
            table.select([*keys, "checked_at"]),
            sort_keys=[*((k, "ascending") for k in keys), ("checked_at", "descending")],
        )
        first_rows = np.zeros(table.num_rows, dtype=bool)
        first_rows[0] = True
        first = pa.array(first_rows)
        for name in keys:
            col = table[name].take(order).combine_chunks()
            prev = pa.concat_arrays([pa.nulls(1, col.type), col.slice(0, len(col) - 1)])
            first = pc.or_(first, pc.fill_null(pc.not_equal(col, prev), True))
            del col, prev
        return table.take(order.filter(first))

    def get(
        self,
        numbers: Iterable[str],
        options: str,
        api: str,
        *,
        max_age: str | pd.Timedelta | None = None,
        include_temporary: bool = False,
        now: datetime | None = None,
        columns: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """Servable cached answers for ``numbers`` under ``options``/``api``.

        Returns a frame indexed by number with the union of API columns (or only ``columns``,
        a subset of them and ``hlr_extra``), ``hlr_extra`` and ``hlr_checked_at``. Entries older
        than ``max_age`` and (unless ``include_temporary``) temporary outcomes are left out, so
        the caller looks them up again.
        """
        wanted = pa.array(list(numbers), pa.large_string())
        api_cols = [f.name for f in _LEAN_SCHEMA if f.name not in _LEAN_META]
        if columns is not None:
            asked = set(columns)
            api_cols = [c for c in api_cols if c in asked or c == "hlr_extra"]
        out_cols = ["number", "checked_at", "temporary", *api_cols]

        def keep(t: pa.Table) -> pa.Table:
            mask = pc.and_(
                pc.and_(pc.equal(t["options"], options), pc.equal(t["api"], api)),
                pc.is_in(t["number"], value_set=wanted),
            )
            return _filter(t.select(out_cols), mask)  # options/api are now constant: dropped

        if len(wanted):
            table = self._load(keep=keep, columns=["options", "api", *out_cols])
        else:
            table = _LEAN_SCHEMA.empty_table().select(out_cols)
        if table.num_rows and pc.count_distinct(table["number"]).as_py() != table.num_rows:
            table = self._newest(table, keys=("number",))
        mask = None
        if not include_temporary and table.num_rows:
            mask = pc.invert(pc.fill_null(table["temporary"], False))
        if max_age is not None and table.num_rows:
            cutoff = (now or datetime.now(UTC)) - pd.Timedelta(max_age).to_pytimedelta()
            fresh = pc.greater_equal(table["checked_at"], pa.scalar(cutoff))
            mask = fresh if mask is None else pc.and_(mask, fresh)
        if mask is not None:
            table = _filter(table, mask)
        frame = table.drop_columns(["temporary"]).to_pandas(types_mapper=_to_pandas_types)
        del table
        frame = frame.rename(columns={"checked_at": "hlr_checked_at"}).set_index("number")
        frame.index = frame.index.astype(object)
        return frame

    def to_frame(self, *, raw: bool = True) -> pd.DataFrame:
        """Every key's newest entry as a DataFrame (with the raw JSON unless ``raw=False``)."""
        table = self._newest(self._load(raw=raw))
        return table.to_pandas(types_mapper=_to_pandas_types)

    def stats(self) -> dict[str, Any]:
        """Counts and sizes: entries (newest per key), stored rows, parts, journals, bytes."""
        table = self._load()
        newest = self._newest(table)
        files = self._parts() + self._journals()
        checked = newest["checked_at"]
        return {
            "path": str(self.path),
            "entries": newest.num_rows,
            "stored_rows": table.num_rows,
            "temporary": int(pc.sum(pc.fill_null(newest["temporary"], False)).as_py() or 0),
            "parts": len(self._parts()),
            "journals": len(self._journals()),
            "bytes": sum(f.stat().st_size for f in files if f.exists()),
            "oldest": pc.min(checked).as_py() if newest.num_rows else None,
            "newest": pc.max(checked).as_py() if newest.num_rows else None,
        }

    # -- maintenance ----------------------------------------------------------------------
    def fold_orphans(self) -> int:
        """Fold journals whose writer is gone (no lock held) into a part. Returns entries."""
        folded = 0
        for j in self._journals():
            try:
                fd = os.open(j, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live writer holds it
                entries = _read_journal(j)
                if entries:
                    self._write_part(_entries_to_table(entries))
                    folded += len(entries)
                j.unlink(missing_ok=True)
            finally:
                os.close(fd)
        return folded

    def compact(self) -> dict[str, int]:
        """Fold orphan journals and merge all parts into one (newest per key), atomically."""
        self.fold_orphans()
        parts = self._parts()
        tables = [t for t in (_read_part(p, raw=True) for p in parts) if t is not None]
        if not tables:
            return {"parts_before": len(parts), "entries": 0}
        merged = self._newest(pa.concat_tables(tables))
        self._write_part(merged)
        for p in parts:
            p.unlink(missing_ok=True)
        _MEMO.forget(parts)
        return {"parts_before": len(parts), "entries": merged.num_rows}

    def clear(self) -> int:
        """Delete every part and journal of this cache. Returns the number of files removed."""
        files = self._parts() + self._journals()
        for f in files:
            f.unlink(missing_ok=True)
        _MEMO.forget(files)
        return len(files)

    @contextlib.contextmanager
    def writer(self) -> Iterator[CacheWriter]:
        """A writer for one run; folded into a part on exit, whatever the exit."""
        w = CacheWriter(self)
        try:
            yield w
        finally:
            w.close()


class CacheWriter:
    """Journals answers as they arrive and folds them into parts. Thread-safe.

    ``add`` returns only once the answer is in the journal (in the OS's hands), so the caller
    may count it as progress.
    """

    def __init__(self, cache: HLRCache) -> None:
        self.cache = cache
        self._lock = threading.Lock()
        self._pending: list[Entry] = []
        self._fd: int | None = None
        self._journal: Path | None = None
        self._last_fold = time.monotonic()
        self.written = 0
        cache._ensure_dir()
        cache.fold_orphans()

    def _open_journal(self) -> None:
        name = f"journal-{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
        path = self.cache.path / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd, self._journal = fd, path

    def add(self, entry: Entry) -> None:
        """Make one answer durable now; fold into a part every N answers / T seconds."""
        line = (
            json.dumps(
                {
                    "n": entry.number,
                    "o": entry.options,
                    "a": entry.api,
                    "t": entry.checked_at.isoformat(),
                    "r": entry.result,
                },
                separators=(",", ":"),
            ).encode()
            + b"\n"
        )
        with self._lock:
            if self._fd is None:
                self._open_journal()
            assert self._fd is not None
            os.write(self._fd, line)
            if self.cache.fsync:
                os.fsync(self._fd)
            self._pending.append(entry)
            self.written += 1
            due = len(self._pending) >= self.cache.flush_every or (
                time.monotonic() - self._last_fold >= self.cache.flush_seconds
            )
            if due:
                self._fold_locked()

    def _fold_locked(self) -> None:
        self._last_fold = time.monotonic()
        if not self._pending:
            return
        self.cache._write_part(_entries_to_table(self._pending))
        self._pending = []
        # The part holds every line of the journal: retire it; the next add opens a new one.
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._journal is not None:
            self._journal.unlink(missing_ok=True)
            self._journal = None

    def flush(self) -> None:
        """Fold pending answers into a part now."""
        with self._lock:
            self._fold_locked()

    def close(self) -> None:
        """Fold what is pending. If that fails, the journal stays for the next reader."""
        with self._lock:
            try:
                self._fold_locked()
            finally:
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None
