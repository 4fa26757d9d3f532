"""A local, spec-faithful Provero phone-HLR server (the embedded default of pd-hlr).

``POST /api/validate/phone`` as ``shared/spec/provero-phone-hlr-api.md`` describes it, on a real
stdlib HTTP/1.1 server (keep-alive, daemon threads) bound to a loopback address only, with
accounting (balance, charged lookups per number), a rate limit, latency and fault injection.

Example:
    >>> import requests
    >>> from pd_hlr import sandbox
    >>> with sandbox.serve(token="t") as sb:
    ...     r = requests.post(sb.url + "/api/validate/phone", json={"phone": "+447400123456"},
    ...                       headers={"Authorization": "Bearer t"}, timeout=5)
    ...     r.json()["results"][0] == sandbox.answer("+447400123456")
    True

Decisions on the spec's gaps (the client must not rely on anything else):

- Order of checks: body read → latency → path (404) / method (405) → auth (401
  ``{"message": "Unauthenticated."}``) → rate limit (429) → injected drop / 500 / 503 / 429 →
  JSON (400 ``requestError``) → validation (422) → injected quota (200, not charged) → balance
  (402) → answer (200, charged; injected temporary / truncated / slow apply here).
- Validation answers 422. Length is ``len(phone)`` as sent ("+" and spaces count); a missing,
  null, empty or blank phone is "required". Extra sandbox-only 422 messages, same shape:
  ``"The phone field must be a string."``, ``"The <field> field must be true or false."``,
  ``"The route field must be a string."``. An empty body is ``{}`` (so "required").
- Booleans accept ``true, "true", "1", 1`` and ``false, "false", "0", 0`` (strings
  case-insensitive); ``null`` means "not sent". Any ``route`` string is accepted; only
  ``"detailed"`` (case-insensitive) adds ``ported`` / ``portedNetwork``.
- ``msisdn`` true (default): the phone must be ``"+<digits>"`` and a valid number for its region
  (phonenumbers ``is_valid_number``); an unknown country code gives error
  REGION_PREFIX_UNRECOGNIZED, anything else UNDELIVERABLE_NOT_DELIVERED (both permanent, both
  charged). ``msisdn`` false: every non-digit is dropped, a leading ``00`` too, and a duplicated
  country code (``+4444...``) is removed when that makes the number valid; the answer is then the
  normal synthetic answer of that canonical number (``to`` still echoes the phone as sent).
- The answer is a pure function of the canonical number (seeded from its sha256) and the options:
  ~80 % live, ~12 % dead, ~6 % out of network, ~2 % temporary error. Porting (~15 %) and roaming
  (~5 %) are facts of live numbers only; the result shows them when ``route`` is "detailed" /
  ``roaming`` is requested. Non-live results use the spec's "invalid / absent" shape
  (``ported: false`` always present, never ``portedNetwork``; ``roaming: false`` when requested).
- Summary ``status`` strings: ``"Live"`` (live), ``"Dead"`` (dead, including numbers that fail the
  msisdn check), ``"Out of network"`` (outOfNetwork) and ``"Unknown"`` (temporary errors and
  quota: all three booleans false). ``currentNetwork`` is the ported-to network when ported,
  else the original one; both are ``""`` when unknown. A quota answer in summary mode also
  carries the detailed ``error`` object (else a summary could not signal it).
- Detailed ``status`` of live numbers is the example's DELIVERED_TO_HANDSET; dead numbers get the
  example's "Absent Subscriber" status; other non-live results mirror their error row. Live
  ``error`` is the table's NO_ERROR row for ~70 % of numbers and the example's variant
  (``name`` DELIVERED_TO_HANDSET, "No Error.") for the rest - both appear in the spec.
- ``imsi`` is always ``""`` (every example body has ``""``; the table's "same as mccMnc" loses).
  ``mccMnc`` is the current (ported-to) network's MCC + MNC; ``networkId`` is always ``""``;
  ``networkPrefix`` is the carrier's number-range prefix without the country code.
- 429s (rate limit and injected) carry ``{"message": "Too Many Attempts."}``; 500 / 503 carry a
  ``requestError.serviceException`` body with ``code`` "500" / "503".
- Stats: dropped requests are logged with status 0 (and counted under 0 in ``status_counts``);
  the rate limiter's refusals count as fault ``"rate_limit"``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import email.utils
import hashlib
import ipaddress
import json
import logging
import math
import random
import re
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache, lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any, NamedTuple

import phonenumbers
from phonenumbers import geocoder as pn_geocoder
from phonenumbers.carrierdata import CARRIER_DATA

from pd_hlr import _spec
from pd_hlr._spec import ErrorCode, Status

__all__ = [
    "Faults",
    "RequestRecord",
    "Sandbox",
    "SandboxStats",
    "add_arguments",
    "answer",
    "main",
    "run_forever",
    "run_from_args",
    "serve",
]

log = logging.getLogger("pd_hlr.sandbox")

# ------------------------------------------------------------------------------------------------
# Synthetic, deterministic answers
# ------------------------------------------------------------------------------------------------

_COUNTRY_NAMES = {
    "GB": "United Kingdom", "US": "United States", "CA": "Canada", "DE": "Germany",
    "FR": "France", "ES": "Spain", "IT": "Italy", "NL": "Netherlands", "IE": "Ireland",
    "IN": "India", "AU": "Australia", "BR": "Brazil", "MX": "Mexico", "ZA": "South Africa",
    "NG": "Nigeria", "PL": "Poland", "SE": "Sweden", "NO": "Norway", "DK": "Denmark",
    "FI": "Finland", "BE": "Belgium", "AT": "Austria", "CH": "Switzerland", "PT": "Portugal",
    "GR": "Greece", "TR": "Turkey", "RU": "Russia", "UA": "Ukraine", "CN": "China",
    "JP": "Japan", "KR": "South Korea", "SG": "Singapore", "MY": "Malaysia", "ID": "Indonesia",
    "PH": "Philippines", "TH": "Thailand", "VN": "Vietnam", "AE": "United Arab Emirates",
    "SA": "Saudi Arabia", "EG": "Egypt", "KE": "Kenya", "GH": "Ghana", "AR": "Argentina",
    "CL": "Chile", "CO": "Colombia", "PE": "Peru", "NZ": "New Zealand", "IL": "Israel",
    "PK": "Pakistan", "BD": "Bangladesh", "HK": "Hong Kong", "CZ": "Czechia", "HU": "Hungary",
    "RO": "Romania", "GG": "Guernsey", "JE": "Jersey", "IM": "Isle of Man",
}  # fmt: skip

_MCC = {
    "GB": "234", "GG": "234", "JE": "234", "IM": "234", "US": "310", "CA": "302", "DE": "262",
    "FR": "208", "ES": "214", "IT": "222", "NL": "204", "IE": "272", "IN": "404", "AU": "505",
    "BR": "724", "MX": "334", "ZA": "655", "NG": "621", "PL": "260", "SE": "240", "NO": "242",
    "DK": "238", "FI": "244", "BE": "206", "AT": "232", "CH": "228", "PT": "268", "GR": "202",
    "TR": "286", "RU": "250", "UA": "255", "CN": "460", "JP": "440", "KR": "450", "SG": "525",
    "MY": "502", "ID": "510", "PH": "515", "TH": "520", "VN": "452", "AE": "424", "SA": "420",
    "EG": "602", "KE": "639", "GH": "620", "AR": "722", "CL": "730", "CO": "732", "PE": "716",
    "NZ": "530", "IL": "425", "PK": "410", "BD": "470", "HK": "454", "CZ": "230", "HU": "216",
    "RO": "226",
}  # fmt: skip
_MCC_FALLBACK = "999"
_THREE_DIGIT_MNC = frozenset({"US", "CA", "MX"})

_KNOWN_MNC = {
    ("GB", "EE"): "30", ("GB", "O2"): "10", ("GB", "Vodafone"): "15", ("GB", "Three"): "20",
    ("GB", "Orange"): "33", ("DE", "T-Mobile"): "01", ("DE", "Vodafone"): "02",
    ("DE", "O2"): "07", ("DE", "Eplus"): "03", ("FR", "Orange France"): "01", ("FR", "SFR"): "10",
    ("FR", "Bouygues"): "20", ("FR", "Free Mobile"): "15", ("ES", "Movistar"): "07",
    ("ES", "Vodafone"): "01", ("ES", "Orange"): "03", ("ES", "Yoigo"): "04", ("IT", "TIM"): "01",
    ("IT", "Vodafone"): "10", ("IT", "WIND"): "88", ("US", "Verizon Wireless"): "004",
    ("US", "AT&T Mobility"): "410", ("US", "T-Mobile USA"): "260", ("CA", "Rogers Wireless"): "720",
    ("CA", "Bell Mobility"): "610", ("CA", "Telus Mobility"): "220",
}  # fmt: skip

# Countries whose carriers phonenumbers does not know (number portability hides them).
_FALLBACK_CARRIERS = {
    "US": ("Verizon Wireless", "AT&T Mobility", "T-Mobile USA", "US Cellular"),
    "CA": ("Rogers Wireless", "Bell Mobility", "Telus Mobility", "Freedom Mobile"),
    "MX": ("Telcel", "AT&T Mexico", "Movistar"),
}
# Fixed-line incumbents and rivals, for landlines (phonenumbers has carriers of mobiles only).
_FIXED_CARRIERS = {
    "GB": ("BT", "Virgin Media", "TalkTalk", "Sky"),
    "DE": ("Deutsche Telekom", "Vodafone", "Telefonica Germany"),
    "FR": ("Orange", "SFR", "Bouygues Telecom", "Free"),
    "ES": ("Movistar", "Orange", "Vodafone"),
    "IT": ("TIM", "Fastweb", "Vodafone"),
    "NL": ("KPN", "VodafoneZiggo"),
    "IE": ("eir", "Virgin Media"),
}
_ROAMING_DESTINATIONS = ("ES", "FR", "US", "DE", "IT", "GR", "TR", "AE", "TH", "PT", "NL", "GB")
_POOL_SIZE = 5

_ERR = _spec.find_error
_OK_ERROR = _ERR("NO_ERROR")
_DEAD_ERRORS = (
    _ERR("EC_UNKNOWN_SUBSCRIBER", 1),
    _ERR("EC_UNKNOWN_SUBSCRIBER", 2),
    _ERR("REJECTED_NETWORK"),
    _ERR("NUMBER_UNLISTED_IN_CURRENT_DATABASE"),
    _ERR("EC_UNIDENTIFIED_SUBSCRIBER"),
    _ERR("NUMBER_MISSING_FROM_NETWORK_REGISTRY"),
    _spec.EXAMPLE_ABSENT_ERROR,
    _spec.EXAMPLE_ABSENT_ERROR,
)
_UK_DEAD_ERROR = _ERR("UK_NUMBER_TRANSFER_RECORD_NOT_LOCATED")
_OUT_OF_NETWORK_ERRORS = (
    *(e for e in _spec.ERROR_CODES if e.name == "EC_TELESERVICE_NOT_PROVISIONED"),
    _ERR("EC_CALL_BARRED"),
    _ERR("EC_ILLEGAL_SUBSCRIBER"),
    _ERR("INTERNATIONAL_ROUTE_NOT_SUPPORTED"),
    _ERR("EC_FACILITY_NOT_SUPPORTED"),
)
_TEMPORARY_ERRORS = (
    _ERR("TARGET_CARRIER_OVERLOAD_DETECTED"),
    _ERR("EC_NO_RESPONSE"),
    _ERR("TARGET_CARRIER_CONNECTIVITY_FAULT"),
    _ERR("TARGET_CARRIER_MOMENTARILY_INACCESSIBLE"),
    _ERR("EC_ABSENT_SUBSCRIBER_SM", 1),
    _ERR("EC_SUBSCRIBER_BUSY_FOR_MT_SMS"),
    _ERR("EC_SYSTEM_FAILURE", 2, "Subscriber Error (Temporary)."),
    _ERR("NO_NETWORK_RESPONSE"),
)
_QUOTA_ERROR = _ERR("TRAFFIC_QUOTA_EXCEEDED")
_BAD_FORMAT_ERROR = _ERR("UNDELIVERABLE_NOT_DELIVERED")
_UNKNOWN_REGION_ERROR = _ERR("REGION_PREFIX_UNRECOGNIZED")

_SUMMARY_STATUS = {
    "live": "Live",
    "dead": "Dead",
    "out_of_network": "Out of network",
    "temporary": "Unknown",
}
_E164_RE = re.compile(r"\+[1-9][0-9]*")
_NON_DIGITS = re.compile(r"[^0-9]")


class _Net(NamedTuple):
    name: str
    prefix: str
    country_name: str
    country_prefix: str
    mcc_mnc: str

    def as_json(self) -> dict[str, str]:
        return {
            "networkName": self.name,
            "networkPrefix": self.prefix,
            "countryName": self.country_name,
            "countryPrefix": self.country_prefix,
            "networkId": "",
        }


class _Facts(NamedTuple):
    """Everything the answer of one canonical number depends on."""

    outcome: str  # live | dead | out_of_network | temporary | invalid
    original: _Net
    ported_to: _Net | None
    roaming_net: _Net | None
    error: ErrorCode
    temporary_error: ErrorCode  # used when a temporary answer is forced


def _split_cc(digits: str) -> str | None:
    for n in (1, 2, 3):
        if len(digits) > n and int(digits[:n]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return digits[:n]
    return None


def _country_name(region: str | None) -> str:
    if not region or region == "001":
        return "International Networks" if region == "001" else ""
    name = _COUNTRY_NAMES.get(region)
    if name is None:
        name = pn_geocoder._region_display_name(region, "en") or region
    return name


def _mcc_mnc(region: str | None, name: str) -> str:
    if not region or not name:
        return ""
    mnc = _KNOWN_MNC.get((region, name))
    if mnc is None:
        h = int.from_bytes(hashlib.sha256(f"{region}:{name}".encode()).digest()[:4], "big")
        mnc = f"{h % 998 + 1:03d}" if region in _THREE_DIGIT_MNC else f"{h % 98 + 1:02d}"
    return _MCC.get(region, _MCC_FALLBACK) + mnc


@cache
def _carrier_prefixes() -> dict[str, dict[str, list[str]]]:
    """Pool key → carrier name → its prefixes (country code included), from phonenumbers.

    Keys: ``"cc:<cc>"`` for a whole calling code, and the calling code plus the next digit
    (``"447"``: UK mobiles) — for calling code 1 the four digits ``1`` + area code.
    """
    pools: dict[str, dict[str, list[str]]] = collections.defaultdict(
        lambda: collections.defaultdict(list)
    )
    for prefix, names in CARRIER_DATA.items():
        name = names.get("en") or next(iter(names.values()), "")
        cc = _split_cc(prefix)
        if not name or cc is None:
            continue
        pools["cc:" + cc][name].append(prefix)
        sub = prefix[:4] if cc == "1" else prefix[: len(cc) + 1]
        if len(sub) > len(cc):
            pools[sub][name].append(prefix)
    return {k: dict(v) for k, v in pools.items()}


@lru_cache(maxsize=4096)
def _pool(key: str) -> tuple[tuple[str, int, tuple[str, ...]], ...]:
    """The biggest carriers of a pool: (name, weight, prefixes), largest first."""
    named = _carrier_prefixes().get(key, {})
    ranked = sorted(named.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:_POOL_SIZE]
    return tuple((name, len(prefixes), tuple(sorted(prefixes))) for name, prefixes in ranked)


@lru_cache(maxsize=1024)
def _region_pool(region: str, cc: str, sub: str) -> tuple[tuple[str, int, tuple[str, ...]], ...]:
    if region in _FALLBACK_CARRIERS:
        return tuple((n, 1, ()) for n in _FALLBACK_CARRIERS[region])
    pool = _pool(sub) or _pool("cc:" + cc)
    if len(pool) >= 2:
        return pool
    country = _country_name(region) or "Unknown"
    return (*pool, (f"{country} Mobile", 1, ()), (f"{country} Telecom", 1, ()))


def _pick(pool: Sequence[tuple[str, int, tuple[str, ...]]], u: float) -> tuple[str, tuple]:
    total = sum(w for _, w, _ in pool)
    x = u * total
    for name, weight, prefixes in pool:
        if x < weight:
            return name, prefixes
        x -= weight
    return pool[-1][0], pool[-1][2]


def _longest_carrier_prefix(digits: str, cc: str) -> tuple[str, str] | None:
    for n in range(min(len(digits), 9), len(cc), -1):
        names = CARRIER_DATA.get(digits[:n])
        if names:
            return names.get("en") or next(iter(names.values())), digits[:n]
    return None


def _seed_slots(canonical: str) -> list[float]:
    h = hashlib.sha256(("+" + canonical).encode()).digest()
    return [int.from_bytes(h[i : i + 2], "big") / 65536.0 for i in range(0, 32, 2)]


def _foreign_net(region: str, u_region: float, u_carrier: float, u_prefix: float) -> _Net:
    choices = [r for r in _ROAMING_DESTINATIONS if r != region]
    visited = choices[int(u_region * len(choices))]
    cc = str(phonenumbers.country_code_for_region(visited))
    name, prefixes = _pick(_region_pool(visited, cc, "cc:" + cc), u_carrier)
    prefix = prefixes[int(u_prefix * len(prefixes))][len(cc) :] if prefixes else ""
    return _Net(name, prefix, _country_name(visited), cc, _mcc_mnc(visited, name))


@lru_cache(maxsize=65536)
def _facts(canonical: str) -> _Facts:
    """Deterministic facts of a canonical number (digits with country code, no "+")."""
    u = _seed_slots(canonical)
    cc = _split_cc(canonical)
    if cc is None:  # only reachable through answer() with msisdn=False and garbage
        empty = _Net("", "", "", "", "")
        return _Facts("invalid", empty, None, None, _UNKNOWN_REGION_ERROR, _TEMPORARY_ERRORS[0])
    try:
        num = phonenumbers.parse("+" + canonical)
        region = phonenumbers.region_code_for_number(num)
        nsn = phonenumbers.national_significant_number(num)
        ndc_len = phonenumbers.length_of_national_destination_code(num)
        ntype = phonenumbers.number_type(num)
    except phonenumbers.NumberParseException:  # pragma: no cover - cc checked above
        region, nsn, ndc_len, ntype = None, canonical[len(cc) :], 0, None
    if region is None:
        region = phonenumbers.region_code_for_country_code(int(cc))
        region = None if region == "ZZ" else region
    country = _country_name(region)
    sub = canonical[:4] if cc == "1" else canonical[: len(cc) + 1]
    if ntype == phonenumbers.PhoneNumberType.FIXED_LINE:
        names = _FIXED_CARRIERS.get(region or "") or (f"{country or 'National'} Telecom",)
        pool = tuple((n, 1, ()) for n in names)
    else:
        pool = _region_pool(region or "", cc, sub)

    hit = _longest_carrier_prefix(canonical, cc)
    if hit is not None:
        orig_name, orig_prefix = hit[0], hit[1][len(cc) :]
    else:
        orig_name = _pick(pool, u[7])[0]
        orig_prefix = nsn[: ndc_len or 3]
    original = _Net(orig_name, orig_prefix, country, cc, _mcc_mnc(region, orig_name))

    x = u[0]
    if x < 0.80:
        outcome = "live"
        error = _spec.EXAMPLE_OK_ERROR if u[6] < 0.3 else _OK_ERROR
    elif x < 0.92:
        outcome = "dead"
        if region == "GB" and u[6] < 0.15:
            error = _UK_DEAD_ERROR
        else:
            error = _DEAD_ERRORS[int(u[6] * len(_DEAD_ERRORS))]
    elif x < 0.98:
        outcome = "out_of_network"
        error = _OUT_OF_NETWORK_ERRORS[int(u[6] * len(_OUT_OF_NETWORK_ERRORS))]
    else:
        outcome = "temporary"
        error = _TEMPORARY_ERRORS[int(u[6] * len(_TEMPORARY_ERRORS))]
    temporary_error = _TEMPORARY_ERRORS[int(u[8] * len(_TEMPORARY_ERRORS))]

    ported_to = None
    if outcome == "live" and u[1] < 0.15:
        others = [c for c in pool if c[0] != orig_name]
        if others:
            name, prefixes = _pick(others, u[2])
            prefix = prefixes[int(u[3] * len(prefixes))][len(cc) :] if prefixes else orig_prefix
            ported_to = _Net(name, prefix, country, cc, _mcc_mnc(region, name))
    roaming_net = None
    if outcome == "live" and u[4] < 0.05:
        roaming_net = _foreign_net(region or "", u[5], u[9], u[10])
    return _Facts(outcome, original, ported_to, roaming_net, error, temporary_error)


def _canonical(phone: str, msisdn: bool) -> tuple[str | None, ErrorCode | None]:
    """Return (canonical digits, None) or (digits-or-None, the error explaining why not)."""
    if msisdn:
        if not _E164_RE.fullmatch(phone):
            return None, _BAD_FORMAT_ERROR
        digits = phone[1:]
        if _split_cc(digits) is None:
            return None, _UNKNOWN_REGION_ERROR
        if not _is_valid(digits):
            return digits, _BAD_FORMAT_ERROR
        return digits, None
    digits = _NON_DIGITS.sub("", phone)
    if phone.lstrip().startswith("00"):
        digits = digits[2:]
    cc = _split_cc(digits)
    if cc is None:
        return None, (_UNKNOWN_REGION_ERROR if digits else _BAD_FORMAT_ERROR)
    rest = digits[len(cc) :]
    if rest.startswith(cc) and not _is_valid(digits) and _is_valid(rest):
        digits = rest
    return digits, None


@lru_cache(maxsize=65536)
def _is_valid(digits: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse("+" + digits))
    except phonenumbers.NumberParseException:
        return False


def _error_json(e: ErrorCode) -> dict[str, Any]:
    return {
        "groupId": e.group_id,
        "groupName": e.group_name,
        "id": e.id,
        "name": e.name,
        "description": e.description,
        "permanent": e.permanent,
    }


def _status_json(s: Status | ErrorCode) -> dict[str, Any]:
    return {
        "groupId": s.group_id,
        "groupName": s.group_name,
        "id": s.id,
        "name": s.name,
        "description": s.description,
    }


def _build(
    phone: str,
    detailed: bool,
    roaming: bool,
    route_detailed: bool,
    msisdn: bool,
    force: str | None = None,
) -> dict[str, Any]:
    """The result object for a valid request; force is None, "temporary" or "quota"."""
    canonical, bad = _canonical(phone, msisdn)
    if bad is not None:
        cc = _split_cc(canonical) if canonical else None
        region = phonenumbers.region_code_for_country_code(int(cc)) if cc else None
        country = _country_name(region if region != "ZZ" else None)
        original = _Net("", "", country, cc or "", "")
        facts = _Facts("invalid", original, None, None, bad, _TEMPORARY_ERRORS[0])
    else:
        facts = _facts(canonical)  # type: ignore[arg-type]
    outcome, error = facts.outcome, facts.error
    if outcome == "invalid":
        outcome = "dead"
    elif force == "temporary":
        outcome, error = "temporary", facts.temporary_error
    elif force == "quota":
        outcome, error = "temporary", _QUOTA_ERROR
    live = outcome == "live"
    current = facts.ported_to if (live and facts.ported_to) else facts.original

    if not detailed:
        result: dict[str, Any] = {
            "to": phone,
            "status": _SUMMARY_STATUS[outcome],
            "live": live,
            "dead": outcome == "dead",
            "outOfNetwork": outcome == "out_of_network",
            "currentNetwork": current.name,
            "originalNetwork": facts.original.name,
        }
        if force == "quota" and bad is None:
            result["error"] = _error_json(error)
        return result

    result = {
        "to": phone,
        "mccMnc": current.mcc_mnc,
        "imsi": "",
        "originalNetwork": facts.original.as_json(),
    }
    if live:
        result["status"] = _status_json(_spec.STATUS_DELIVERED_TO_HANDSET)
        result["error"] = _error_json(error)
        if roaming:
            result["roaming"] = facts.roaming_net is not None
            if facts.roaming_net is not None:
                result["roamingNetwork"] = facts.roaming_net.as_json()
        if route_detailed:
            result["ported"] = facts.ported_to is not None
            if facts.ported_to is not None:
                result["portedNetwork"] = facts.ported_to.as_json()
        return result
    status = _spec.STATUS_ABSENT_SUBSCRIBER if outcome == "dead" and bad is None else error
    result["status"] = _status_json(status)
    result["ported"] = False
    result["error"] = _error_json(error)
    if roaming:
        result["roaming"] = False
    return result


def _parse_bool(value: Any) -> bool | None:
    """True/False for the vendor's forms, None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return True if value == 1 else False if value == 0 else None
    if isinstance(value, str):
        v = value.strip().lower()
        return True if v in ("true", "1") else False if v in ("false", "0") else None
    return None


def _coerce(value: Any, name: str, default: bool) -> bool:
    if value is None:
        return default
    parsed = _parse_bool(value)
    if parsed is None:
        raise ValueError(f"{name} must be one of true/'true'/'1'/1 or false/'false'/'0'/0")
    return parsed


def _route_is_detailed(route: Any) -> bool:
    return isinstance(route, str) and route.strip().lower() == "detailed"


def answer(
    phone: str,
    *,
    detailed: Any = False,
    roaming: Any = False,
    route: str | None = None,
    msisdn: Any = True,
) -> dict[str, Any]:
    """The result object the sandbox sends for a valid request (no faults, nothing charged).

    Options take the vendor's boolean forms (``True``, ``"true"``, ``"1"``, ``1``, ...).

    Example:
        >>> answer("+447400123456")["to"]
        '+447400123456'
        >>> set(answer("+447400123456", detailed=True)) >= {"mccMnc", "imsi", "status", "error"}
        True
    """
    return _build(
        phone,
        _coerce(detailed, "detailed", False),
        _coerce(roaming, "roaming", False),
        _route_is_detailed(route),
        _coerce(msisdn, "msisdn", True),
    )


# ------------------------------------------------------------------------------------------------
# Knobs, stats
# ------------------------------------------------------------------------------------------------

_FAULT_ORDER = (
    "drop",
    "error_500",
    "error_503",
    "rate_429",
    "quota",
    "temporary",
    "truncated",
    "slow",
)


@dataclass(frozen=True)
class Faults:
    """Fault-injection probabilities per request (0..1), drawn from the sandbox's seeded RNG.

    Example:
        >>> Faults(error_503=0.1, retry_after=2.0).error_503
        0.1
    """

    error_500: float = 0.0
    error_503: float = 0.0
    rate_429: float = 0.0
    retry_after: float = 1.0
    retry_after_http_date: bool = False
    drop: float = 0.0
    slow: float = 0.0
    slow_seconds: float = 2.0
    truncated: float = 0.0
    temporary: float = 0.0
    quota: float = 0.0

    def __post_init__(self) -> None:
        for name in _FAULT_ORDER:
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"Faults.{name} must be a probability in [0, 1], got {p!r}")
        if self.retry_after < 0 or self.slow_seconds < 0:
            raise ValueError("Faults.retry_after and Faults.slow_seconds must be >= 0")

    @property
    def active(self) -> tuple[tuple[str, float], ...]:
        """(name, probability) of the knobs that can fire, in precedence order."""
        return tuple((n, getattr(self, n)) for n in _FAULT_ORDER if getattr(self, n) > 0)


class RequestRecord(NamedTuple):
    """One request as the sandbox saw it (status 0: dropped without an answer).

    Example:
        >>> RequestRecord(0.0, "+447400123456", 200, None, True).charged
        True
    """

    t: float
    phone: str | None
    status: int
    fault: str | None
    charged: bool


@dataclass(frozen=True)
class SandboxStats:
    """A snapshot of the sandbox's counters.

    ``received`` counts every request naming the phone, whatever its outcome (401s too);
    ``charged`` only the answers that were paid for.

    Example:
        >>> s = SandboxStats(1, {"+447400123456": 1}, {"+447400123456": 1}, {200: 1}, {}, None)
        >>> s.total_charged
        1
    """

    requests: int
    charged: dict[str, int]
    received: dict[str, int]
    status_counts: dict[int, int]
    fault_counts: dict[str, int]
    balance: int | None

    @property
    def total_charged(self) -> int:
        return sum(self.charged.values())


_UNSET: Any = object()


class _State:
    """Everything mutable, guarded by one lock."""

    def __init__(
        self,
        token: str,
        latency: float,
        balance: int | None,
        rate_limit: float | None,
        faults: Faults | None,
        seed: int,
        price: Decimal,
        log_limit: int | None,
    ) -> None:
        self.lock = threading.Lock()
        self.auth = ("Bearer " + token) if token else None
        self.price = price
        self.rng = random.Random(seed)
        self.window: collections.deque[float] = collections.deque()
        self.log_limit = log_limit
        self.set_knobs(latency, balance, rate_limit, faults)
        self.reset()

    def set_knobs(
        self,
        latency: float = _UNSET,
        balance: int | None = _UNSET,
        rate_limit: float | None = _UNSET,
        faults: Faults | None = _UNSET,
    ) -> None:
        if latency is not _UNSET:
            if latency < 0:
                raise ValueError("latency must be >= 0")
            self.latency = float(latency)
        if balance is not _UNSET:
            if balance is not None and balance < 0:
                raise ValueError("balance must be >= 0 or None")
            self.balance = balance
        if rate_limit is not _UNSET:
            if rate_limit is not None and rate_limit <= 0:
                raise ValueError("rate_limit must be > 0 or None")
            self.rate_limit = rate_limit
        if faults is not _UNSET:
            self.faults = faults or Faults()
            self.active_faults = self.faults.active

    def reset(self) -> None:
        self.requests = 0
        self.charged: dict[str, int] = {}
        self.received: dict[str, int] = {}
        self.status_counts: dict[int, int] = {}
        self.fault_counts: dict[str, int] = {}
        self.log: collections.deque[RequestRecord] = collections.deque(maxlen=self.log_limit)

    def record(self, phone: str | None, status: int, fault: str | None, charged: bool) -> None:
        """Call with the lock held."""
        self.status_counts[status] = self.status_counts.get(status, 0) + 1
        if fault is not None:
            self.fault_counts[fault] = self.fault_counts.get(fault, 0) + 1
        if charged and phone is not None:
            self.charged[phone] = self.charged.get(phone, 0) + 1
        self.log.append(RequestRecord(time.monotonic(), phone, status, fault, charged))


# ------------------------------------------------------------------------------------------------
# HTTP
# ------------------------------------------------------------------------------------------------

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_MAX_BODY = 1 << 20


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _request_error(message: str, code: int) -> bytes:
    return _dumps({"requestError": {"serviceException": {"messageId": message, "code": str(code)}}})


def _validation(message: str, field: str = "phone") -> bytes:
    return _dumps({"message": message, "errors": {field: [message]}})


_BODY_401 = _dumps({"message": _spec.UNAUTHENTICATED_MESSAGE})
_BODY_404 = _dumps({"message": "Not Found."})
_BODY_405 = _dumps({"message": "Method Not Allowed."})
_BODY_429 = _dumps({"message": "Too Many Attempts."})
_BODY_500 = _request_error("Internal server error.", 500)
_BODY_503 = _request_error("Service temporarily unavailable.", 503)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "provero-sandbox"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def do_POST(self) -> None:
        self._handle(True)

    def do_GET(self) -> None:
        self._handle(False)

    do_PUT = do_DELETE = do_PATCH = do_GET

    def _send(self, code: int, body: bytes, extra: str = "") -> None:
        head = (
            f"HTTP/1.1 {code} {_REASONS[code]}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}"
        )
        if self.close_connection:
            head += "Connection: close\r\n"
        self.wfile.write(head.encode("latin-1") + b"\r\n" + body)

    def _refuse_body(self, code: int, message: str) -> int:
        """Count and log a request whose body cannot be read, then answer it (stats first, so
        a client that has its answer also sees it counted)."""
        st: _State = self.server.state
        with st.lock:
            st.requests += 1
            st.record(None, code, None, False)
        self.close_connection = True
        self._send(code, _request_error(message, code))
        return code

    def _read_body(self) -> bytes | int:
        """The request body, or the status code of the error already counted and sent."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._refuse_body(411, "Content-Length required.")
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        if n < 0 or n > _MAX_BODY:
            return self._refuse_body(413 if n > 0 else 400, "Bad Content-Length.")
        return self.rfile.read(n) if n else b""

    def _handle(self, is_post: bool) -> None:
        st: _State = self.server.state
        raw = self._read_body()
        if isinstance(raw, int):
            return
        try:
            data: Any = json.loads(raw) if raw.strip() else {}
        except (ValueError, UnicodeDecodeError):
            data = _UNSET
        phone = data.get("phone") if isinstance(data, dict) else None
        key = phone if isinstance(phone, str) else None
        arrived = time.monotonic()  # the rate window counts arrivals, not latency-delayed stamps
        with st.lock:
            st.requests += 1
            if key is not None:
                st.received[key] = st.received.get(key, 0) + 1
            latency = st.latency
        if latency:
            time.sleep(latency)

        if self.path.split("?", 1)[0] != _spec.ENDPOINT_PATH:
            return self._finish(404, _BODY_404, key)
        if not is_post:
            return self._finish(405, _BODY_405, key, extra="Allow: POST\r\n")
        if st.auth is None or self.headers.get("Authorization") != st.auth:
            extra = 'WWW-Authenticate: Bearer realm="provero"\r\n'
            return self._finish(401, _BODY_401, key, extra=extra)

        fired: set[str] = set()
        wait = 0
        with st.lock:
            if st.rate_limit is not None:
                now = arrived
                window = st.window
                while window and window[0] <= now - 1.0:
                    window.popleft()
                if len(window) >= st.rate_limit:
                    wait = max(1, math.ceil(window[0] + 1.0 - now))
                    st.record(key, 429, "rate_limit", False)
                else:
                    window.append(now)
            faults = st.faults
            if not wait:
                for name, p in st.active_faults:
                    if st.rng.random() < p:
                        fired.add(name)
        if wait:
            self._send(429, _BODY_429, f"Retry-After: {wait}\r\n")
            return None

        if "drop" in fired:
            with st.lock:
                st.record(key, 0, "drop", False)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return None
        if "error_500" in fired:
            return self._finish(500, _BODY_500, key, fault="error_500")
        if "error_503" in fired:
            return self._finish(503, _BODY_503, key, fault="error_503")
        if "rate_429" in fired:
            if faults.retry_after_http_date:
                ts = math.ceil(time.time() + faults.retry_after)
                value = email.utils.formatdate(ts, usegmt=True)
            else:
                value = f"{faults.retry_after:g}"
            return self._finish(
                429, _BODY_429, key, fault="rate_429", extra=f"Retry-After: {value}\r\n"
            )

        if data is _UNSET:
            return self._finish(400, _request_error("Malformed JSON body.", 400), key)
        if not isinstance(data, dict):
            body = _request_error("The request body must be a JSON object.", 400)
            return self._finish(400, body, key)
        if phone is None or (isinstance(phone, str) and not phone.strip()):
            return self._finish(422, _validation(_spec.MSG_PHONE_REQUIRED), key)
        if not isinstance(phone, str):
            return self._finish(422, _validation("The phone field must be a string."), key)
        if len(phone) > _spec.PHONE_MAX_LEN:
            return self._finish(422, _validation(_spec.MSG_PHONE_TOO_LONG), key)
        if len(phone) < _spec.PHONE_MIN_LEN:
            return self._finish(422, _validation(_spec.MSG_PHONE_TOO_SHORT), key)
        opts: dict[str, bool] = {}
        for name, default in (("detailed", False), ("roaming", False), ("msisdn", True)):
            value = data.get(name)
            parsed = default if value is None else _parse_bool(value)
            if parsed is None:
                msg = f"The {name} field must be true or false."
                return self._finish(422, _validation(msg, name), key)
            opts[name] = parsed
        route = data.get("route")
        if route is not None and not isinstance(route, str):
            msg = "The route field must be a string."
            return self._finish(422, _validation(msg, "route"), key)
        args = (phone, opts["detailed"], opts["roaming"], _route_is_detailed(route), opts["msisdn"])

        if "quota" in fired:
            body = _dumps({"results": [_build(*args, force="quota")]})
            return self._finish(200, body, key, fault="quota")

        force = "temporary" if "temporary" in fired else None
        body = _dumps({"results": [_build(*args, force=force)]})
        fault = next((f for f in ("temporary", "truncated", "slow") if f in fired), None)
        with st.lock:
            if st.balance is not None and st.balance <= 0:
                places = _spec.MONEY_PLACES
                st.record(key, 402, None, False)
                payload = {
                    "message": _spec.INSUFFICIENT_BALANCE_MESSAGE,
                    "service": _spec.INSUFFICIENT_BALANCE_SERVICE,
                    "required_amount": f"{st.price:.{places}f}",
                    "current_balance": f"{st.price * max(st.balance, 0):.{places}f}",
                }
                charged = False
            else:
                if st.balance is not None:
                    st.balance -= 1
                st.record(key, 200, fault, True)
                if "truncated" in fired and fault != "truncated":
                    st.fault_counts["truncated"] = st.fault_counts.get("truncated", 0) + 1
                if "slow" in fired and fault != "slow":
                    st.fault_counts["slow"] = st.fault_counts.get("slow", 0) + 1
                charged = True
        if not charged:
            self._send(402, _dumps(payload))
            return None
        if "truncated" in fired:
            body = body[: len(body) // 2]
        if "slow" in fired:
            time.sleep(faults.slow_seconds)
        self._send(200, body)
        return None

    def _finish(
        self,
        code: int,
        body: bytes,
        phone: str | None,
        fault: str | None = None,
        extra: str = "",
    ) -> None:
        st: _State = self.server.state
        with st.lock:
            st.record(phone, code, fault, False)
        self._send(code, body, extra)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: _State) -> None:
        self.state = state
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would call socket.getfqdn (a DNS lookup): skip it.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def track(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.discard(conn)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # client went away (e.g. gave up on a slow answer)
            return
        log.exception("sandbox: error while handling a request from %s", client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


def _loopback(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"sandbox binds to loopback addresses only, not {host!r}") from None
    if not ip.is_loopback:
        raise ValueError(f"sandbox binds to loopback addresses only, not {host!r}")
    return str(ip)


class Sandbox:
    """A running sandbox server (returned by :func:`serve`); a context manager.

    Example:
        >>> with serve(token="t", balance=10) as sb:
        ...     sb.url.startswith("http://127.0.0.1:"), sb.stats().balance
        (True, 10)
    """

    def __init__(
        self,
        *,
        token: str,
        host: str,
        port: int,
        latency: float,
        balance: int | None,
        rate_limit: float | None,
        faults: Faults | None,
        seed: int,
        price: str | Decimal,
        log_limit: int | None,
    ) -> None:
        host = _loopback(host)
        self.token = token
        self._state = _State(
            token, latency, balance, rate_limit, faults, seed, Decimal(str(price)), log_limit
        )
        cls = _Server6 if ":" in host else _Server
        self._server = cls((host, port), self._state)
        self.host = host
        self.port: int = self._server.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"pd-hlr-sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._closed = False

    @property
    def endpoint(self) -> str:
        """The full URL of ``POST /api/validate/phone``."""
        return self.url + _spec.ENDPOINT_PATH

    def stats(self) -> SandboxStats:
        """A consistent snapshot of the counters."""
        st = self._state
        with st.lock:
            return SandboxStats(
                st.requests,
                dict(st.charged),
                dict(st.received),
                dict(st.status_counts),
                dict(st.fault_counts),
                st.balance,
            )

    def log(self) -> list[RequestRecord]:
        """A copy of the request log (oldest first; the newest ``log_limit`` entries)."""
        with self._state.lock:
            return list(self._state.log)

    def configure(
        self,
        *,
        balance: int | None = _UNSET,
        latency: float = _UNSET,
        rate_limit: float | None = _UNSET,
        faults: Faults | None = _UNSET,
    ) -> None:
        """Change knobs live; only the ones given change (``balance=None``: unlimited)."""
        with self._state.lock:
            self._state.set_knobs(latency, balance, rate_limit, faults)

    def reset_stats(self) -> None:
        """Zero the counters and the log (the balance stays)."""
        with self._state.lock:
            self._state.reset()
            self._state.window.clear()

    def close(self) -> None:
        """Stop serving, close the socket and every open connection, join the thread."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        self._thread.join(timeout=5)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Sandbox {self.url}>"


def serve(
    token: str = "test-token",
    port: int = 0,
    latency: float = 0.0,
    balance: int | None = None,
    rate_limit: float | None = None,
    faults: Faults | None = None,
    seed: int = 0,
    price: str | Decimal = "0.0060000000",
    *,
    host: str = "127.0.0.1",
    log_limit: int | None = 100_000,
) -> Sandbox:
    """Start a sandbox in a background thread; use it as a context manager (or call ``close``).

    ``port=0`` picks a free port. ``host`` must be a loopback address (else ``ValueError``).

    Example:
        >>> with serve(token="t", port=0) as sb:
        ...     sb.token
        't'
    """
    return Sandbox(
        token=token,
        host=host,
        port=port,
        latency=latency,
        balance=balance,
        rate_limit=rate_limit,
        faults=faults,
        seed=seed,
        price=price,
        log_limit=log_limit,
    )


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------


def run_forever(
    port: int = 8787,
    token: str = "demo",
    latency: float = 0.0,
    balance: int | None = None,
    rate_limit: float | None = None,
    faults: Faults | None = None,
    seed: int = 0,
    *,
    host: str = "127.0.0.1",
) -> int:
    """Serve until Ctrl-C, printing the URL first; returns 0.

    Example (shell): ``pd-hlr sandbox --port 8787 --token demo --latency 0.05``
    """
    with serve(token, port, latency, balance, rate_limit, faults, seed, host=host) as sb:
        print(f"Provero sandbox listening on {sb.url}  (endpoint {sb.endpoint})", flush=True)
        print(
            f"  try: curl -s -X POST {sb.endpoint} -H 'Authorization: Bearer {token}' "
            "-H 'Content-Type: application/json' -d '{\"phone\": \"+447400123456\"}'",
            flush=True,
        )
        print("Press Ctrl-C to stop.", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            s = sb.stats()
            print(
                f"\nstopped: {s.requests} requests, {s.total_charged} charged, "
                f"statuses {dict(sorted(s.status_counts.items()))}",
                flush=True,
            )
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``pd-hlr sandbox`` options to ``parser``.

    Example:
        >>> p = argparse.ArgumentParser(); add_arguments(p)
        >>> p.parse_args(["--port", "0"]).port
        0
    """
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8787, help="port (0: any free port)")
    parser.add_argument("--token", default="demo", help="the Bearer token to accept")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument("--balance", type=int, default=None, help="lookups before 402")
    parser.add_argument("--rate-limit", type=float, default=None, help="requests per second")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault RNG")
    group = parser.add_argument_group("fault injection (probabilities per request)")
    for name in ("500", "503", "429", "drop", "slow", "truncated", "temporary", "quota"):
        group.add_argument(f"--fault-{name}", type=float, default=0.0, metavar="P")
    group.add_argument("--slow-seconds", type=float, default=2.0)
    group.add_argument("--retry-after", type=float, default=1.0)
    group.add_argument("--retry-after-http-date", action="store_true")


def run_from_args(args: argparse.Namespace) -> int:
    """Run :func:`run_forever` with parsed :func:`add_arguments` options."""
    faults = Faults(
        error_500=args.fault_500,
        error_503=args.fault_503,
        rate_429=args.fault_429,
        drop=args.fault_drop,
        slow=args.fault_slow,
        truncated=args.fault_truncated,
        temporary=args.fault_temporary,
        quota=args.fault_quota,
        slow_seconds=args.slow_seconds,
        retry_after=args.retry_after,
        retry_after_http_date=args.retry_after_http_date,
    )
    return run_forever(
        args.port,
        args.token,
        args.latency,
        args.balance,
        args.rate_limit,
        faults if faults.active else None,
        args.seed,
        host=args.host,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pd_hlr.sandbox [options]``."""
    parser = argparse.ArgumentParser(prog="pd-hlr sandbox", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
