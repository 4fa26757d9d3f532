"""The transport's two paths, side by side: the lean one (``direct=True``: a keep-alive
connection per thread, no requests adapter) and the requests adapter (``direct=False``: the
path taken when a proxy applies). Both must be the same client: for every fault knob of the
sandbox, the same numbers looked up through each give the same outcome per number (the answer,
or the error's class, kind, status, attempts and cause class), the same ``client.stats``, the
same backoff sleeps, and the same charge ledger on the sandbox (each number billed the same
number of times, and no more often than the retry policy allows).

Every run is deterministic: a knob at probability 1.0 fires on every request whatever the
order of threads; mixed knobs at lower probabilities run on one worker, so the seeded draws
meet the requests in the same order on both paths (the server draws per request, in arrival
order). Backoff sleeps are recorded, not slept; the jitter is fixed. Every failed outcome goes
through ``check_no_leak`` (no token in its message, args, cause chain or frames' locals), and
the log records through ``test_client``'s autouse check.

Also here: keep-alive hygiene (the server closes an idle connection, with or without
``Connection: close``; the next lookup must reconnect, not fail), and TLS (a certificate the
client does not trust fails as ``tls`` at once, billed nothing; a trusted one answers).
"""

from __future__ import annotations

import dataclasses
import socket
import ssl
import traceback
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import pytest
import requests

from pd_hlr import sandbox
from pd_hlr.classify import KINDS
from pd_hlr.client import HLRClient
from pd_hlr.errors import HLRError
from pd_hlr.retry import RetryPolicy
from pd_hlr.sandbox import server as server_module
from pd_hlr.transport import Transport

from .conftest import bounded
from .test_client import (  # noqa: F401 (fixtures: an autouse log check, new_client)
    SECRET,
    _no_token_in_logs,
    check_no_leak,
    new_client,
)
from .test_group_commit import until

Faults = sandbox.Faults
#: The two paths: the value of ``Transport(direct=...)``.
PATHS = {"lean": True, "adapter": False}
NUMBERS = [f"+4479{i:08d}" for i in range(700, 760)]
RETRIES = 2
#: A fixed jitter: the backoff sleeps are part of what is compared.
POLICY = RetryPolicy(max_retries=RETRIES, breaker_threshold=10_000, random=lambda: 0.5)


def on_path(client: HLRClient, direct: bool) -> HLRClient:
    """Put ``client`` on one path (the contract of ``Transport(direct=...)``)."""
    client._transport.close()
    client._transport = Transport(
        client.url,
        client._token,
        timeout=client.timeout,
        deadline=client.deadline,
        max_answer_bytes=client.max_answer_bytes,
        pool_size=client.workers,
        direct=direct,
    )
    return client


@pytest.fixture
def path_client(new_client: Callable[..., HLRClient]) -> Callable[..., HLRClient]:  # noqa: F811
    """``test_client``'s clients (backoff sleeps recorded in ``client.sleeps``, checked for
    the token at teardown) on one path, token SECRET, the fixed retry policy, no adaptive
    pacing (its sleeps are real)."""

    def build(url: str, direct: bool, **kwargs: Any) -> HLRClient:
        kwargs.setdefault("token", SECRET)
        kwargs.setdefault("retry", POLICY)
        kwargs.setdefault("adaptive", False)
        return on_path(new_client(SimpleNamespace(url=url), **kwargs), direct)

    return build


# ------------------------------------------------------------------ what one run looked like
@dataclasses.dataclass(frozen=True)
class Run:
    """What a run showed, with nothing that differs by design between two sandboxes (their
    ports) or two runs (times): compared whole between the paths."""

    outcomes: dict[str, Any]
    raised: Any
    stats: dict[str, Any]
    sleeps: list[float]
    charged: dict[str, int]
    received: dict[str, int]
    statuses: dict[int, int]
    faults: dict[str, int]
    #: Per number, in order: (status, fault, charged) of each request the sandbox saw.
    log: dict[str | None, list[tuple[int, str | None, bool]]]
    #: The whole request log in arrival order, and TCP connections opened (one worker only).
    sequence: list[tuple[str | None, int, str | None]] | None
    connections: int | None


def error_summary(err: BaseException, url: str) -> tuple[Any, ...]:
    """An error as compared between the paths; also checked for the token."""
    check_no_leak(err)
    assert token_paths(err) == []
    message = str(err).replace(url, "<sandbox>")
    if " talking to " in message:  # a TransportError: its detail names the library's words
        what, _, rest = message.partition(" talking to ")
        gave_up = rest.rpartition(" (gave up")[2] if "(gave up" in rest else None
        message = what if gave_up is None else f"{what} (gave up{gave_up}"
    cause = err.__cause__
    return (
        type(err).__name__,
        getattr(err, "kind", None),
        getattr(err, "status", None),
        getattr(err, "attempts", None),
        getattr(err, "malformed", None),
        getattr(err, "retry_after", None),
        type(cause).__name__ if cause is not None else None,
        message,
    )


def observe(
    sb: sandbox.Sandbox, client: HLRClient, numbers: list[str], *, ordered: bool
) -> Run:
    """Look ``numbers`` up through ``client`` (a run may stop: then what it raised counts)."""
    raised: Any = None
    try:
        out: dict[str, Any] = bounded(lambda: client.lookup_many(numbers))
    except HLRError as exc:
        out = dict(exc.outcomes)
        raised = (*error_summary(exc, sb.url), sorted(exc.pending or []))
    outcomes: dict[str, Any] = {}
    for number, value in sorted(out.items()):
        if isinstance(value, BaseException):
            outcomes[number] = error_summary(value, sb.url)
        else:
            assert SECRET not in repr(value)
            outcomes[number] = value
    s = client.stats
    stats = {
        "requests": s.requests,
        "retries": s.retries,
        "throttled": s.throttled,
        "possibly_charged": s.possibly_charged,
        "possibly_charged_numbers": sorted(s.possibly_charged_numbers),
        "failures": s.failures,
        "repaired": s.repaired,
    }
    ledger = sb.stats()
    log: dict[str | None, list[tuple[int, str | None, bool]]] = {}
    for record in sb.log():
        log.setdefault(record.phone, []).append((record.status, record.fault, record.charged))
    sequence = [(r.phone, r.status, r.fault) for r in sb.log()] if ordered else None
    return Run(
        outcomes=outcomes,
        raised=raised,
        stats=stats,
        sleeps=client.sleeps if ordered else sorted(client.sleeps),  # type: ignore[attr-defined]
        charged=ledger.charged,
        received=ledger.received,
        statuses=ledger.status_counts,
        faults=ledger.fault_counts,
        log=log,
        sequence=sequence,
        connections=ledger.connections if ordered else None,
    )


def both_paths(
    make_sandbox: Callable[..., sandbox.Sandbox],
    path_client: Callable[..., HLRClient],
    numbers: list[str],
    *,
    sandbox_knobs: dict[str, Any],
    client_knobs: dict[str, Any],
    url_suffix: str = "",
) -> dict[str, Run]:
    """The same run on each path, each against a fresh sandbox with the same knobs and seed."""
    runs: dict[str, Run] = {}
    for name, direct in PATHS.items():
        sb = make_sandbox(token=SECRET, **sandbox_knobs)
        client = path_client(sb.url + url_suffix, direct, **client_knobs)
        ordered = client.workers == 1
        runs[name] = observe(sb, client, numbers, ordered=ordered)
        sb.close()
    return runs


# ------------------------------------------------------------------ every knob, alone, always
#: What each knob at probability 1.0 must give on either path (independent of the client's
#: code: the sandbox's documented charging and the retry table of the docs): the failure kind
#: (None: an answer) and whether the sandbox bills each attempt.
EXPECTED: dict[str, tuple[str | None, bool]] = {
    "drop": ("connection_lost", False),
    "html_200": ("malformed", False),
    "error_500": ("server_error", False),
    "error_503": ("server_error", False),
    "rate_429": ("throttled", False),
    "quota": ("throttled", False),
    "temporary": (None, True),
    "wrong_to": ("wrong_number", True),
    "errors_beside_results": (None, True),
    "bom": (None, True),
    "bad_utf8": ("malformed", True),
    "surrogate": (None, True),
    "deep_nesting": ("malformed", True),
    "truncated": ("malformed", True),
    "missing_to": ("incomplete_result", True),
    "nan_field": ("incomplete_result", True),
    "echo_token": (None, True),
    "slow": ("timeout", True),
    "trickle": ("timeout", True),
    "endless": ("too_large", True),
    "gzip_bomb": ("too_large", True),
    "huge": ("too_large", True),
    "formula_name": (None, True),
    "hangup": (None, True),
    "gzip": (None, True),
    "chunked": (None, True),
    "unreachable": ("connect", False),
}
#: Knobs that need a short deadline to end (socket timeouts far beyond it).
DEADLINE_KNOBS = {"slow": {"slow_seconds": 30.0}, "trickle": {}}


def knob_faults(name: str) -> Faults:
    if name == "unreachable":
        return Faults(unreachable=True)
    if name == "hangup":  # a silent close races the next request: see the keep-alive tests
        return Faults(hangup=1.0, hangup_announced=True)
    return Faults(**{name: 1.0}, **DEADLINE_KNOBS.get(name, {}))


def test_every_wire_and_answer_knob_is_listed() -> None:
    """A knob added to the sandbox is added here too (or this fails)."""
    probabilities = {f.name for f in dataclasses.fields(Faults) if f.metadata["probability"]}
    assert set(EXPECTED) == probabilities | {"unreachable"}
    assert {kind for kind, _ in EXPECTED.values() if kind} <= set(KINDS)


@pytest.mark.parametrize("knob", sorted(EXPECTED))
def test_the_paths_agree_on_every_knob(
    make_sandbox: Callable[..., sandbox.Sandbox],
    path_client: Callable[..., HLRClient],
    knob: str,
) -> None:
    check_knob(make_sandbox, path_client, knob, {})


#: The knobs on the wire, again over TLS (http.client and urllib3 over an SSL socket).
TLS_KNOBS = [
    "drop", "html_200", "error_503", "rate_429", "truncated", "trickle", "endless",
    "gzip_bomb", "huge", "gzip", "chunked", "hangup", "unreachable",
]


@pytest.mark.parametrize("knob", TLS_KNOBS)
def test_the_paths_agree_on_the_wire_knobs_over_https(
    make_sandbox: Callable[..., sandbox.Sandbox],
    path_client: Callable[..., HLRClient],
    tls: TLS,
    monkeypatch: pytest.MonkeyPatch,
    knob: str,
) -> None:
    trust(monkeypatch, tls.bundle)
    check_knob(make_sandbox, path_client, knob, {"ssl_context": tls.context})


@pytest.mark.parametrize("knob", ["trickle", "endless", "gzip_bomb", "huge"])
def test_the_paths_agree_when_a_cut_answer_promised_keep_alive(
    make_sandbox: Callable[..., sandbox.Sandbox],
    path_client: Callable[..., HLRClient],
    knob: str,
) -> None:
    """No ``Connection: close`` on the answers cut short: a connection whose answer was not
    read to its end must still not carry the next request (it would read the old body)."""
    check_knob(make_sandbox, path_client, knob, {}, delivery_keep_alive=True)


def check_knob(
    make_sandbox: Callable[..., sandbox.Sandbox],
    path_client: Callable[..., HLRClient],
    knob: str,
    sandbox_knobs: dict[str, Any],
    **fault_params: Any,
) -> None:
    numbers = NUMBERS[:3]
    client_knobs: dict[str, Any] = {"workers": 2}
    if knob in DEADLINE_KNOBS:
        client_knobs.update(timeout=(30, 30), deadline=0.2)
    runs = both_paths(
        make_sandbox,
        path_client,
        numbers,
        sandbox_knobs={
            "faults": dataclasses.replace(knob_faults(knob), **fault_params),
            "seed": 1,
            **sandbox_knobs,
        },
        client_knobs=client_knobs,
    )
    lean, adapter = runs["lean"], runs["adapter"]
    assert lean == adapter

    # Each path against the independent truth (the table above).
    kind, billed = EXPECTED[knob]
    retried = kind is not None and KINDS[kind].retry
    attempts = 1 + RETRIES if retried else 1
    for name, run in runs.items():
        assert run.raised is None, name
        for number in numbers:
            outcome = run.outcomes[number]
            if kind is None:
                assert isinstance(outcome, dict) and outcome["to"] == number, name
            else:
                assert outcome[1] == kind and outcome[3] == attempts, (name, outcome)
        assert run.stats["requests"] == attempts * len(numbers), name
        assert run.stats["failures"] == ({kind: attempts * len(numbers)} if kind else {}), name
        possibly = kind is not None and KINDS[kind].possibly_charged
        assert run.stats["possibly_charged"] == (attempts * len(numbers) if possibly else 0)
        # the ledger: billed as the sandbox documents, never more often than attempted
        assert run.charged == ({n: attempts for n in numbers} if billed else {}), name
        expected_received = {} if knob == "unreachable" else {n: attempts for n in numbers}
        assert run.received == expected_received, name
    if knob == "rate_429":  # Retry-After read from the headers on both paths
        assert adapter.sleeps == [1.0] * (RETRIES * len(numbers))


@pytest.mark.parametrize("knob", ["slow", "trickle"], ids=["in-the-head", "in-the-body"])
def test_the_paths_agree_on_a_read_timeout(
    make_sandbox: Callable[..., sandbox.Sandbox],
    path_client: Callable[..., HLRClient],
    knob: str,
) -> None:
    """A socket read timeout, the deadline far off: waiting for the head it is a
    ``timeout``; in the middle of the body requests calls it a lost connection (both
    possibly charged). Either way, the same on both paths."""
    faults = Faults(**{knob: 1.0}, slow_seconds=30.0)
    runs = both_paths(
        make_sandbox,
        path_client,
        NUMBERS[:2],
        sandbox_knobs={"faults": faults},
        client_knobs={"workers": 2, "timeout": (5, 0.2)},
    )
    assert runs["lean"] == runs["adapter"]
    kind = "timeout" if knob == "slow" else "connection_lost"
    for outcome in runs["lean"].outcomes.values():
        assert outcome[1] == kind, outcome
    assert runs["lean"].stats["possibly_charged"] == 2 * (1 + RETRIES)


@pytest.mark.parametrize("over", [0, 1], ids=["exactly-the-cap", "one-byte-over"])
@pytest.mark.parametrize("shape", ["content-length", "chunked", "gzip"])
def test_the_paths_agree_on_max_answer_bytes_to_the_byte(
    make_sandbox: Callable[..., sandbox.Sandbox],
    path_client: Callable[..., HLRClient],
    shape: str,
    over: int,
) -> None:
    """A 200 answer of exactly ``max_answer_bytes`` (decoded) is read whole (here: nested
    too deep, so ``malformed``); one byte more is ``too_large``, whatever its framing."""
    phone = NUMBERS[0]
    body = server_module._answer_body((phone, False, False, False, True), {"deep_nesting"})
    faults = {"deep_nesting": 1.0, **({shape: 1.0} if shape != "content-length" else {})}
    runs = both_paths(
        make_sandbox,
        path_client,
        [phone],
        sandbox_knobs={"faults": Faults(**faults)},
        client_knobs={"workers": 1, "max_answer_bytes": len(body) - over},
    )
    # Connections aside: a gzip answer too large once decoded but read whole off the wire
    # leaves a clean connection, which the adapter keeps and the lean path (by rule: an
    # answer not read to its end) drops. Both are safe.
    lean, adapter = (dataclasses.replace(runs[p], connections=None) for p in ("lean", "adapter"))
    assert lean == adapter
    kind = runs["lean"].outcomes[phone][1]
    assert kind == ("too_large" if over else "malformed")


# ------------------------------------------------------------------ the other kinds of failure
@pytest.mark.parametrize(
    ("case", "kind"),
    [
        ("wrong_token", "auth"),
        ("no_balance", "balance"),
        ("bad_numbers", "validation"),
        ("wrong_base_url", "unexpected"),
        ("long_retry_after", "throttled"),
    ],
)
def test_the_paths_agree_on_the_answers_that_stop_or_refuse(
    make_sandbox: Callable[..., sandbox.Sandbox],
    path_client: Callable[..., HLRClient],
    case: str,
    kind: str,
) -> None:
    numbers = NUMBERS[:3]
    sandbox_knobs: dict[str, Any] = {}
    client_knobs: dict[str, Any] = {"workers": 1}
    suffix = ""
    if case == "wrong_token":
        client_knobs["token"] = "sk-wrong-" + SECRET[::-1]
    elif case == "no_balance":
        sandbox_knobs["balance"] = 1
    elif case == "bad_numbers":
        numbers = ["+4479", "+4479000000000000", NUMBERS[0]]
    elif case == "wrong_base_url":
        suffix = "/v2"
    else:
        sandbox_knobs["faults"] = Faults(rate_429=1.0, retry_after=86400)
    runs = both_paths(
        make_sandbox,
        path_client,
        numbers,
        sandbox_knobs=sandbox_knobs,
        client_knobs=client_knobs,
        url_suffix=suffix,
    )
    assert runs["lean"] == runs["adapter"]
    run = runs["lean"]
    kinds = {o[1] for o in run.outcomes.values() if isinstance(o, tuple)}
    assert kind in kinds | {run.raised[1] if run.raised else None}
    assert sum(run.charged.values()) <= 1  # at most the one the balance allowed


# ------------------------------------------------------------------ all knobs at once, seeded
MIXED = Faults(
    drop=0.05,
    error_500=0.04,
    error_503=0.04,
    rate_429=0.04,
    html_200=0.03,
    quota=0.03,
    temporary=0.04,
    wrong_to=0.03,
    errors_beside_results=0.03,
    bom=0.03,
    bad_utf8=0.03,
    surrogate=0.03,
    deep_nesting=0.02,
    truncated=0.05,
    missing_to=0.03,
    nan_field=0.03,
    echo_token=0.03,
    endless=0.02,
    gzip_bomb=0.02,
    huge=0.02,
    formula_name=0.03,
    gzip=0.2,
    chunked=0.2,
    retry_after=1.0,
    delivery_keep_alive=True,  # a cut answer's connection must be dropped unasked
)


@pytest.mark.parametrize("seed", [7, 8])
def test_the_paths_agree_request_by_request_on_a_mixed_run(
    make_sandbox: Callable[..., sandbox.Sandbox],
    path_client: Callable[..., HLRClient],
    seed: int,
) -> None:
    """One worker: the seeded draws meet the requests in the same order on both paths, so
    the whole request log (number, status, fault), the TCP connections opened (a broken
    answer's connection is not reused, a good one is) and the sleeps compare in order."""
    numbers = NUMBERS[:40]
    runs = both_paths(
        make_sandbox,
        path_client,
        numbers,
        sandbox_knobs={"faults": MIXED, "seed": seed},
        client_knobs={"workers": 1, "retry": dataclasses.replace(POLICY, max_retries=4)},
    )
    lean, adapter = runs["lean"], runs["adapter"]
    assert lean.sequence == adapter.sequence
    assert lean == adapter
    assert len(set(lean.faults)) >= 8  # the seed drew a real mix
    # nothing billed twice beyond what the retry policy allows
    for number, times in lean.charged.items():
        assert times <= 1 + 4, number
        if times > 1:
            assert number in lean.stats["possibly_charged_numbers"]


def test_the_paths_agree_request_by_request_when_deadlines_cut_answers(
    make_sandbox: Callable[..., sandbox.Sandbox],
    path_client: Callable[..., HLRClient],
) -> None:
    """Attempts cut by their deadline among good answers, on one worker: a cut connection is
    never used again (the next answer would be read from the middle of the old one)."""
    numbers = NUMBERS[40:46]
    runs = both_paths(
        make_sandbox,
        path_client,
        numbers,
        sandbox_knobs={
            "faults": Faults(slow=0.3, trickle=0.2, slow_seconds=30.0, delivery_keep_alive=True),
            "seed": 3,
        },
        client_knobs={"workers": 1, "timeout": (30, 30), "deadline": 0.2},
    )
    assert runs["lean"] == runs["adapter"]
    faults = runs["lean"].faults
    assert faults.get("slow", 0) and faults.get("trickle", 0)  # the seed drew both
    assert any(isinstance(o, dict) for o in runs["lean"].outcomes.values())


def test_every_failure_kind_is_compared_somewhere() -> None:
    """The knob table, the stop/refuse cases and TLS reach every kind but ``request_error``
    (a ``requestError`` body with status 200/4xx: no sandbox knob sends one to a valid
    request)."""
    reached = {kind for kind, _ in EXPECTED.values() if kind}
    reached |= {"auth", "balance", "validation", "unexpected", "throttled", "tls"}
    assert reached == set(KINDS) - {"request_error"}


# ------------------------------------------------------------------ the token, in every failure
def token_paths(obj: object, path: str = "error", seen: set[int] | None = None) -> list[str]:
    """Where the token sits in an exception, beyond what ``check_no_leak`` formats: its
    cause and context, args, attributes (an ``IncompleteRead``'s ``.partial`` bytes, a
    ``body_excerpt``), wrapped reasons, and the locals of its traceback's frames, as text or
    bytes, recursively (other objects by their repr)."""
    seen = set() if seen is None else seen
    if isinstance(obj, str):
        return [path] if SECRET in obj else []
    if isinstance(obj, bytes | bytearray):
        return [path] if SECRET.encode() in obj else []
    if id(obj) in seen or obj is None:
        return []
    seen.add(id(obj))
    found: list[str] = []
    if isinstance(obj, BaseException):
        found += token_paths(obj.__cause__, path + ".__cause__", seen)
        found += token_paths(obj.__context__, path + ".__context__", seen)
        found += token_paths(obj.args, path + ".args", seen)
        for name, value in vars(obj).items():
            found += token_paths(value, f"{path}.{name}", seen)
        for frame, _ in traceback.walk_tb(obj.__traceback__):
            where = f"{path}<{frame.f_code.co_name}>"
            for name, value in frame.f_locals.items():
                found += token_paths(value, f"{where}.{name}", seen)
    elif isinstance(obj, list | tuple | set | frozenset):
        for i, value in enumerate(obj):
            found += token_paths(value, f"{path}[{i}]", seen)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            found += token_paths(key, f"{path}<key>", seen)
            found += token_paths(value, f"{path}[{key!r}]", seen)
    else:
        found += token_paths(repr(obj), f"repr({path})", seen)
    return found


#: Failures of the answer's and the wire's kinds whose answer carries the token (a gateway
#: echoing the Authorization header): the bytes read so far travel in the exception.
ECHOED = {
    "truncated": {},
    "deep_nesting": {},
    "missing_to": {},
    "nan_field": {},
    "wrong_to": {},
    "trickle": {"deadline": 0.2, "timeout": (30, 30)},
    "trickle-read-timeout": {"timeout": (5, 0.2)},
    "endless": {},
    "gzip_bomb": {},
}


@pytest.mark.parametrize("case", sorted(ECHOED))
@pytest.mark.parametrize("path", PATHS)
def test_no_failure_holds_an_echoed_token(
    make_sandbox: Callable[..., sandbox.Sandbox],
    path_client: Callable[..., HLRClient],
    path: str,
    case: str,
) -> None:
    knob = case.split("-")[0]
    faults = Faults(**{knob: 1.0}, echo_token=1.0, delivery_keep_alive=True)
    sb = make_sandbox(token=SECRET, faults=faults)
    client = path_client(sb.url, PATHS[path], workers=1, **ECHOED[case])
    client.retry = dataclasses.replace(POLICY, max_retries=0)
    out = bounded(lambda: client.lookup_many(NUMBERS[:2]))
    assert sb.stats().fault_counts.get("echo_token") == 2  # the answers did carry the token
    for number, outcome in out.items():
        assert isinstance(outcome, HLRError), (number, outcome)
        check_no_leak(outcome)
        assert token_paths(outcome) == [], (number, outcome.kind)


def test_token_paths_finds_a_token_wherever_it_hides() -> None:
    """The walker above can fail: a token in bytes two causes down, in a frame's locals."""
    import http.client

    def fail() -> None:
        header = b"Bearer " + SECRET.encode()  # noqa: F841 (a frame local)
        raise ValueError("x")

    try:
        try:
            fail()
        except ValueError as exc:
            raise requests.ConnectionError("cut") from exc
    except requests.ConnectionError as outer:
        err = outer
    assert token_paths(err)  # the frame local
    partial = requests.ConnectionError(
        "cut", http.client.IncompleteRead(b'{"x": "Bearer ' + SECRET.encode())
    )
    assert sorted(token_paths(partial)) == ["error.args[1].args[0]", "error.args[1].partial"]


# ------------------------------------------------------------------ keep-alive hygiene
def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        pytest.param(
            "::1", marks=pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
        ),
    ],
)
@pytest.mark.parametrize("path", PATHS)
def test_a_kept_alive_connection_serves_every_lookup(
    make_sandbox: Callable[..., sandbox.Sandbox],
    path_client: Callable[..., HLRClient],
    path: str,
    host: str,
) -> None:
    """One connection for every lookup of a thread (a Latin-1 token in the head, an IPv6
    Host); ``client.close()`` closes it."""
    token = "caf\xe9-" + SECRET
    sb = make_sandbox(token=token, host=host)
    client = path_client(sb.url, PATHS[path], workers=1, token=token)
    for number in NUMBERS[:5]:
        assert client.lookup(number) == sandbox.answer(number)
    out = bounded(lambda: client.lookup_many(NUMBERS[5:9], workers=1))
    assert out == {n: sandbox.answer(n) for n in NUMBERS[5:9]}
    stats = sb.stats()
    assert stats.requests == 9 and stats.connections == 2  # lookup()'s, and the worker's
    client.close()
    assert client_sockets(sb) == []  # closed by close(), not left to the garbage collector


def client_sockets(sb: sandbox.Sandbox) -> list[Any]:
    """This process's open TCP sockets connected to the sandbox (the client's ends)."""
    psutil = pytest.importorskip("psutil")
    process = psutil.Process()
    table = getattr(process, "net_connections", None) or process.connections
    return [c for c in table("tcp") if c.raddr and c.raddr.port == sb.port]


def every_answered_connection_closed(sb: sandbox.Sandbox) -> Callable[[], bool]:
    """With ``hangup`` at 1.0 each connection carries one answer and is then closed, so once
    the server has closed as many connections as it answered, the one that carried the
    answer just read is closed (one snapshot: another worker's close cannot stand in)."""

    def done() -> bool:
        stats = sb.stats()
        return stats.closed >= stats.total_charged

    return done


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("announced", [False, True], ids=["silent", "connection-close"])
@pytest.mark.parametrize("path", PATHS)
def test_a_connection_the_server_closed_is_not_reused(
    make_sandbox: Callable[..., sandbox.Sandbox],
    path_client: Callable[..., HLRClient],
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    announced: bool,
    scheme: str,
) -> None:
    """The server answers, then closes the connection (an idle timeout; or it said so): the
    next lookup on that thread, made once the server has closed it, reconnects. No
    ``connection_lost``, no retry, nothing billed twice."""
    knobs: dict[str, Any] = {}
    if scheme == "https":
        tls: TLS = request.getfixturevalue("tls")
        trust(monkeypatch, tls.bundle)
        knobs["ssl_context"] = tls.context
    faults = Faults(hangup=1.0, hangup_announced=announced)
    sb = make_sandbox(token=SECRET, faults=faults, **knobs)
    client = path_client(sb.url, PATHS[path], workers=1)
    numbers = NUMBERS[:4]
    for number in numbers:
        assert client.lookup(number) == sandbox.answer(number)
        until(every_answered_connection_closed(sb))
    # the same through lookup_many's workers, each waiting in on_result for the server's close
    more = NUMBERS[4:12]

    def on_result(number: str, outcome: Any) -> None:
        until(every_answered_connection_closed(sb))

    out = bounded(lambda: client.lookup_many(more, workers=2, on_result=on_result))
    assert out == {n: sandbox.answer(n) for n in more}
    assert client.stats.failures == {} and client.stats.retries == 0
    assert client.stats.requests == len(numbers) + len(more)
    stats = sb.stats()
    assert stats.charged == {n: 1 for n in numbers + more}
    assert stats.connections == stats.requests == len(numbers) + len(more)


# ------------------------------------------------------------------ TLS
class TLS(NamedTuple):
    """A server-side context with a certificate for 127.0.0.1, and its CA's PEM file."""

    context: ssl.SSLContext
    bundle: Path


@pytest.fixture
def tls(tmp_path: Path) -> TLS:
    """A fresh trustme CA for this test (a CA trusted by one test is unknown to the next)."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return TLS(context, bundle)


def trust(monkeypatch: pytest.MonkeyPatch, bundle: Path) -> None:
    """Make the client trust ``bundle``'s CA for a loopback URL, as a user's machine would:
    requests verifies against ``requests.adapters.DEFAULT_CA_BUNDLE_PATH`` when ``verify`` is
    True, and for a loopback URL pd-hlr sets ``trust_env=False``, so ``REQUESTS_CA_BUNDLE``
    is not read. Both paths take their TLS settings from the pool requests configures."""
    monkeypatch.setattr(requests.adapters, "DEFAULT_CA_BUNDLE_PATH", str(bundle))


@pytest.mark.parametrize("env", [False, True], ids=["plain-env", "ca-in-env"])
def test_an_untrusted_certificate_fails_as_tls_on_both_paths(
    make_sandbox: Callable[..., sandbox.Sandbox],
    path_client: Callable[..., HLRClient],
    tls: TLS,
    monkeypatch: pytest.MonkeyPatch,
    env: bool,
) -> None:
    """Not retried, not billed, nothing reached the API. With ``env``, the CA is named in
    ``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE``: a loopback URL ignores the environment
    (``trust_env=False``) on the adapter path, so the lean path must not trust it either."""
    numbers = NUMBERS[:3]
    if env:
        for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
            monkeypatch.setenv(var, str(tls.bundle))
    runs: dict[str, Run] = {}
    for name, direct in PATHS.items():
        sb = make_sandbox(token=SECRET, ssl_context=tls.context)
        client = path_client(sb.url, direct, workers=2)
        runs[name] = run = observe(sb, client, numbers, ordered=False)
        assert all(o[1] == "tls" and o[3] == 1 for o in run.outcomes.values()), (name, run)
        assert run.stats["requests"] == len(numbers) and run.sleeps == []  # no retry storm
        assert run.stats["possibly_charged"] == 0 and run.charged == {}
        assert sb.stats().requests == 0
    assert runs["lean"] == runs["adapter"]


def test_the_paths_agree_on_a_stalled_tls_handshake(
    make_sandbox: Callable[..., sandbox.Sandbox],
    path_client: Callable[..., HLRClient],
    tls: TLS,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server accepts the connection but never answers the TLS handshake: the connect
    timeout ends each attempt, nothing reaches the API. Both paths must call it the same
    kind (and so agree on ``possibly_charged`` and on the retries)."""
    trust(monkeypatch, tls.bundle)
    runs = both_paths(
        make_sandbox,
        path_client,
        NUMBERS[:2],
        sandbox_knobs={
            "ssl_context": tls.context,
            "faults": Faults(stall_handshake=True, slow_seconds=30.0),
        },
        client_knobs={"workers": 2, "timeout": (0.3, 5)},
    )
    for run in runs.values():
        assert run.charged == {} and run.received == {}
        # nothing was sent: a connect failure (retried, never possibly charged)
        assert set(run.stats["failures"]) == {"connect"}, run.stats
        assert run.stats["possibly_charged"] == 0
    assert runs["lean"] == runs["adapter"]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_the_paths_agree_on_a_connection_reset_before_the_request(
    make_sandbox: Callable[..., sandbox.Sandbox],
    path_client: Callable[..., HLRClient],
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    scheme: str,
) -> None:
    """The server resets each connection when its first bytes arrive: the request (over
    http) or the TLS ClientHello (over https). Nothing reaches the API; both paths must
    call it the same kind."""
    knobs: dict[str, Any] = {"faults": Faults(reset_on_connect=True)}
    if scheme == "https":
        tls: TLS = request.getfixturevalue("tls")
        trust(monkeypatch, tls.bundle)
        knobs["ssl_context"] = tls.context
    runs = both_paths(
        make_sandbox, path_client, NUMBERS[:2], sandbox_knobs=knobs, client_knobs={"workers": 2}
    )
    for run in runs.values():
        assert run.charged == {} and run.received == {}
        # over http the request was on its way: possibly charged; over https only the
        # ClientHello was: a connect failure
        kind = "connection_lost" if scheme == "http" else "connect"
        assert set(run.stats["failures"]) == {kind}, run.stats
    assert runs["lean"] == runs["adapter"]


def test_a_certificate_for_another_host_fails_as_tls_on_both_paths(
    make_sandbox: Callable[..., sandbox.Sandbox],
    path_client: Callable[..., HLRClient],
    tls: TLS,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A trusted CA, but the certificate names another host: the hostname check fails."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("api.provero.io").configure_cert(context)
    bundle = tls.bundle.with_name("other-host-ca.pem")
    ca.cert_pem.write_to_path(str(bundle))
    trust(monkeypatch, bundle)
    runs = both_paths(
        make_sandbox,
        path_client,
        NUMBERS[:2],
        sandbox_knobs={"ssl_context": context},
        client_knobs={"workers": 2},
    )
    assert runs["lean"] == runs["adapter"]
    assert {o[1] for o in runs["lean"].outcomes.values()} == {"tls"}
    assert runs["lean"].received == {}


@pytest.mark.parametrize("path", PATHS)
def test_a_trusted_certificate_answers_over_https(
    make_sandbox: Callable[..., sandbox.Sandbox],
    path_client: Callable[..., HLRClient],
    tls: TLS,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
) -> None:
    """The CA trusted as :func:`trust` says: answers over https, one connection kept."""
    trust(monkeypatch, tls.bundle)
    sb = make_sandbox(token=SECRET, ssl_context=tls.context)
    client = path_client(sb.url, PATHS[path], workers=2)
    assert sb.url.startswith("https://")
    numbers = NUMBERS[:6]
    out = bounded(lambda: client.lookup_many(numbers))
    assert out == {n: sandbox.answer(n) for n in numbers}
    assert client.lookup(NUMBERS[0]) == out[NUMBERS[0]]
    assert client.stats.failures == {} and sb.stats().charged == {
        n: 2 if n == NUMBERS[0] else 1 for n in numbers
    }
    assert sb.stats().connections <= 3  # kept alive: one per worker, one for lookup()
