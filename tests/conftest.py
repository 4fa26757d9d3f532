"""Shared fixtures: a real sandbox server on 127.0.0.1 and clients pointed at it.

No test writes to the user's cache folder: ``PD_HLR_CACHE`` points into pytest's temp dir for
the whole session, and ``PROVERO_*`` variables from the developer's shell are ignored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pd_hlr import sandbox

TOKEN = "test-token-5f2a9c"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    monkeypatch.setenv("PD_HLR_CACHE", str(tmp_path_factory.mktemp("default-cache")))
    monkeypatch.delenv("PROVERO_API_TOKEN", raising=False)
    monkeypatch.delenv("PROVERO_BASE_URL", raising=False)


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[Any]:
    """One shared, fault-free sandbox for tests that only read answers."""
    with sandbox.serve(token=TOKEN) as sb:
        yield sb


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Any]]:
    """Start a sandbox with the given knobs for this test only (stopped at teardown)."""
    with contextlib.ExitStack() as stack:

        def start(**kwargs: Any) -> Any:
            kwargs.setdefault("token", TOKEN)
            return stack.enter_context(sandbox.serve(**kwargs))

        yield start


@pytest.fixture
def sb(make_sandbox: Callable[..., Any]) -> Any:
    """A fresh fault-free sandbox for this test (its stats start at zero)."""
    return make_sandbox()


@pytest.fixture
def client_for() -> Iterator[Callable[..., Any]]:
    """Build HLRClients pointed at a sandbox; closed at teardown."""
    from pd_hlr import HLRClient

    clients: list[Any] = []

    def build(server: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("token", TOKEN)
        c = HLRClient(base_url=server.url, **kwargs)
        clients.append(c)
        return c

    yield build
    for c in clients:
        c.close()
