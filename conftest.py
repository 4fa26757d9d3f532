"""Doctest namespace for the examples in ``pd_hlr/`` (``pytest --doctest-modules``).

Every docstring example runs with: ``pd``, ``np``, ``pd_hlr``; ``sb``, a running fault-free
sandbox; ``client``, an :class:`~pd_hlr.HLRClient` pointed at it; ``df``, a small frame with a
``phone`` column; ``cache_dir``, a fresh empty folder (str). The working directory is a temp
folder and ``PD_HLR_CACHE`` points into it, so examples never touch the user's files.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

DOCTEST_TOKEN = "doctest-token"


@pytest.fixture(scope="session")
def _doctest_sandbox() -> Iterator[Any]:
    from pd_hlr import sandbox

    with sandbox.serve(token=DOCTEST_TOKEN) as server:
        yield server


@pytest.fixture(autouse=True)
def _doctest_globals(
    request: pytest.FixtureRequest,
    doctest_namespace: dict[str, Any],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[None]:
    if not isinstance(request.node, pytest.DoctestItem):
        yield
        return
    import numpy as np
    import pandas as pd

    import pd_hlr

    server = request.getfixturevalue("_doctest_sandbox")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PD_HLR_CACHE", str(tmp_path / "default-cache"))
    monkeypatch.delenv("PROVERO_API_TOKEN", raising=False)
    monkeypatch.delenv("PROVERO_BASE_URL", raising=False)
    client = pd_hlr.HLRClient(token=DOCTEST_TOKEN, base_url=server.url)
    (tmp_path / "cache").mkdir()
    doctest_namespace.update(
        pd=pd,
        np=np,
        pd_hlr=pd_hlr,
        sb=server,
        client=client,
        df=pd.DataFrame(
            {
                "name": ["Ada", "Bob", "Cy", "Di"],
                "phone": ["+44 7400 123456", "07400 123457", None, "not a number"],
            }
        ),
        cache_dir=str(tmp_path / "cache"),
    )
    try:
        yield
    finally:
        client.close()
