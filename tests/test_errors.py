"""The exception tree: classes only, each picklable with its attributes, and the documented tree
(docs/internals/errors.md) in sync with the classes."""

from __future__ import annotations

import inspect
import pickle
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pd_hlr import errors
from pd_hlr.errors import (
    APIError,
    AuthenticationError,
    BudgetExceededError,
    CacheFolderError,
    CacheNotWritableError,
    ColumnConflictError,
    HLRError,
    InsufficientBalanceError,
    RateLimitError,
    ServiceUnavailableError,
    StaleClaimsError,
    TransportError,
    ValidationError,
)

# (instance, the extra attributes it must keep through pickle, its built-in base or None)
SAMPLES: list[tuple[HLRError, dict[str, Any], type[BaseException] | None]] = [
    (HLRError("base", status=500, body_excerpt="x"), {"status": 500, "body_excerpt": "x"}, None),
    (AuthenticationError("no", status=401), {"status": 401}, PermissionError),
    (
        InsufficientBalanceError(
            "top up", required_amount=Decimal("0.006"), current_balance=Decimal("0E-10")
        ),
        {"status": 402, "required_amount": Decimal("0.006"), "current_balance": Decimal("0")},
        None,
    ),
    (
        ServiceUnavailableError("down", kind="connect", resume_after=86400.0),
        {"kind": "connect", "resume_after": 86400.0},
        ConnectionError,
    ),
    (
        ValidationError("bad", errors={"phone": ["short"]}),
        {"errors": {"phone": ["short"]}},
        ValueError,
    ),
    (RateLimitError("slow", retry_after=2.0), {"status": 429, "retry_after": 2.0}, None),
    (
        APIError("odd", status=400, code="400", message_id="m", malformed=True),
        {"code": "400", "message_id": "m", "malformed": True},
        None,
    ),
    (TransportError("reset"), {"status": None}, ConnectionError),
    (BudgetExceededError("too many", estimate=None), {"estimate": None}, ValueError),
    (CacheNotWritableError("ro", path="/ro"), {"path": "/ro"}, PermissionError),
    (ColumnConflictError("clash", columns=["to"]), {"columns": ["to"]}, ValueError),
    (
        CacheFolderError("foreign", path="/d", files=["a.csv"]),
        {"path": "/d", "files": ["a.csv"]},
        PermissionError,
    ),
    (
        StaleClaimsError("stale", pid=7, path="/c/claims-7-x.txt", numbers=3),
        {"pid": 7, "path": "/c/claims-7-x.txt", "numbers": 3},
        TimeoutError,
    ),
]


def _classes() -> set[type[HLRError]]:
    return {
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, HLRError) and obj.__module__ == errors.__name__
    }


def test_samples_cover_every_class() -> None:
    assert {type(err) for err, _, _ in SAMPLES} == _classes()


@pytest.mark.parametrize(("err", "attrs", "base"), SAMPLES, ids=lambda v: type(v).__name__)
def test_pickle_keeps_type_message_and_attributes(
    err: HLRError, attrs: dict[str, Any], base: type[BaseException] | None
) -> None:
    err.pending = ["+441302778473"]
    err.attempts = 3
    err.kind = "timeout" if not isinstance(err, ServiceUnavailableError) else err.kind
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is type(err) and str(copy) == str(err)
    for name, value in attrs.items():
        assert getattr(copy, name) == value, name
    assert copy.pending == ["+441302778473"] and copy.attempts == 3 and copy.kind == err.kind
    if base is not None:
        assert isinstance(err, base)


def test_declared_attributes_and_defaults() -> None:
    err = HLRError("x")
    assert (err.status, err.body_excerpt, err.attempts, err.kind) == (None, None, None, None)
    assert err.outcomes == {} and err.pending == []
    assert (err.partial, err.looked_up, err.remaining, err.report) == (None, None, None, None)
    # each instance has its own containers
    other = HLRError("y")
    err.pending.append("+1")
    assert other.pending == []


def test_only_the_run_stopping_errors_stop_a_run() -> None:
    stoppers = {cls for cls in _classes() if cls.stops_run}
    assert stoppers == {AuthenticationError, InsufficientBalanceError, ServiceUnavailableError}


def test_the_documented_tree_lists_every_class() -> None:
    """docs/internals/errors.md (the tree the module docstring points to) is complete."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "internals" / "errors.md").read_text()
    in_tree = set(re.findall(r"(?:├──|└──|^\s+)\s*(\w+Error)\(", doc, flags=re.MULTILINE))
    assert in_tree | {"HLRError"} == {cls.__name__ for cls in _classes()}


def test_errors_module_holds_only_the_exception_classes() -> None:
    # RunInterrupted is a KeyboardInterrupt, not an HLRError (``except Exception`` must not
    # swallow an interrupt)
    assert set(errors.__all__) == {cls.__name__ for cls in _classes()} | {"RunInterrupted"}
    assert issubclass(errors.RunInterrupted, KeyboardInterrupt)
    assert not issubclass(errors.RunInterrupted, Exception)
    functions = [
        name
        for name, fn in inspect.getmembers(errors, inspect.isfunction)
        if fn.__module__ == errors.__name__
    ]
    assert functions == ["_rebuild"]  # pickling support only; the mapping lives in pd_hlr.retry
