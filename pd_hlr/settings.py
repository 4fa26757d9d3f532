"""The options of ``validate``/``estimate``, defined once, and the small frozen objects built
from them.

:data:`OPTIONS` is the one list of option names, defaults and meanings. Every face (the pandas
and Dask accessors, frame and Series) takes exactly these keyword arguments, and
:meth:`ValidateSettings.from_kwargs` checks and converts them:

>>> settings = ValidateSettings.from_kwargs(detailed=True, route="detailed", max_age="30D")
>>> settings.options.key()
'detailed=1,roaming=0,route=detailed,msisdn=1'
>>> settings.options.request_kwargs()
{'detailed': True, 'route': 'detailed'}
>>> settings.max_age
Timedelta('30 days 00:00:00')
>>> ValidateSettings.from_kwargs(max_age=30)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: max_age needs a unit: a string like "30D" (30 days) or "12h" (12 hours), ...; got 30
"""

from __future__ import annotations

import datetime as _dt
import difflib
import inspect
import ipaddress
import numbers
import re
import textwrap
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, TypeVar

import numpy as np
import pandas as pd
import phonenumbers

from . import _spec

#: The vendor's documented price of one lookup (the 402 example's ``required_amount``), without
#: the money string's trailing zeros: ``Decimal('0.006')``.
DEFAULT_PRICE = _spec.PRICE_PER_LOOKUP.normalize()

#: How old a cached temporary outcome must be before a run looks it up again (``retry_temporary``
#: and ``--retry-temporary``): re-running a cell at once pays nothing again.
DEFAULT_RETRY_TEMPORARY = "1h"

#: Concurrent requests of a client when none is given (``HLRClient(workers=)``, ``--workers``).
DEFAULT_WORKERS = 8

#: Environment variables pd-hlr reads (this is the one place their names are spelled).
TOKEN_ENV = "PROVERO_API_TOKEN"
BASE_URL_ENV = "PROVERO_BASE_URL"
CACHE_ENV = "PD_HLR_CACHE"


# --- checks of single values --------------------------------------------------------------------
_UNITLESS = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*")
_AGE_EXAMPLE = 'a string like "30D" (30 days) or "12h" (12 hours), or a datetime.timedelta'


def parse_max_age(value: Any, name: str = "max_age") -> pd.Timedelta | None:
    """``max_age`` as a Timedelta: a string with a unit, or a timedelta; never a bare number
    (``name``: the option checked, for the message).

    >>> parse_max_age("12h")
    Timedelta('0 days 12:00:00')
    >>> parse_max_age("30")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: max_age needs a unit: a string like "30D" (30 days) or ...; got '30'
    """
    if value is None:
        return None
    return _parse_age(value, name)


def parse_retry_temporary(value: Any) -> pd.Timedelta | bool:
    """``retry_temporary`` as the age at which a cached temporary outcome is looked up again:
    a duration with a unit; ``True``: at once (every run, a zero age); ``False``: never.

    >>> parse_retry_temporary("1h"), parse_retry_temporary(True), parse_retry_temporary(False)
    (Timedelta('0 days 01:00:00'), Timedelta('0 days 00:00:00'), False)
    >>> parse_retry_temporary(3600)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: retry_temporary needs a unit: a string like "30D" (30 days) or ...; got 3600
    """
    if isinstance(value, bool | np.bool_):
        return pd.Timedelta(0) if value else False
    if value is None:
        raise TypeError(
            f'retry_temporary must be a duration such as "1h", True or False, not None; '
            f"the default is {_BY_NAME['retry_temporary'].default!r}"
        )
    return _parse_age(value, "retry_temporary")


def _parse_age(value: Any, name: str) -> pd.Timedelta:
    if isinstance(value, _dt.timedelta | np.timedelta64):  # before Number: timedelta64 is one
        age = pd.Timedelta(value)
    elif isinstance(value, numbers.Number):
        raise ValueError(f"{name} needs a unit: {_AGE_EXAMPLE}; got {value!r}")
    elif isinstance(value, str):
        if _UNITLESS.fullmatch(value):
            raise ValueError(f"{name} needs a unit: {_AGE_EXAMPLE}; got {value!r}")
        try:
            age = pd.Timedelta(value)
        except ValueError:
            raise ValueError(
                f"{name} {value!r} is not a duration: use {_AGE_EXAMPLE}"
            ) from None
    else:
        raise TypeError(f"{name} must be {_AGE_EXAMPLE}, not {type(value).__name__}")
    if pd.isna(age):  # NaT too
        raise ValueError(f"{name} must be a duration: {_AGE_EXAMPLE}; got {value!r}")
    if age < pd.Timedelta(0):
        raise ValueError(f"{name} must not be negative: {_AGE_EXAMPLE}; got {value!r}")
    return age


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise TypeError(f"{name} must be True or False, not {value!r}")


def _flag_of(name: str) -> Callable[[Any], bool]:
    """The validator of a True/False option ``name`` (numpy's bools accepted)."""

    def check(value: Any) -> bool:
        return _flag(name, value)

    check.__name__ = f"check_{name}"
    return check


def parse_strict(value: Any) -> bool | None:
    """``strict``: None (the default rule), True or False.

    >>> parse_strict(None), parse_strict(True)
    (None, True)
    """
    if value is None or isinstance(value, bool | np.bool_):
        return None if value is None else bool(value)
    raise TypeError(f"strict must be None, True or False, not {value!r}")


def parse_progress(value: Any) -> bool | None:
    """``progress``: True, False or None (a bar in a terminal or notebook)."""
    return None if value is None else _flag("progress", value)


def parse_price(value: Any) -> Decimal:
    """``price`` as a Decimal: a non-negative finite number per lookup.

    >>> parse_price("0.006")
    Decimal('0.006')
    """
    try:
        price = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        price = None
    if isinstance(value, bool) or price is None or not price.is_finite() or price < 0:
        raise ValueError(
            f"price must be a non-negative number per lookup (e.g. 0.006), not {value!r}"
        )
    return price


def parse_region(value: Any) -> str | None:
    """``default_region`` as the region code libphonenumber knows: spaces stripped, upper case
    (``" gb"`` is ``"GB"``); a code it does not know (``"XX"``) is refused.

    >>> parse_region(" gb"), parse_region(None)
    ('GB', None)
    >>> parse_region("XX")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: default_region must be a 2-letter ISO region code ..., like 'GB', not 'XX'
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"default_region must be a str like 'GB' or None, not {value!r}")
    region = value.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(
            "default_region must be a 2-letter ISO region code libphonenumber knows, like 'GB', "
            f"not {value!r}"
        )
    return region


def parse_ambiguous(value: Any) -> str:
    """``ambiguous``: one of :data:`AMBIGUOUS_CHOICES`.

    >>> parse_ambiguous("national")
    'national'
    """
    if not isinstance(value, str) or value not in AMBIGUOUS_CHOICES:
        raise ValueError(f"ambiguous must be one of {AMBIGUOUS_CHOICES}, not {value!r}")
    return value


def check_national(ambiguous: str, region: str | None, region_column: Any) -> None:
    """The one rule between options: ``ambiguous="national"`` reads a cell as a national number,
    so it needs a region to read it in (``default_region`` or a ``region_column``)."""
    if ambiguous == "national" and region is None and region_column is None:
        raise ValueError(
            'ambiguous="national" needs a default_region to read national numbers: set '
            'default_region too (e.g. default_region="US")'
        )


def parse_region_column(value: Any) -> Any:
    """``region_column``: a column label (a str, an int, ...) or None."""
    if value is not None and (
        isinstance(value, list | dict | set | slice) or not isinstance(value, Hashable)
    ):
        raise TypeError(
            f"region_column must be a column label (a str, an int, ...), not "
            f"{type(value).__name__}"
        )
    return value


def parse_workers(value: Any) -> int | None:
    """``workers``: a positive whole number, or None (the client's default)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"workers must be a positive integer, not {value!r}")
    return int(value)


def parse_rate_limit(value: Any) -> float | None:
    """``rate_limit``: a positive number of requests per second, or None."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0 < float(value) < float("inf")
    ):
        raise ValueError(f"rate_limit must be a positive number, not {value!r}")
    return float(value)


def parse_budget(value: Any) -> int | None:
    """``budget``: a whole number of paid lookups >= 0, or None (no limit)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"budget must be a non-negative number of lookups, not {value!r}")
    return int(value)


def parse_prefix(value: Any) -> str:
    """``prefix``: a string put before every result column's name."""
    if not isinstance(value, str):
        raise TypeError(f"prefix must be a string, not {type(value).__name__}")
    return value


def _as_is(value: Any) -> Any:
    """The run objects' validator: the faces hand ``client`` and ``cache`` to the pipeline."""
    return value


@dataclass(frozen=True)
class Option:
    """One keyword argument of every face: its name, default, type (as text), meaning, and
    validator: the one check of its values (value in, the converted value out; a bad value is
    a ``TypeError``/``ValueError``), called by every face, the CLI, ``normalize`` and the cache.
    """

    name: str
    default: Any
    annotation: str
    doc: str
    validator: Callable[[Any], Any] = _as_is


#: Every option of ``validate``/``estimate``, in the order ``help()`` shows them. ``client`` and
#: ``cache`` are objects rather than settings: faces take them, :class:`ValidateSettings` does not.
OPTIONS: tuple[Option, ...] = (
    Option("detailed", False, "bool", "the API's detailed mode: the full HLR payload",
           _flag_of("detailed")),
    Option("roaming", False, "bool", "the API's roaming check", _flag_of("roaming")),
    Option(
        "route",
        None,
        "str | None",
        "the API's routing product: " + " or ".join(f'"{r}"' for r in _spec.ROUTES),
        _spec.check_route,
    ),
    Option("msisdn", True, "bool", "False sends non-canonical numbers as they are",
           _flag_of("msisdn")),
    Option("default_region", None, "str | None", 'region of national numbers, e.g. "GB"',
           parse_region),
    Option(
        "strict",
        None,
        "bool | None",
        "numbers libphonenumber calls possible but not valid: None withholds national readings "
        "(digits without +/00 read in the region: often another country's) and numbers "
        "written for another country than the row's own (region_column), and sends other "
        "international ones with a note; True withholds all; False sends all with a note",
        parse_strict,
    ),
    Option("only_mobile", False, "bool", "skip numbers that are certainly not mobile",
           _flag_of("only_mobile")),
    Option(
        "ambiguous",
        "skip",
        'Literal["skip", "international", "national"]',
        'cells with two plausible readings (e.g. bare "2015550123"): "skip" them (verdict '
        '"ambiguous", never sent), or read them as "international" / "national"',
        parse_ambiguous,
    ),
    Option(
        "region_column",
        None,
        "str | None",
        "a column of each row's country (code, name or calling code): its national numbers are "
        "read there; default_region is the fallback for blank or unrecognised values",
        parse_region_column,
    ),
    Option("workers", None, "int | None", "concurrent requests (client made here)",
           parse_workers),
    Option(
        "rate_limit",
        None,
        "float | None",
        "a hard ceiling on requests per second; None: the pace adapts to the server's limit "
        "signals (client made here)",
        parse_rate_limit,
    ),
    Option("progress", None, "bool | None", "a progress bar; None: in a terminal or notebook",
           parse_progress),
    Option("client", None, "HLRClient | None", "the client to use; None: one from the environment"),
    Option(
        "cache",
        None,
        "HLRCache | str | os.PathLike[str] | bool | None",
        "an HLRCache or folder; None: $PD_HLR_CACHE or ~/.cache/pd_hlr; False: none",
    ),
    Option("max_age", None, "str | timedelta | None", 'look older answers up again, e.g. "30D"',
           parse_max_age),
    Option("refresh", False, "bool", "ignore cached answers (still store the new ones)",
           _flag_of("refresh")),
    Option(
        "retry_temporary",
        DEFAULT_RETRY_TEMPORARY,
        "str | timedelta | bool",
        "look a cached temporary outcome (absent subscriber, ...) up again once it is this old, "
        'e.g. "1h", "2D"; True: on every run; False: never (only `max_age` applies)',
        parse_retry_temporary,
    ),
    Option("budget", None, "int | None", "refuse to start if more paid lookups are needed",
           parse_budget),
    Option("price", DEFAULT_PRICE, "Decimal | float | str", "price per lookup, for the estimates",
           parse_price),
    Option("prefix", "", "str", "put every result column under this prefix", parse_prefix),
)

#: The choices of the ``ambiguous`` option (:func:`pd_hlr.normalize.normalize` takes them too).
AMBIGUOUS_CHOICES: tuple[str, ...] = ("skip", "international", "national")


def is_loopback_host(host: str) -> bool:
    """True for a loopback API host (the embedded sandbox), e.g. ``127.0.0.1``, ``localhost``.

    >>> is_loopback_host("127.0.0.1"), is_loopback_host("api.provero.io")
    (True, False)
    """
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() == "localhost"


#: Options that are objects, not settings (faces pass them to the pipeline as they are).
RUN_OBJECTS = ("client", "cache")

_BY_NAME = {o.name: o for o in OPTIONS}


def option_names() -> list[str]:
    """Every option name, in :data:`OPTIONS` order.

    >>> option_names()[:3]
    ['detailed', 'roaming', 'route']
    """
    return [o.name for o in OPTIONS]


def options_doc() -> str:
    """The options as an ``Args:``-style block for face docstrings (one line each)."""
    width = max(len(o.name) for o in OPTIONS)
    lines = [f"{o.name.ljust(width)}  {o.doc} (default {o.default!r})" for o in OPTIONS]
    return "Options (keyword-only; the same for every face):\n" + textwrap.indent(
        "\n".join(lines), "    "
    )


def options_table_markdown() -> str:
    """The options table of the docs (docs/guide/python.md), generated from :data:`OPTIONS`."""
    lines = ["| option | default | meaning |", "|---|---|---|"]
    for o in OPTIONS:
        default = str(o.default) if isinstance(o.default, Decimal) else repr(o.default)
        lines.append(f"| `{o.name}` | `{default}` | {o.doc} |")
    return "\n".join(lines)


F = TypeVar("F", bound=Callable[..., Any])


def takes_options(func: F) -> F:
    """Give a face method taking ``**options`` the full option signature and docs.

    ``help()``, ``inspect.signature`` and Jupyter's Shift-Tab then show every option with its
    default; :meth:`ValidateSettings.from_kwargs` rejects any other name.
    """
    sig = inspect.signature(func)
    params = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    params += [
        inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default,
                          annotation=o.annotation)
        for o in OPTIONS
    ]
    func.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    doc = inspect.cleandoc(func.__doc__ or "")
    func.__doc__ = f"{doc}\n\n{options_doc()}\n"
    return func


def split_options(options: Mapping[str, Any]) -> tuple[Any, Any, ValidateSettings]:
    """``(client, cache, settings)`` from a face's keyword arguments (unknown names refused).

    >>> client, cache, settings = split_options({"cache": False, "detailed": True})
    >>> cache, settings.options.detailed
    (False, True)
    """
    rest = dict(options)
    client = rest.pop("client", None)
    cache = rest.pop("cache", None)
    return client, cache, ValidateSettings.from_kwargs(**rest)


@dataclass(frozen=True)
class LookupOptions:
    """The request options that change the API's answer (and so are part of the cache key).

    >>> LookupOptions(detailed=True, route="detailed").key()
    'detailed=1,roaming=0,route=detailed,msisdn=1'
    """

    detailed: bool = False
    roaming: bool = False
    route: str | None = None
    msisdn: bool = True

    def __post_init__(self) -> None:
        for name in ("detailed", "roaming", "msisdn"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, not {getattr(self, name)!r}")
        if self.route is not None and (not isinstance(self.route, str) or not self.route):
            raise TypeError(f"route must be a non-empty string or None, not {self.route!r}")

    def key(self) -> str:
        """Canonical text of the options, used in the cache key."""
        return (
            f"detailed={int(self.detailed)},roaming={int(self.roaming)},"
            f"route={self.route or ''},msisdn={int(self.msisdn)}"
        )

    @classmethod
    def from_key(cls, key: str) -> LookupOptions:
        """The options whose :meth:`key` is ``key`` (the cache reads its keys back with it).

        >>> LookupOptions.from_key("detailed=1,roaming=0,route=detailed,msisdn=1").route
        'detailed'
        """
        fields = dict(part.partition("=")[::2] for part in key.split(","))
        return cls(
            detailed=fields.get("detailed") == "1",
            roaming=fields.get("roaming") == "1",
            route=fields.get("route") or None,
            msisdn=fields.get("msisdn", "1") == "1",
        )

    def request_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :meth:`HLRClient.lookup`: defaults are left out (not sent).

        >>> LookupOptions(msisdn=False).request_kwargs()
        {'msisdn': False}
        """
        kwargs: dict[str, Any] = {}
        if self.detailed:
            kwargs["detailed"] = True
        if self.roaming:
            kwargs["roaming"] = True
        if self.route is not None:
            kwargs["route"] = self.route
        if not self.msisdn:
            kwargs["msisdn"] = False
        return kwargs


def _unknown(names: list[str]) -> TypeError:
    hints = []
    for name in names:
        close = difflib.get_close_matches(name, option_names(), n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return TypeError(
        f"unknown option {', '.join(hints)}; the options are: {', '.join(option_names())}"
    )


_DEFAULT_TEMPORARY_AGE = pd.Timedelta(DEFAULT_RETRY_TEMPORARY)


@dataclass(frozen=True)
class ValidateSettings:
    """Everything one ``validate``/``estimate`` call needs besides the data, client and cache."""

    options: LookupOptions = field(default_factory=LookupOptions)
    default_region: str | None = None
    strict: bool | None = None
    only_mobile: bool = False
    ambiguous: str = "skip"
    region_column: Any = None
    workers: int | None = None
    rate_limit: float | None = None
    progress: bool | None = None
    max_age: pd.Timedelta | None = None
    refresh: bool = False
    #: The age at which a cached temporary outcome is looked up again (0: every run; False:
    #: never, only ``max_age`` applies).
    retry_temporary: pd.Timedelta | Literal[False] = _DEFAULT_TEMPORARY_AGE
    prefix: str = ""
    budget: int | None = None
    price: Decimal = DEFAULT_PRICE

    def values(self) -> dict[str, Any]:
        """Every option's value by name (:data:`OPTIONS` less the run objects), JSON-safe:
        what a result records about the run that made it.

        >>> ValidateSettings.from_kwargs(max_age="30D", default_region="gb").values()["max_age"]
        '30 days 00:00:00'
        """
        values: dict[str, Any] = {}
        for o in OPTIONS:
            if o.name in RUN_OBJECTS:
                continue
            holder = self.options if hasattr(self.options, o.name) else self
            value = getattr(holder, o.name)
            safe = value is None or isinstance(value, bool | int | float | str)
            values[o.name] = value if safe else str(value)
        return values

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> ValidateSettings:
        """Check and convert the user-facing options (:data:`OPTIONS`, less ``client`` and
        ``cache``); an unknown name or a bad value is a clear ``TypeError``/``ValueError``.

        >>> ValidateSettings.from_kwargs(default_regoin="GB")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: unknown option 'default_regoin' (did you mean 'default_region'?); the ...
        """
        unknown = [k for k in kwargs if k not in _BY_NAME or k in RUN_OBJECTS]
        if unknown:
            raise _unknown(unknown)
        v = {
            o.name: o.validator(kwargs.get(o.name, o.default))
            for o in OPTIONS
            if o.name not in RUN_OBJECTS
        }
        check_national(v["ambiguous"], v["default_region"], v["region_column"])
        lookup = {name: v.pop(name) for name in _LOOKUP_FIELDS}
        return cls(options=LookupOptions(**lookup), **v)


#: The options that are :class:`LookupOptions` fields (the rest are :class:`ValidateSettings`').
_LOOKUP_FIELDS = ("detailed", "roaming", "route", "msisdn")
