"""Compaction: merge parts into fewer, bigger ones, newest entry per key, losing nothing.

At the end of every run the writer merges parts **size-tiered** (as an LSM tree does): parts
fall into tiers by row count (``TIER_BASE`` × ``FANOUT``\\ :sup:`k`), and a tier holding
``FANOUT`` parts is merged into one part of the next tier. A cache of N entries so holds at most
about ``(FANOUT - 1) × log_FANOUT(N / TIER_BASE)`` parts, however many runs wrote it, and each
entry is rewritten about ``log_FANOUT(N / TIER_BASE)`` times in its life.

A merge writes its new part first and only then removes the parts it read **in full**: a part
that could not be read (MemoryError, EIO, EMFILE...) stays where it is; a corrupt one is moved
aside (``quarantine-<name>``) with a warning naming it. One process compacts a folder at a time
(``compaction.lock``); a reader that lists a part a merge removes meanwhile lists again.

>>> plan([("a", 1000), ("b", 1000), ("c", 1000), ("d", 900), ("e", 50_000)])
['a', 'b', 'c', 'd']
>>> plan([("a", 1000), ("b", 1000), ("e", 50_000)])
[]
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from .._warnings import warn
from .folder import COMPACTION_RECORD, part_info, quarantine_part, read_regular, write_atomic
from .parts import newest, read_part, write_part

logger = logging.getLogger("pd_hlr.cache")

#: Parts below this many rows form the first tier.
TIER_BASE = 4096
#: Parts per tier before they are merged (and the growth factor between tiers).
FANOUT = 4

T = TypeVar("T")


def tier(rows: int) -> int:
    return 0 if rows < TIER_BASE else 1 + int(math.log(rows / TIER_BASE, FANOUT))


def plan(parts: Sequence[tuple[T, int]]) -> list[T]:
    """The parts to merge next (the lowest tier holding ``FANOUT`` parts), or []."""
    tiers: dict[int, list[T]] = {}
    for part, rows in parts:
        tiers.setdefault(tier(rows), []).append(part)
    for k in sorted(tiers):
        if len(tiers[k]) >= FANOUT:
            return tiers[k]
    return []


def part_rows(path: Path) -> int:
    rows = part_info(path)[1]
    if rows is None:  # an older part: its row count is in its footer
        try:
            rows = pq.read_metadata(path).num_rows
        except (OSError, ValueError, pa.ArrowException):
            rows = 0  # unreadable: the merge decides what to do with it
    return rows


def merge(folder: Path, parts: Sequence[Path], *, fsync: bool = False) -> dict[str, int]:
    """Merge ``parts`` into one (newest per key); remove only the parts read in full."""
    tables: list[pa.Table] = []
    done: list[Path] = []
    unreadable = 0
    for p in parts:
        try:
            tables.append(read_part(p))
        except FileNotFoundError:
            continue  # merged away by another process meanwhile
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            quarantine_part(p, exc)
            continue
        except (OSError, MemoryError) as exc:
            unreadable += 1
            warn(
                f"pd_hlr cache: part {p} could not be read ({type(exc).__name__}: {exc}); it is "
                "left in place and merged next time",
                RuntimeWarning,
            )
            continue
        done.append(p)
    merged = newest(pa.concat_tables(tables)) if tables else None
    if merged is not None and merged.num_rows:
        write_part(folder, merged, fsync=fsync)
    for p in done:
        p.unlink(missing_ok=True)
    return {
        "parts_in": len(done),
        "entries": merged.num_rows if merged is not None else 0,
        "unreadable": unreadable,
    }


def record(folder: Path, kind: str, result: dict[str, Any], seconds: float) -> None:
    info = {"at": datetime.now(UTC).isoformat(), "kind": kind, "seconds": round(seconds, 3)}
    info.update(result)
    try:
        write_atomic(folder / COMPACTION_RECORD, json.dumps(info).encode())
    except OSError as exc:
        logger.debug("cache: could not record the compaction (%s)", exc)


def last(folder: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(read_regular(folder / COMPACTION_RECORD))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def tiered(folder: Path, parts_of: Any, *, fsync: bool = False) -> dict[str, int] | None:
    """Merge tier by tier until no tier is full. ``parts_of()`` lists the parts. Returns what
    was done (None when nothing needed merging)."""
    t0 = time.perf_counter()
    total = {"parts_in": 0, "entries": 0, "merges": 0, "unreadable": 0}
    for _ in range(64):
        todo = plan([(p, part_rows(p)) for p in parts_of()])
        if not todo:
            break
        result = merge(folder, todo, fsync=fsync)
        if result["parts_in"] < 2:  # nothing more can be merged now (unreadable parts)
            break
        total["parts_in"] += result["parts_in"]
        total["entries"] += result["entries"]
        total["unreadable"] += result["unreadable"]
        total["merges"] += 1
    if not total["merges"]:
        return None
    record(folder, "auto", total, time.perf_counter() - t0)
    return total
