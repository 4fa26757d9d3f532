"""An S3-compatible server on 127.0.0.1 for the ``s3://`` cache's tests: moto's standalone
server (it honours ``If-None-Match: *`` and ``If-Match`` on PutObject, checked by
``tests/test_cache_s3.py``).

``.ci/run`` starts one and exports ``AWS_ENDPOINT_URL`` (and test credentials); without one, the
session fixture :func:`endpoint` starts it in a thread. An endpoint that is not on the loopback
address is refused: tests never reach anything else.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "pd-hlr-test",
    "AWS_SECRET_ACCESS_KEY": "pd-hlr-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def check_loopback(url: str) -> str:
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK:
        raise RuntimeError(f"the tests' S3 endpoint must be on 127.0.0.1, not {url!r}")
    return url


#: One lock around every object write moto handles (see :func:`atomic_writes`).
_WRITES = threading.Lock()


def atomic_writes() -> None:
    """Make moto's object writes atomic, as S3's are.

    moto's PutObject checks ``If-None-Match`` / ``If-Match`` and then writes, with nothing
    between the two held: two conditional PUTs that arrive together (its server is threaded)
    can both pass the check and both answer 200, the later silently overwriting the other.
    S3 serializes them (one wins; the other gets 412, or 409 ConditionalRequestConflict).
    Under CPU load that window opens (issue 28: 3 of 150 rounds of six racing PUTs had two
    winners), and two claimers both "win" one compare-and-swap of ``claims.json``: both pay.
    Holding one lock across each PUT / DELETE / copy handler gives the test server S3's
    promise. Idempotent; patches this process's moto only."""
    from moto.s3.responses import S3Response

    for name in ("put_object", "delete_object", "copy_object"):
        handler = getattr(S3Response, name)
        if getattr(handler, "_pd_hlr_atomic", False):
            continue

        def locked(self: Any, *args: Any, _handler: Any = handler, **kwargs: Any) -> Any:
            with _WRITES:
                return _handler(self, *args, **kwargs)

        functools.update_wrapper(locked, handler)
        locked._pd_hlr_atomic = True  # type: ignore[attr-defined]
        setattr(S3Response, name, locked)


@contextmanager
def serve() -> Iterator[str]:
    """The endpoint of an S3 server on 127.0.0.1: the one in ``AWS_ENDPOINT_URL`` (loopback
    only), else a moto server started in a thread for as long as the block runs."""
    configured = os.environ.get("AWS_ENDPOINT_URL")
    if configured:
        yield check_loopback(configured)
        return
    from moto.server import ThreadedMotoServer

    atomic_writes()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield check_loopback(f"http://{host}:{port}")
    finally:
        server.stop()


def env(endpoint: str) -> dict[str, str]:
    """The AWS environment a process needs to reach ``endpoint`` (test credentials unless the
    environment has its own)."""
    out = {k: os.environ.get(k, v) for k, v in CREDENTIALS.items()}
    out["AWS_ENDPOINT_URL"] = check_loopback(endpoint)
    return out


def new_bucket(endpoint: str) -> str:
    """A fresh bucket on ``endpoint``: every test gets its own store."""
    import boto3

    name = f"pd-hlr-{uuid.uuid4().hex[:16]}"
    client = boto3.client("s3", endpoint_url=check_loopback(endpoint), **_creds())
    client.create_bucket(Bucket=name)
    return name


def _creds() -> dict[str, str]:
    return {
        "aws_access_key_id": os.environ.get("AWS_ACCESS_KEY_ID", CREDENTIALS["AWS_ACCESS_KEY_ID"]),
        "aws_secret_access_key": os.environ.get(
            "AWS_SECRET_ACCESS_KEY", CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
        ),
        "region_name": os.environ.get("AWS_DEFAULT_REGION", CREDENTIALS["AWS_DEFAULT_REGION"]),
    }


def main(argv: list[str] | None = None) -> None:
    """``python tests/s3server.py -H 127.0.0.1 -p PORT``: moto's ``moto_server`` with atomic
    object writes (:func:`atomic_writes`); what ``.ci/run`` and the benchmarks start."""
    from moto import server

    atomic_writes()
    server.main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
