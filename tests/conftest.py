"""Shared fixtures: a real sandbox server on 127.0.0.1 and clients pointed at it.

One sandbox factory (:func:`make_sandbox`); ``sandbox_server``, ``sb`` and ``real_api`` (a
sandbox reached through the environment, as the real API is) are built on it.
No test writes to the user's cache folder: ``PD_HLR_CACHE`` points into pytest's temp dir for
the whole session, and ``PROVERO_*`` variables from the developer's shell are ignored.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from pd_hlr import sandbox
from pd_hlr.settings import BASE_URL_ENV, CACHE_ENV, TOKEN_ENV

TOKEN = "test-token-5f2a9c"
T = TypeVar("T")

#: Generous bound of any one client call in a test: only a hang takes this long.
HANG_SECONDS = 120.0


def bounded(fn: Callable[[], T], seconds: float = HANG_SECONDS) -> T:
    """Run ``fn`` in a thread and return what it returns (or raise what it raises); fail the
    test if it is still running after ``seconds`` (a hang, not a slow machine)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=run, name="bounded-test-call", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"hang: the call did not return within {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


@pytest.fixture(scope="session", autouse=True)
def _ctrl_c_raises() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt, in this process and in the processes tests start.

    A shell starts background jobs (``cmd &``, ``nohup``) with SIGINT ignored, and Python then
    keeps it ignored; the tests of Ctrl-C would test nothing there. Python's own handler is put
    back for the session (a handled signal reverts to the default in a child at ``exec``, so
    child Pythons install theirs too)."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if previous is signal.SIG_IGN:
            signal.signal(signal.SIGINT, previous)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("default-cache")))
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.delenv(BASE_URL_ENV, raising=False)


@contextlib.contextmanager
def _sandboxes() -> Iterator[Callable[..., sandbox.Sandbox]]:
    with contextlib.ExitStack() as stack:

        def start(**kwargs: Any) -> sandbox.Sandbox:
            kwargs.setdefault("token", TOKEN)
            return stack.enter_context(sandbox.serve(**kwargs))

        yield start


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., sandbox.Sandbox]]:
    """Start sandboxes with the given knobs (``token`` defaults to :data:`TOKEN`) for this test
    only; all are stopped at teardown."""
    with _sandboxes() as start:
        yield start


@pytest.fixture
def real_api(monkeypatch: pytest.MonkeyPatch, make_sandbox: Any) -> Callable[..., sandbox.Sandbox]:
    """Start a sandbox reached the way the real API is: ``PROVERO_BASE_URL`` +
    ``PROVERO_API_TOKEN`` point at it for this test."""

    def start(**knobs: Any) -> sandbox.Sandbox:
        sb = make_sandbox(**knobs)
        monkeypatch.setenv(BASE_URL_ENV, sb.url)
        monkeypatch.setenv(TOKEN_ENV, TOKEN)
        return sb

    return start


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[sandbox.Sandbox]:
    """One shared, fault-free sandbox for tests that only read answers (its stats are shared:
    assert on them only through a fresh sandbox)."""
    with _sandboxes() as start:
        yield start()


@pytest.fixture
def sb(make_sandbox: Callable[..., sandbox.Sandbox]) -> sandbox.Sandbox:
    """A fresh fault-free sandbox for this test (its stats start at zero)."""
    return make_sandbox()


@pytest.fixture
def client_for() -> Iterator[Callable[..., Any]]:
    """Build HLRClients pointed at a sandbox (its token by default); closed at teardown."""
    from pd_hlr import HLRClient

    clients: list[Any] = []

    def build(server: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("token", getattr(server, "token", TOKEN))
        c = HLRClient(base_url=server.url, **kwargs)
        clients.append(c)
        return c

    yield build
    for c in clients:
        c.close()


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    """A ``distributed`` client on two worker processes, for one test module (while it lives,
    it is Dask's default scheduler)."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible server on 127.0.0.1 (``tests/s3server.py``: the one ``.ci/run``
    started, else a moto server for this session). Skips when moto/boto3 are not installed."""
    pytest.importorskip("boto3")
    from . import s3server

    if not os.environ.get("AWS_ENDPOINT_URL"):
        pytest.importorskip("moto.server")
    with s3server.serve() as endpoint:
        yield endpoint


@pytest.fixture
def s3_url(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``s3://<fresh bucket>/team/cache`` with this process's AWS environment pointed at the
    loopback server (child processes inherit it)."""
    from . import s3server

    for name, value in s3server.env(s3_endpoint).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return f"s3://{s3server.new_bucket(s3_endpoint)}/team/cache"
