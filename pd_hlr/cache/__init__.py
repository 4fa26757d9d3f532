"""Durable parquet cache of paid HLR answers: never pay twice, lose nothing.

A cache is a folder (created ``0700``: it holds personal data). Its files (see
``pd_hlr/cache/folder.py`` for the full list):

``part-*.parquet``
    Immutable parquet parts with one explicit schema (:data:`CACHE_SCHEMA`), rows in write
    order, each written to a hidden temp name and moved into place with ``os.replace``.
    Size-tiered compaction at the end of each run keeps their number logarithmic in the cache's
    size (``compaction.py``), and a lookup joins the numbers asked with every part's int64 key
    column once, then reads only the row groups holding a hit (``lookup.py``): a read costs
    what the keys asked and the cache's size cost, not how many runs wrote it.
``journal-*.jsonl``
    Append-only journals, one line per answer (:meth:`Entry.to_line`), written with a single
    ``write`` the moment the answer arrives (``journal.py``). Journals whose writer died are
    folded into a part by the next writer; every reader replays them.
``claims-*.txt``
    Numbers a live process is paying for (``claims.py``): processes sharing a folder pay once
    per number.
``seq``
    The folder's write sequence: newest means last written, not the latest clock.

Readers take the newest entry per key (number + request options + API host). Every option that
changes the answer (``detailed``, ``roaming``, ``route``, ``msisdn``) is part of the key.
Temporary outcomes (a non-OK error with ``permanent: false``, e.g. carrier overload) are stored
but not served by default: the next run looks them up again. Entries that cannot be read are
moved aside (``quarantine-*``) with a warning naming the file; they never block the rest.

>>> cache = HLRCache(cache_dir)
>>> out = df.hlr.validate("phone", cache=cache, client=client, default_region="GB",
...                       progress=False)
>>> cache.stats()["entries"]
2
"""

from __future__ import annotations

from . import objects as _objects  # noqa: F401  (registers s3:// caches with HLRCache)
from .entry import BadEntry, Entry
from .parts import CACHE_SCHEMA, CACHE_SCHEMA_VERSION
from .store import CacheWriter, ClaimedLookups, HLRCache, default_cache_path

__all__ = [
    "CACHE_SCHEMA",
    "CACHE_SCHEMA_VERSION",
    "BadEntry",
    "CacheWriter",
    "ClaimedLookups",
    "Entry",
    "HLRCache",
    "default_cache_path",
]
