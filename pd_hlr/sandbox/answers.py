"""The sandbox's synthetic answers: a pure function of the number and the options.

No I/O and no state: :func:`answer` is what the server sends for a valid request when no fault
fires. The same canonical number and options always get the same answer (seeded from the
number's sha256: ~80 % live, ~12 % dead, ~6 % out of network, ~2 % temporary error).
libphonenumber's geocoder and carrier tables are imported on the first answer, so that
``import pd_hlr.sandbox`` stays fast. How the answers fill the spec's gaps (booleans,
``msisdn``, statuses, ``imsi``; the client must rely on nothing else):
``docs/internals/sandbox.md``.

Example:
    >>> answer("+447400123456")["to"]
    '+447400123456'
"""

from __future__ import annotations

import collections
import hashlib
import re
from collections.abc import Sequence
from functools import cache, lru_cache
from typing import Any, NamedTuple

import phonenumbers

from pd_hlr import _spec
from pd_hlr._spec import ErrorCode, Status

__all__ = ["answer", "build", "parse_bool", "route_is_detailed"]

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
        from phonenumbers import geocoder  # lazy: a few MB of tables, only for answers

        name = geocoder._region_display_name(region, "en") or region
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
def _carrier_data() -> dict[str, dict[str, str]]:
    """phonenumbers' carrier table, imported on first use (it is large and slow to import)."""
    from phonenumbers.carrierdata import CARRIER_DATA

    return CARRIER_DATA


@cache
def _carrier_prefixes() -> dict[str, dict[str, list[str]]]:
    """Pool key → carrier name → its prefixes (country code included), from phonenumbers.

    Keys: ``"cc:<cc>"`` for a whole calling code, and the calling code plus the next digit
    (``"447"``: UK mobiles) — for calling code 1 the four digits ``1`` + area code.
    """
    pools: dict[str, dict[str, list[str]]] = collections.defaultdict(
        lambda: collections.defaultdict(list)
    )
    for prefix, names in _carrier_data().items():
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
        names = _carrier_data().get(digits[:n])
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
        pool: tuple[tuple[str, int, tuple[str, ...]], ...] = tuple((n, 1, ()) for n in names)
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


def build(
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
        facts = _facts(canonical)
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


def parse_bool(value: Any) -> bool | None:
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
    parsed = parse_bool(value)
    if parsed is None:
        raise ValueError(f"{name} must be one of true/'true'/'1'/1 or false/'false'/'0'/0")
    return parsed


def route_is_detailed(route: Any) -> bool:
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
    return build(
        phone,
        _coerce(detailed, "detailed", False),
        _coerce(roaming, "roaming", False),
        route_is_detailed(route),
        _coerce(msisdn, "msisdn", True),
    )
