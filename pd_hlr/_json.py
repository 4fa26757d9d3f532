"""JSON values that can be stored: lone surrogates repaired, nesting bounded.

An answer decoded from the API may hold a lone surrogate (an emoji cut in half upstream, sent
as ``"\\ud83d"``), which no UTF-8 encoder accepts, and a hostile one may nest without end. The
client checks each answer once with :func:`repaired`; the cache checks every entry again before
it is journalled, since entries can also come from user code.

>>> repaired({"networkName": "Vodafone \\ud83d", "ported": False})
({'networkName': 'Vodafone �', 'ported': False}, 1)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_DEPTH", "NotStorable", "repaired"]

#: Deepest nesting accepted in a result object (the documented ones have 3 levels).
MAX_DEPTH = 32

_SURROGATE = re.compile("[\ud800-\udfff]")
#: The exact types :func:`repaired` returns as they are (a ``str`` only when ASCII).
_PLAIN = frozenset({str, bool, int, float, type(None)})


class NotStorable(ValueError):
    """Not a JSON value (a set, bytes, a non-string key, ...), or nested deeper than
    :data:`MAX_DEPTH`."""


def repaired(value: Any, depth: int = 0) -> tuple[Any, int]:
    """``(copy of value with every lone surrogate replaced by U+FFFD, strings repaired)``.

    Raises :class:`NotStorable` for anything that is not a JSON value or nests deeper than
    :data:`MAX_DEPTH`.

    >>> repaired([[1]] , depth=MAX_DEPTH)
    Traceback (most recent call last):
    ...
    pd_hlr._json.NotStorable: nested deeper than 32 levels
    """
    if isinstance(value, str):
        if value.isascii() or not _SURROGATE.search(value):
            return value, 0
        return _SURROGATE.sub("\ufffd", value), 1
    kind = type(value)
    if kind is not dict and kind is not list and (
        value is None or isinstance(value, bool | int | float)
    ):
        return value, 0
    if depth >= MAX_DEPTH:
        raise NotStorable(f"nested deeper than {MAX_DEPTH} levels")
    count = 0
    if kind is dict or isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                if not isinstance(key, str):
                    raise NotStorable(f"key {key!r} is not a string")
                key, n_key = repaired(key)
                count += n_key
            if type(item) in _PLAIN and (type(item) is not str or item.isascii()):
                out[key] = item  # what the call below returns for it, without the call
                continue
            out[key], n_item = repaired(item, depth + 1)
            count += n_item
        return out, count
    if kind is list or isinstance(value, list | tuple):
        items = []
        for item in value:
            if type(item) in _PLAIN and (type(item) is not str or item.isascii()):
                items.append(item)
                continue
            item, n = repaired(item, depth + 1)
            items.append(item)
            count += n
        return items, count
    raise NotStorable(f"holds a {type(value).__name__}, not a JSON value")
