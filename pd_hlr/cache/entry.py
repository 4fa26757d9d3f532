"""One cache entry, and its journal line: written in one place, parsed in one place.

An :class:`Entry` is one paid answer: the key (number, request options, API host), the result
object as received, when it arrived (``checked_at``, wall-clock data used by ``max_age``) and its
place in the folder's write sequence (``seq``, given by the writer: newest means last written).

Every entry is checked before it is journalled (:meth:`Entry.checked`): half a surrogate pair
(``"\\ud83d"``, an emoji cut in half upstream) cannot be stored as UTF-8, so each lone surrogate
becomes U+FFFD; anything that is not JSON-shaped is refused with :class:`BadEntry`.

>>> from datetime import UTC, datetime
>>> e = Entry("+447400123456", "detailed=0", "127.0.0.1", {"to": "O2 \\ud83d"},
...           datetime(2024, 5, 1, tzinfo=UTC), seq=7)
>>> back = Entry.from_line(e.to_line())
>>> back.result["to"], back.seq
('O2 �', 7)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .._json import NotStorable, repaired

__all__ = ["BadEntry", "Entry", "legacy_seq", "seq_field"]

#: Entries written before the write sequence existed rank below every sequenced entry, among
#: themselves by ``checked_at`` (microseconds since the epoch, shifted below zero).
_LEGACY_OFFSET = 1 << 62


#: A journal line's parts: one encoder for every line (``json.dumps`` with arguments builds
#: one per call), and a string as it writes one.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=True)
_text = json.encoder.encode_basestring_ascii


def legacy_seq(checked_at_us: int) -> int:
    """The sequence value of an entry written before sequences existed (always negative)."""
    return checked_at_us - _LEGACY_OFFSET


class BadEntry(ValueError):
    """A journal line or entry that cannot be stored or read back; it is quarantined."""


@dataclass(frozen=True)
class Entry:
    """One answer to store: the lookup key, the raw result object, when it arrived, and (once
    written) its place in the cache folder's write sequence."""

    number: str
    options: str
    api: str
    result: Mapping[str, Any]
    checked_at: datetime
    seq: int | None = None

    def checked(self) -> Entry:
        """This entry made safe to store: strings are valid Unicode (each lone surrogate →
        U+FFFD), the result is a JSON object no deeper than :data:`pd_hlr._json.MAX_DEPTH`,
        ``checked_at``
        is timezone-aware UTC. Raises :class:`BadEntry` when it cannot be made so."""
        for name in ("number", "options", "api"):
            text = getattr(self, name)
            if not isinstance(text, str) or not text:
                raise BadEntry(f"{name} must be a non-empty string, not {text!r}")
        if type(self.result) is not dict and not isinstance(self.result, Mapping):
            raise BadEntry(f"result must be a JSON object, not {type(self.result).__name__}")
        if not isinstance(self.checked_at, datetime):
            raise BadEntry(f"checked_at must be a datetime, not {self.checked_at!r}")
        if self.seq is not None and (not isinstance(self.seq, int) or isinstance(self.seq, bool)):
            raise BadEntry(f"seq must be an integer, not {self.seq!r}")
        when = self.checked_at
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        elif when.tzinfo is not UTC:
            when = when.astimezone(UTC)
        try:
            (number, options, api, result), _ = repaired(
                [self.number, self.options, self.api, self.result], depth=-1
            )
        except NotStorable as exc:
            raise BadEntry(f"result {exc}") from exc
        except RecursionError as exc:
            raise BadEntry("result nested too deep") from exc
        return type(self)(number, options, api, result, when, self.seq)

    def to_line(self) -> bytes:
        """The entry as one journal line (ASCII JSON + newline). Call on a checked entry."""
        head, tail = self.line_parts()
        return head + tail if self.seq is None else head + seq_field(self.seq) + tail

    def line_parts(self) -> tuple[bytes, bytes]:
        """The journal line without its ``seq``, in two parts: the line is ``head + tail``, or
        ``head + seq_field(seq) + tail`` (a writer encodes an answer before it takes its place
        in the write sequence, and only joins the parts then)."""
        head = (  # what json.dumps writes for these four strings, made without it
            f'{{"n":{_text(self.number)},"o":{_text(self.options)},"a":{_text(self.api)},'
            f'"t":{_text(self.checked_at.isoformat())},'
        )
        result = _ENCODER.encode(self.result)
        return head.encode("ascii"), f'"r":{result}}}\n'.encode("ascii")

    def with_seq(self, seq: int) -> Entry:
        """This entry at its place ``seq`` in the write sequence."""
        return type(self)(self.number, self.options, self.api, self.result, self.checked_at, seq)

    @classmethod
    def from_line(cls, line: bytes) -> Entry:
        """Parse and check one journal line; :class:`BadEntry` says why it is not an entry."""
        try:
            rec = json.loads(line)
        except RecursionError as exc:
            raise BadEntry("line nested too deep") from exc
        except ValueError as exc:  # bad JSON, bad UTF-8
            raise BadEntry(f"not JSON ({exc})") from exc
        if not isinstance(rec, dict):
            raise BadEntry(f"a JSON {type(rec).__name__}, not an entry object")
        missing = {"n", "o", "a", "t", "r"} - rec.keys()
        if missing:
            raise BadEntry(f"entry without {sorted(missing)}")
        if not isinstance(rec["t"], str):
            raise BadEntry(f"checked_at {rec['t']!r} is not a string")
        try:
            when = datetime.fromisoformat(rec["t"])
        except ValueError as exc:
            raise BadEntry(f"checked_at {rec['t']!r} is not an ISO time") from exc
        entry = cls(rec["n"], rec["o"], rec["a"], rec["r"], when, rec.get("s"))
        return entry.checked()


def seq_field(seq: int) -> bytes:
    """The ``seq`` field of a journal line, as :meth:`Entry.line_parts` leaves room for it."""
    return b'"s":%d,' % seq
