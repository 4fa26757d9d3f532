"""The warm read: the stored rows of the numbers asked, at a cost set by the keys asked and
the cache's size, never by how many runs wrote it.

Phase 1 reads every part's int64 ``key`` column (and ``seq``, ``checked_at`` only when entries
must be ranked; row groups ruled out by their statistics are skipped) and makes **one** hash
join against the wanted numbers; phase 2 reads only the row groups holding a hit, and only the
columns asked. Parts keep rows in write order, so one run's numbers sit together; with
``memo=True`` phase 1's key columns stay in a process-wide memo (parts are immutable). The two
phases in full: ``docs/internals/cache.md``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .parts import CACHE_SCHEMA, fill_legacy_seq, key64

#: Row groups read at once in phase 2 (about 128k rows of the columns asked).
_GROUPS_PER_READ = 8


class KeyMemo:
    """Process-wide memo of phase 1 (the key columns of one part and one key)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[tuple[Any, ...], pa.Table] = {}

    def get(self, key: tuple[Any, ...]) -> pa.Table | None:
        with self._lock:
            return self._keys.get(key)

    def put(self, key: tuple[Any, ...], table: pa.Table) -> None:
        with self._lock:
            self._keys[key] = table

    def forget(self, folder: Path | str, keep: Sequence[Any] = ()) -> None:
        """Drop the folder's entries (but those of the parts in ``keep``)."""
        kept = {str(p) for p in keep}
        with self._lock:
            for key in [k for k in self._keys if Path(k[0]).parent == Path(folder)]:
                if key[0] not in kept:
                    del self._keys[key]


MEMO = KeyMemo()


def _stat_is(stats: Any, value: str) -> bool | None:
    """True: every row is ``value``; False: none is; None: cannot tell."""
    if stats is None or not stats.has_min_max:
        return None
    if stats.min == stats.max == value:
        return True
    if value < stats.min or value > stats.max:
        return False
    return None


class _Part:
    """One part's phase 1: its key rows (of the options / API host asked) and row groups."""

    def __init__(self, path: Path, options: str, api: str, memo: bool, need_seq: bool) -> None:
        self.path = path
        self.need_seq = need_seq
        # a local part is a Path; an object-store part opens a ranged-read file and names
        # its own memo identity (parts are immutable: name and size)
        memo_id = getattr(path, "memo_id", None)
        # (on object storage the reads of one call are coalesced and issued at once)
        if memo_id is not None:
            self.file = pq.ParquetFile(path.open(), pre_buffer=True)
        else:
            self.file = pq.ParquetFile(path)
        md = self.file.metadata
        self.starts = np.zeros(md.num_row_groups + 1, dtype=np.int64)
        names = self.file.schema_arrow.names
        col = {name: i for i, name in enumerate(names)}
        keep_rg: list[int] = []
        exact = True
        for i in range(md.num_row_groups):
            rg = md.row_group(i)
            self.starts[i + 1] = self.starts[i] + rg.num_rows
            verdicts = [
                _stat_is(rg.column(col[c]).statistics, v) if c in col else None
                for c, v in (("options", options), ("api", api))
            ]
            if False in verdicts:
                continue
            keep_rg.append(i)
            exact = exact and verdicts == [True, True]
        self.names = set(names)
        # Every row has an int64 key (all E.164): join on it, never decoding a string.
        self.by_key = "key" in col and all(
            (st_ := md.row_group(i).column(col["key"]).statistics) is not None
            and st_.null_count == 0
            for i in range(md.num_row_groups)
        )
        if memo_id is None:
            st = path.stat()
            memo_id = (str(path), st.st_size, st.st_mtime_ns)
        key = (*memo_id, options, api, need_seq)
        table = MEMO.get(key) if memo else None
        if table is None:
            table = self._read_keys(keep_rg, exact, options, api)
            if memo:
                MEMO.put(key, table)
        self.keys = table  # key (or number), [seq, checked_at], row (position in the part)

    def _read_keys(self, rgs: list[int], exact: bool, options: str, api: str) -> pa.Table:
        key_columns = self.key_columns
        if not rgs:
            return pa.table(
                {c: pa.array([], CACHE_SCHEMA.field(c).type) for c in key_columns}
                | {"row": pa.array([], pa.int64())}
            )
        wanted = [c for c in key_columns if c in self.names]
        if not exact:
            wanted += [c for c in ("options", "api") if c in self.names]
        t = self.file.read_row_groups(rgs, columns=wanted, use_threads=True)
        rows = np.concatenate([np.arange(self.starts[i], self.starts[i + 1]) for i in rgs])
        t = t.append_column("row", pa.array(rows))
        if not exact:
            mask = None
            for c, v in (("options", options), ("api", api)):
                if c in t.column_names:
                    m = pc.equal(t[c], v)
                    mask = m if mask is None else pc.and_(mask, m)
            if mask is not None:
                t = t.filter(mask)
        out = {}
        for c in key_columns:
            f = CACHE_SCHEMA.field(c)
            out[c] = t[c].cast(f.type) if c in t.column_names else pa.nulls(len(t), f.type)
        out["row"] = t["row"]
        return fill_legacy_seq(pa.table(out)) if self.need_seq else pa.table(out)

    @property
    def key_columns(self) -> list[str]:
        """Phase 1 reads the join key only (plus ``seq`` when only answers written after a
        given sequence value are wanted)."""
        return ["key" if self.by_key else "number"] + (
            ["seq", "checked_at"] if self.need_seq else []
        )

    def values(self, rows: np.ndarray, columns: Sequence[str]) -> pa.Table:
        """Phase 2: ``columns`` of the rows at ``rows`` (sorted positions in the part), read
        a few row groups at a time (so a read of everything holds one batch unfiltered)."""
        rg_of = np.searchsorted(self.starts, rows, side="right") - 1
        present = [c for c in columns if c in self.names]
        pieces = []
        groups = np.unique(rg_of)
        for k in range(0, len(groups), _GROUPS_PER_READ):
            rgs = groups[k : k + _GROUPS_PER_READ]
            lo, hi = np.searchsorted(rg_of, [rgs[0], rgs[-1] + 1])
            t = self.file.read_row_groups(rgs.tolist(), columns=present, use_threads=True)
            sizes = self.starts[rgs + 1] - self.starts[rgs]
            new_start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
            sel = rg_of[lo:hi]
            local = rows[lo:hi] - self.starts[sel] + new_start[np.searchsorted(rgs, sel)]
            whole = len(local) == t.num_rows  # sorted distinct rows: every row is a hit
            pieces.append(t if whole else t.take(pa.array(local)))
            del t
        t = pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]
        out = {}
        for c in columns:
            f = CACHE_SCHEMA.field(c)
            out[c] = t[c].cast(f.type) if c in present else pa.nulls(len(rows), f.type)
        return pa.table(out)


def lookup(
    parts: Sequence[Path],
    wanted: pa.Array,
    columns: Sequence[str],
    options: str,
    api: str,
    *,
    since: int | None,
    memo: bool,
    on_unreadable: Callable[[Path, BaseException], None],
) -> pa.Table | None:
    """The stored rows (``number``, ``seq``, ``checked_at`` + ``columns``) of the wanted
    numbers under ``options`` / ``api`` in ``parts`` (not deduplicated). None when none."""
    opened: list[_Part] = []
    for p in parts:
        try:
            opened.append(_Part(p, options, api, memo, need_seq=since is not None))
        except FileNotFoundError:
            raise
        except (OSError, ValueError, pa.ArrowException) as exc:
            on_unreadable(p, exc)
    opened = [p for p in opened if p.keys.num_rows]
    if not opened:
        return None
    # one hash join per kind of key column: the wanted set is hashed once, not once per part
    local_hits: dict[int, np.ndarray] = {}
    for by_key in (True, False):
        group = [i for i, p in enumerate(opened) if p.by_key == by_key]
        if not group:
            continue
        col = "key" if by_key else "number"
        values = key64(wanted).drop_null() if by_key else wanted
        keys = pa.chunked_array(
            [c for i in group for c in opened[i].keys[col].chunks],
            type=CACHE_SCHEMA.field(col).type,
        )
        mask = pc.is_in(keys, value_set=values)
        if since is not None:
            seqs = pa.chunked_array([c for i in group for c in opened[i].keys["seq"].chunks])
            mask = pc.and_(mask, pc.greater(seqs, since))
        hits = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
        bounds = np.cumsum([0] + [opened[i].keys.num_rows for i in group])
        for j, i in enumerate(group):
            lo, hi = np.searchsorted(hits, [bounds[j], bounds[j + 1]])
            if lo < hi:
                local_hits[i] = hits[lo:hi] - bounds[j]
    tables = []
    for i, part in enumerate(opened):
        if i not in local_hits:
            continue
        key_rows = part.keys.take(pa.array(local_hits[i]))
        rows = key_rows["row"].to_numpy()
        order = np.argsort(rows, kind="stable")
        key_rows = key_rows.take(pa.array(order))
        value_cols = [c for c in columns if c != "key" and c not in key_rows.column_names]
        try:
            values = part.values(rows[order], value_cols)
        except FileNotFoundError:
            raise
        except (OSError, ValueError, pa.ArrowException) as exc:
            on_unreadable(part.path, exc)
            continue
        t = key_rows.drop_columns(["row"])
        for c in value_cols:
            t = t.append_column(c, values[c])
        if "key" not in t.column_names:
            t = t.append_column("key", key64(t["number"]))
        tables.append(
            fill_legacy_seq(t).select(
                [
                    "number",
                    "key",
                    "seq",
                    "checked_at",
                    *(c for c in columns if c not in ("number", "key", "seq", "checked_at")),
                ]
            )
        )
    return pa.concat_tables(tables) if tables else None
