"""Constant tables transcribed from the Provero phone-HLR spec.

This is the only code the sandbox and the client share (see the architecture: both are
independent readings of ``shared/spec/provero-phone-hlr-api.md``; only the vendor's literal
tables live here). No behaviour, no I/O.

Example:
    >>> from pd_hlr import _spec
    >>> _spec.ENDPOINT_PATH
    '/api/validate/phone'
    >>> _spec.find_error("TRAFFIC_QUOTA_EXCEEDED").permanent
    False
"""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

ENDPOINT_PATH = "/api/validate/phone"
DEFAULT_BASE_URL = "https://api.provero.io"

#: Per-lookup price, read off the 402 example (``required_amount`` for one lookup): what the
#: sandbox charges by default.
PRICE_PER_LOOKUP = Decimal("0.0060000000")
#: Decimal places of the money strings in the 402 body.
MONEY_PLACES = 10

#: Route values the examples use (the vendor's list of accepted values is empty); the CLI offers
#: these for ``--route``, and every face and the client accept only these (:func:`check_route`).
ROUTES = ("standard", "detailed")


def check_route(value: object) -> str | None:
    """``value`` if it is a route the spec defines (or None: not sent); else a ``ValueError``
    (``TypeError`` for a non-string) before anything is sent: the API would charge for it.

    >>> check_route("standard"), check_route(None)
    ('standard', None)
    >>> check_route("premium")
    Traceback (most recent call last):
    ...
    ValueError: route must be one of 'standard', 'detailed' (the spec's values), not 'premium'
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"route must be a string or None, not {type(value).__name__}")
    if value not in ROUTES:
        choices = ", ".join(repr(r) for r in ROUTES)
        raise ValueError(f"route must be one of {choices} (the spec's values), not {value!r}")
    return value

# --- validation (Laravel-style ``{"message", "errors": {"phone": [...]}}`` bodies) -------------
PHONE_MIN_LEN = 10
PHONE_MAX_LEN = 15
MSG_PHONE_REQUIRED = "The phone field is required."
MSG_PHONE_TOO_LONG = "The phone field must not be greater than 15 characters."
MSG_PHONE_TOO_SHORT = "The phone field must be at least 10 characters."
VALIDATION_MESSAGES = (MSG_PHONE_REQUIRED, MSG_PHONE_TOO_LONG, MSG_PHONE_TOO_SHORT)

# --- 402 ---------------------------------------------------------------------------------------
INSUFFICIENT_BALANCE_MESSAGE = "Insufficient balance for validation request."
INSUFFICIENT_BALANCE_SERVICE = "phone"

# --- not in the spec: the project's contract for undocumented statuses -------------------------
UNAUTHENTICATED_MESSAGE = "Unauthenticated."


class ErrorCode(NamedTuple):
    """One row of the vendor's error-code table.

    An error is identified by (group_id, id, name); rows may share all three and differ
    only in the description.

    Example:
        >>> find_error("EC_NO_RESPONSE").group_name
        'Handset errors'
    """

    id: int
    name: str
    group_id: int
    group_name: str
    description: str
    permanent: bool


class Status(NamedTuple):
    """A detailed-result ``status`` object as the spec's examples show it.

    Example:
        >>> STATUS_DELIVERED_TO_HANDSET.group_name
        'DELIVERED'
    """

    group_id: int
    group_name: str
    id: int
    name: str
    description: str


# ``permanent`` is not in the vendor's table; it is our reading (the spec's "Gaps" section):
# rows about overload, no response, connectivity/inaccessibility, gateway or external-lookup
# trouble, routing faults, quota, "(Temporary)", absent or switched-off subscribers, busy
# subscribers, system/provider failures, delivery failures and "Live Status Unavailable" are
# temporary (permanent=False: asking again later may give another answer). Unknown / unidentified
# / unlisted subscribers, unassigned or rejected ranges, blocked or barred numbers, services not
# provisioned or not supported, bad number format, unknown region and account/token problems are
# permanent (permanent=True). NO_ERROR and DELIVERED_TO_HANDSET are not errors (False, as in the
# spec's example body).
_E = ErrorCode
ERROR_CODES: tuple[ErrorCode, ...] = (
    _E(0, "NO_ERROR", 0, "Ok", "Valid Query", False),
    _E(
        1,
        "EC_UNKNOWN_SUBSCRIBER",
        1,
        "Handset errors",
        "The phone number provided is not linked to a known user profile.",
        True,
    ),
    _E(
        5,
        "NUMBER_MISSING_FROM_NETWORK_REGISTRY",
        1,
        "Handset errors",
        "This number is missing from our extended network datasets.",
        True,
    ),
    _E(
        5,
        "UK_NUMBER_TRANSFER_RECORD_NOT_LOCATED",
        1,
        "Handset errors",
        "No transfer or porting history was found for this UK number.",
        True,
    ),
    _E(
        5,
        "NUMBER_UNLISTED_IN_CURRENT_DATABASE",
        1,
        "Handset errors",
        "We could not locate this number in our records. Please verify and retry.",
        True,
    ),
    _E(
        5,
        "EC_UNIDENTIFIED_SUBSCRIBER",
        1,
        "Handset errors",
        "The subscriber details are not recognized within our systems.",
        True,
    ),
    _E(
        6,
        "EC_ABSENT_SUBSCRIBER_SM",
        1,
        "Handset errors",
        "The device was unreachable. User is not currently available on this network.",
        False,
    ),
    _E(
        32,
        "EC_SM_DELIVERY_FAILURE",
        1,
        "Handset errors",
        "An error occurred while attempting to deliver the message.",
        False,
    ),
    _E(
        34,
        "EC_SYSTEM_FAILURE",
        1,
        "Handset errors",
        "An internal error was encountered while processing.",
        False,
    ),
    _E(
        255,
        "REJECTED_NETWORK",
        1,
        "Handset errors",
        "The number is outside the valid network range or is currently unassigned.",
        True,
    ),
    _E(
        255,
        "GENERAL_ROUTING_FAULT",
        1,
        "Handset errors",
        "A routing problem occurred while directing the request to its destination.",
        False,
    ),
    _E(
        256,
        "TARGET_CARRIER_OVERLOAD_DETECTED",
        1,
        "Handset errors",
        "Carrier is currently handling too many requests. Please try again soon.",
        False,
    ),
    _E(
        500,
        "TARGET_CARRIER_CONNECTIVITY_FAULT",
        1,
        "Handset errors",
        "A connectivity problem occurred with the carrier.",
        False,
    ),
    _E(
        500,
        "EC_PROVIDER_GENERAL_ERROR",
        1,
        "Handset errors",
        "A system or equipment issue prevented successful completion of this request.",
        False,
    ),
    _E(
        502,
        "EC_NO_RESPONSE",
        1,
        "Handset errors",
        "No response received from the destination network in the expected time.",
        False,
    ),
    _E(
        502,
        "EXTERNAL_LOOKUP_FAILED_NETWORK_REPLY_LOGGED",
        1,
        "Handset errors",
        "Lookup failed on an external system. A reply was logged.",
        False,
    ),
    _E(
        502,
        "TARGET_CARRIER_MOMENTARILY_INACCESSIBLE",
        1,
        "Handset errors",
        "The carrier's network is not reachable at the moment. Please try again later.",
        False,
    ),
    _E(
        502,
        "EXTERNAL_GATEWAY_RESPONSE_ISSUE",
        1,
        "Handset errors",
        "An external network gateway provided an unexpected response.",
        False,
    ),
    _E(1, "EC_UNKNOWN_SUBSCRIBER", 2, "User errors", "Unknown Subscriber", True),
    _E(
        5,
        "REGISTERED_NAME_DISCREPANCY_DETECTED",
        2,
        "User errors",
        "Name submitted does not match our records.",
        True,
    ),
    _E(6, "EC_ABSENT_SUBSCRIBER_SM", 2, "User errors", "Phone Switched Off.", False),
    _E(
        9,
        "VALIDATION_TOKEN_MISSING",
        2,
        "User errors",
        "Validation token expired. Please request a new one.",
        True,
    ),
    _E(
        9, "UNDELIVERABLE_NOT_DELIVERED", 2, "Undeliverable", "Wrong number length or format.", True
    ),
    _E(9, "EC_SYSTEM_FAILURE", 2, "User errors", "Subscriber Error (Temporary).", False),
    _E(9, "EC_SYSTEM_FAILURE", 2, "User errors", "Subscriber Error.", False),
    _E(
        9,
        "EC_ILLEGAL_SUBSCRIBER",
        2,
        "User errors",
        "Subscriber is blocked or restricted from receiving messages.",
        True,
    ),
    _E(
        9,
        "VALIDATION_TOKEN_MISSING",
        2,
        "User errors",
        "Missing validation token in request.",
        True,
    ),
    _E(
        9,
        "VALIDATION_TOKEN_TIMEOUT",
        2,
        "User errors",
        "Validation token does not match this service.",
        True,
    ),
    _E(
        9,
        "VALIDATION_TOKEN_SERVICE_MISMATCH",
        2,
        "User errors",
        "Name does not align with records for this number.",
        True,
    ),
    _E(9, "EC_SYSTEM_FAILURE", 2, "User errors", "Live Status Unavailable.", False),
    _E(
        31,
        "EC_SUBSCRIBER_BUSY_FOR_MT_SMS",
        2,
        "User errors",
        "Subscriber is currently busy and cannot receive messages.",
        False,
    ),
    _E(
        31,
        "REGION_PREFIX_UNRECOGNIZED",
        2,
        "User errors",
        "The region or country code is unrecognized. Check the number format.",
        True,
    ),
    _E(
        323,
        "VERIFICATION_PATHWAY_UNDEFINED",
        2,
        "User errors",
        "The request could not be completed due to missing or misconfigured service route.",
        True,
    ),
    _E(
        507,
        "REGISTERED_NAME_DISCREPANCY_DETECTED",
        2,
        "User errors",
        "Name does not exist. Review entered details.",
        True,
    ),
    _E(
        5,
        "DELIVERED_TO_HANDSET",
        3,
        "DELIVERED",
        "The message has reached the recipient's device successfully.",
        False,
    ),
    _E(
        15,
        "NO_NETWORK_RESPONSE",
        4,
        "Expired",
        "No network response was received during validation.",
        False,
    ),
    _E(
        8,
        "EC_ROAMING_NOT_ALLOWED",
        5,
        "Rejected",
        "Roaming not permitted for this number or country.",
        True,
    ),
    _E(
        9,
        "ACCOUNT_CREDENTIALS_INSUFFICIENT",
        5,
        "Rejected",
        "This account does not have permission to access this feature.",
        True,
    ),
    _E(
        11,
        "EC_TELESERVICE_NOT_PROVISIONED",
        5,
        "Rejected",
        "Telephone service not active for this number.",
        True,
    ),
    _E(11, "EC_TELESERVICE_NOT_PROVISIONED", 5, "Rejected", "Teleservice Not Provisioned.", True),
    _E(13, "EC_CALL_BARRED", 5, "Rejected", "Call Barred.", True),
    _E(21, "EC_FACILITY_NOT_SUPPORTED", 5, "Rejected", "Requested service is not supported.", True),
    _E(
        21,
        "EC_FACILITY_NOT_SUPPORTED",
        5,
        "Rejected",
        "The requested facility is not supported.",
        True,
    ),
    _E(
        32,
        "TRAFFIC_QUOTA_EXCEEDED",
        5,
        "Rejected",
        "Rate limit exceeded. Please try again later.",
        False,
    ),
    _E(
        323,
        "INTERNATIONAL_ROUTE_NOT_SUPPORTED",
        5,
        "Rejected",
        "International validation not supported for this country.",
        True,
    ),
)
del _E

#: The documented rate-limit signal inside a 200 result: (groupId, id, name).
TRAFFIC_QUOTA_EXCEEDED = (5, 32, "TRAFFIC_QUOTA_EXCEEDED")

# Objects the spec's example bodies show that are not rows of the error table.
#: ``status`` of the detailed (live) example.
STATUS_DELIVERED_TO_HANDSET = Status(
    3, "DELIVERED", 5, "DELIVERED_TO_HANDSET", "Message delivered to handset"
)
#: ``status`` of the "invalid / absent number" example.
STATUS_ABSENT_SUBSCRIBER = Status(
    1, "Handset errors", 27, "UNDELIVERABLE_NOT_DELIVERED", "Absent Subscriber"
)
#: ``error`` of the detailed (live) example (the table's NO_ERROR row reads differently).
EXAMPLE_OK_ERROR = ErrorCode(0, "DELIVERED_TO_HANDSET", 0, "Ok", "No Error.", False)
#: ``error`` of the "invalid / absent number" example (note: permanent false).
EXAMPLE_ABSENT_ERROR = ErrorCode(
    27, "UNDELIVERABLE_NOT_DELIVERED", 1, "Handset errors", "Absent Subscriber", False
)


def find_error(name: str, group_id: int | None = None, description: str | None = None) -> ErrorCode:
    """Return the first table row with this name (and group / description, when given).

    Example:
        >>> find_error("EC_UNKNOWN_SUBSCRIBER", group_id=2).description
        'Unknown Subscriber'
    """
    for row in ERROR_CODES:
        if (
            row.name == name
            and (group_id is None or row.group_id == group_id)
            and (description is None or row.description == description)
        ):
            return row
    raise KeyError(name)
