"""The options of every face as a ``TypedDict``, for type checkers and editors.

Each face's ``validate``/``estimate`` takes ``**options: Unpack[ValidateOptions]``: mypy,
pyright and editors then complete and check ``default_region=``, ``budget=``, ``max_age=``
and the rest. :data:`pd_hlr.settings.OPTIONS` stays the one table of names, defaults and
meanings; ``tests/test_typing.py`` checks this class has the same names and annotations (as
text) in the same order, so the two cannot drift apart.

>>> from pd_hlr.settings import option_names
>>> list(ValidateOptions.__annotations__) == option_names()
True
>>> ValidateOptions.__total__
False
"""

from __future__ import annotations

import os
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Literal, TypedDict

if TYPE_CHECKING:
    from .cache import HLRCache
    from .client import HLRClient

__all__ = ["ValidateOptions"]


class ValidateOptions(TypedDict, total=False):
    """The keyword arguments of ``validate``/``estimate`` (see :data:`pd_hlr.settings.OPTIONS`)."""

    detailed: bool
    roaming: bool
    route: str | None
    msisdn: bool
    default_region: str | None
    strict: bool | None
    only_mobile: bool
    ambiguous: Literal["skip", "international", "national"]
    region_column: str | None
    workers: int | None
    rate_limit: float | None
    progress: bool | None
    client: HLRClient | None
    cache: HLRCache | str | os.PathLike[str] | bool | None
    max_age: str | timedelta | None
    refresh: bool
    retry_temporary: str | timedelta | bool
    budget: int | None
    price: Decimal | float | str
    prefix: str
