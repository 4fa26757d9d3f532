"""Settings that travel through the pipeline as small frozen objects.

>>> opts = LookupOptions(detailed=True, route="detailed")
>>> opts.key()
'detailed=1,roaming=0,route=detailed,msisdn=1'
>>> opts.request_kwargs()
{'detailed': True, 'route': 'detailed'}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pandas as pd

#: The vendor's documented price of one lookup (the 402 example's ``required_amount``).
DEFAULT_PRICE = Decimal("0.006")

#: Environment variables pd-hlr reads (this is the one place their names are spelled).
TOKEN_ENV = "PROVERO_API_TOKEN"
BASE_URL_ENV = "PROVERO_BASE_URL"
CACHE_ENV = "PD_HLR_CACHE"


@dataclass(frozen=True)
class LookupOptions:
    """The request options that change the API's answer (and so are part of the cache key)."""

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
        """Keyword arguments for :meth:`HLRClient.lookup`: defaults are left out (not sent)."""
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


@dataclass(frozen=True)
class ValidateSettings:
    """Everything one ``validate``/``estimate`` call needs besides the data, client and cache."""

    options: LookupOptions = field(default_factory=LookupOptions)
    default_region: str | None = None
    strict: bool = False
    only_mobile: bool = False
    workers: int | None = None
    rate_limit: float | None = None
    progress: bool | None = None
    max_age: pd.Timedelta | None = None
    refresh: bool = False
    retry_temporary: bool = True
    prefix: str = ""
    budget: int | None = None
    price: Decimal = DEFAULT_PRICE

    @classmethod
    def from_kwargs(
        cls,
        *,
        detailed: bool = False,
        roaming: bool = False,
        route: str | None = None,
        msisdn: bool = True,
        default_region: str | None = None,
        strict: bool = False,
        only_mobile: bool = False,
        workers: int | None = None,
        rate_limit: float | None = None,
        progress: bool | None = None,
        max_age: str | pd.Timedelta | None = None,
        refresh: bool = False,
        retry_temporary: bool = True,
        prefix: str = "",
        budget: int | None = None,
        price: Decimal | float | str = DEFAULT_PRICE,
    ) -> ValidateSettings:
        """Check and convert the user-facing keyword arguments."""
        if default_region is not None:
            if not isinstance(default_region, str) or len(default_region) != 2:
                raise ValueError(
                    f"default_region must be a 2-letter ISO region code like 'GB', "
                    f"not {default_region!r}"
                )
            default_region = default_region.upper()
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers must be a positive integer, not {workers!r}")
        if rate_limit is not None and not (isinstance(rate_limit, int | float) and rate_limit > 0):
            raise ValueError(f"rate_limit must be a positive number, not {rate_limit!r}")
        if budget is not None and (not isinstance(budget, int) or budget < 0):
            raise ValueError(f"budget must be a non-negative number of lookups, not {budget!r}")
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a string, not {type(prefix).__name__}")
        age = None if max_age is None else pd.Timedelta(max_age)
        if age is not None and age < pd.Timedelta(0):
            raise ValueError(f"max_age must not be negative, not {max_age!r}")
        return cls(
            options=LookupOptions(detailed=detailed, roaming=roaming, route=route, msisdn=msisdn),
            default_region=default_region,
            strict=bool(strict),
            only_mobile=bool(only_mobile),
            workers=workers,
            rate_limit=rate_limit,
            progress=progress,
            max_age=age,
            refresh=bool(refresh),
            retry_temporary=bool(retry_temporary),
            prefix=prefix,
            budget=budget,
            price=Decimal(str(price)),
        )
