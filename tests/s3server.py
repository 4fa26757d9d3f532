"""An S3-compatible server on 127.0.0.1 for the ``s3://`` cache's tests: moto's standalone
server (it honours ``If-None-Match: *`` and ``If-Match`` on PutObject, checked by
``tests/test_cache_s3.py``).

``.ci/run`` starts one and exports ``AWS_ENDPOINT_URL`` (and test credentials); without one, the
session fixture :func:`endpoint` starts it in a thread. An endpoint that is not on the loopback
address is refused: tests never reach anything else.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def serve() -> Iterator[str]:
    """The endpoint of an S3 server on 127.0.0.1: the one in ``AWS_ENDPOINT_URL`` (loopback
    only), else a moto server started in a thread for as long as the block runs."""
    configured = os.environ.get("AWS_ENDPOINT_URL")
    if configured:
        yield check_loopback(configured)
        return
    from moto.server import ThreadedMotoServer

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
