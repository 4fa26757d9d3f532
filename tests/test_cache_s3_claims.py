"""The object store's claims (``pd_hlr.cache.objects.ObjectClaims`` and the waiting loop),
pinned one promise at a time, and the test server's own promise they rest on: a conditional
write is atomic (one winner), as on S3."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("boto3")

from . import s3server

HANG = 120


def test_the_test_server_serializes_conditional_writes(monkeypatch):
    """moto checks ``If-None-Match`` / ``If-Match`` and then writes; with the write slowed
    down, eight racing creates of one name would all pass the check. With
    :func:`tests.s3server.atomic_writes` exactly one wins, as on S3 (issue 28's flake: two
    processes both won one compare-and-swap of claims.json and both paid)."""
    import boto3
    from moto.s3.models import S3Backend
    from moto.server import ThreadedMotoServer

    real_put = S3Backend.put_object

    def slow_put(self, *args, **kwargs):
        time.sleep(0.05)  # the window between moto's check and its write, made wide
        return real_put(self, *args, **kwargs)

    monkeypatch.setattr(S3Backend, "put_object", slow_put)
    s3server.atomic_writes()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        bucket = s3server.new_bucket(endpoint)
        creds = s3server._creds()
        clients = [boto3.client("s3", endpoint_url=endpoint, **creds) for _ in range(8)]
        barrier = threading.Barrier(8)
        wins: list[int] = []
        errors: list[str] = []

        def create(i: int, **condition: str) -> None:
            barrier.wait()
            try:
                clients[i].put_object(Bucket=bucket, Key="k", Body=str(i).encode(), **condition)
            except Exception as exc:  # 412 (or 409): lost the race; anything else is shown
                code = getattr(exc, "response", {}).get("Error", {}).get("Code")
                if code not in ("PreconditionFailed", "ConditionalRequestConflict"):
                    errors.append(repr(exc))
                return
            wins.append(i)

        def race(**condition: str) -> list[int]:
            wins.clear()
            threads = [
                threading.Thread(target=create, args=(i,), kwargs=condition) for i in range(8)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(HANG)
            return list(wins)

        first = race(IfNoneMatch="*")
        assert len(first) == 1 and not errors, (first, errors)
        body = clients[0].get_object(Bucket=bucket, Key="k")
        assert body["Body"].read() == str(first[0]).encode()  # the winner's bytes, kept
        second = race(IfMatch=body["ETag"])
        assert len(second) == 1 and not errors, (second, errors)
    finally:
        server.stop()
