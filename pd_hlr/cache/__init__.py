"""Durable parquet cache of paid HLR answers: never pay twice, lose nothing.

A cache is a folder (created ``0700``: it holds personal data) or an ``s3://`` prefix.
Invariants: an answer is journalled the moment it arrives, then folded into immutable parquet
parts with one explicit schema (:data:`CACHE_SCHEMA`); readers take the newest entry per key
(number + every option that changes the answer + API host), newest meaning last written (the
write sequence), not the latest clock; temporary outcomes are stored but not served by default;
processes sharing a cache pay once per number (claims); what cannot be read is moved aside
(``quarantine-*``) with a warning, never blocking the rest. Its files, and the modules of this
package that own each: ``docs/internals/cache.md``.

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
