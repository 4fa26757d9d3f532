"""The object store under an ``s3://bucket/prefix`` cache: a handful of S3 calls (boto3).

This is the storage seam's object implementation (see ``pd_hlr/cache/objects.py`` for the
cache built on it): list, read, write, conditional create (``If-None-Match: *``),
compare-and-swap (``If-Match`` on an ETag), delete, and a ranged-read file for pyarrow.
Credentials, region and endpoint come from the standard AWS configuration, as boto3 reads it
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``,
``AWS_PROFILE`` or ``~/.aws``), so it works with AWS S3 and S3-compatible stores (MinIO, Ceph,
R2). Tested against moto's S3 server on 127.0.0.1; GCS and Azure are not supported.

>>> split_url("s3://team-bucket/hlr/cache/")
('team-bucket', 'hlr/cache')
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

S3_SCHEME = "s3://"
#: Where to get what this module needs.
INSTALL_HINT = 'the s3:// cache needs boto3: pip install "pd-hlr[s3]"'


def is_url(path: Any) -> bool:
    """Whether ``path`` names an object-store cache (``s3://…``)."""
    return isinstance(path, str) and path.lower().startswith(S3_SCHEME)


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` → ``(bucket, prefix)`` (prefix without slashes at its ends)."""
    rest = url[len(S3_SCHEME) :]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError(f"an s3:// cache needs a bucket: s3://BUCKET/PREFIX, not {url!r}")
    return bucket, prefix.strip("/")


@dataclass(frozen=True)
class ObjectInfo:
    """One object under the prefix: its name (after the prefix), size, ETag and modification
    time (seconds since the epoch, by the store's clock)."""

    name: str
    size: int
    etag: str
    mtime: float


class S3Store:
    """The objects under ``s3://bucket/prefix/`` (one boto3 client, thread-safe)."""

    def __init__(self, url: str) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError as exc:  # pragma: no cover - the s3 extra is installed in tests
            raise ImportError(INSTALL_HINT) from exc
        self.url = url.rstrip("/")
        self.bucket, self.prefix = split_url(url)
        self._session = boto3.Session()
        self.client = self._session.client(
            "s3", config=Config(retries={"max_attempts": 5, "mode": "standard"})
        )
        self._fs: Any = None
        self._fs_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def url_of(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.key(name)}"

    # -- errors ----------------------------------------------------------------------------
    @staticmethod
    def _code(exc: Exception) -> str:
        response = getattr(exc, "response", None) or {}
        return str(response.get("Error", {}).get("Code", ""))

    def _raise(self, exc: Exception, name: str) -> None:
        code = self._code(exc)
        if code in ("NoSuchKey", "404", "NotFound"):
            raise FileNotFoundError(2, "no such object", self.url_of(name)) from exc
        if code in ("AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId"):
            raise PermissionError(13, f"access denied ({code})", self.url_of(name)) from exc
        if code == "NoSuchBucket":
            raise FileNotFoundError(2, "no such bucket", f"s3://{self.bucket}") from exc
        raise OSError(5, f"{code or type(exc).__name__}: {exc}", self.url_of(name)) from exc

    def _errors(self) -> tuple[type[Exception], ...]:
        from botocore.exceptions import BotoCoreError, ClientError

        return (ClientError, BotoCoreError)

    # -- the operations --------------------------------------------------------------------
    def list(self, start: str = "", *, folders: bool = False) -> list[ObjectInfo]:
        """The objects directly under the prefix whose names begin with ``start``, by name
        (``folders``: also the "sub-folders" below it, named ``<name>/``)."""
        base = self.key("")
        out: list[ObjectInfo] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base + start, Delimiter="/"
            )
            for page in pages:
                for sub in page.get("CommonPrefixes", ()) if folders else ():
                    out.append(ObjectInfo(sub["Prefix"][len(base) :], 0, "", 0.0))
                for obj in page.get("Contents", ()):
                    out.append(
                        ObjectInfo(
                            obj["Key"][len(base) :],
                            int(obj["Size"]),
                            str(obj.get("ETag", "")),
                            obj["LastModified"].timestamp(),
                        )
                    )
        except self._errors() as exc:
            self._raise(exc, start)
        return sorted(out, key=lambda o: o.name)

    def get(self, name: str) -> tuple[bytes, str]:
        """The object's bytes and ETag. Raises FileNotFoundError when it is not there."""
        try:
            r = self.client.get_object(Bucket=self.bucket, Key=self.key(name))
            return r["Body"].read(), str(r["ETag"])
        except self._errors() as exc:
            self._raise(exc, name)
        raise AssertionError("unreachable")  # pragma: no cover

    def put(self, name: str, data: bytes) -> str:
        """Write the object whole (an S3 PUT is atomic: readers see all of it or none)."""
        try:
            return str(self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=data)[
                "ETag"
            ])
        except self._errors() as exc:
            self._raise(exc, name)
        raise AssertionError("unreachable")  # pragma: no cover

    def _conditional(self, name: str, data: bytes, **condition: str) -> str | None:
        try:
            r = self.client.put_object(
                Bucket=self.bucket, Key=self.key(name), Body=data, **condition
            )
            return str(r["ETag"])
        except self._errors() as exc:
            # 412: the condition failed; 409: a concurrent conditional write won meanwhile
            if self._code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return None
            self._raise(exc, name)
        raise AssertionError("unreachable")  # pragma: no cover

    def create(self, name: str, data: bytes) -> str | None:
        """Create the object only if no object has that name (``If-None-Match: *``). Returns
        its ETag, or None when it exists already."""
        return self._conditional(name, data, IfNoneMatch="*")

    def replace(self, name: str, data: bytes, etag: str) -> str | None:
        """Replace the object only if it is still the version ``etag`` (``If-Match``): the
        compare-and-swap. Returns the new ETag, or None when someone changed it meanwhile."""
        return self._conditional(name, data, IfMatch=etag)

    def exists(self, name: str) -> bool:
        """Whether the object is there now (a HEAD request)."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(name))
            return True
        except self._errors() as exc:
            if self._code(exc) in ("NoSuchKey", "404", "NotFound"):
                return False
            self._raise(exc, name)
        raise AssertionError("unreachable")  # pragma: no cover

    def delete(self, name: str) -> None:
        """Delete the object (no error when it is gone already)."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key(name))
        except self._errors() as exc:
            if self._code(exc) not in ("NoSuchKey", "404"):
                self._raise(exc, name)

    # -- reading parquet: ranged GETs through pyarrow's S3 filesystem -----------------------
    def filesystem(self) -> Any:
        """A ``pyarrow.fs.S3FileSystem`` with boto3's credentials, region and endpoint."""
        with self._fs_lock:
            if self._fs is None:
                from pyarrow import fs as pafs

                creds = self._session.get_credentials()
                frozen = creds.get_frozen_credentials() if creds is not None else None
                endpoint = self.client.meta.endpoint_url or ""
                scheme, _, host = endpoint.partition("://")
                kwargs: dict[str, Any] = {
                    "region": self.client.meta.region_name or "us-east-1",
                }
                if frozen is not None:
                    kwargs.update(
                        access_key=frozen.access_key,
                        secret_key=frozen.secret_key,
                        session_token=frozen.token,
                    )
                else:
                    kwargs["anonymous"] = True
                if host and not host.endswith("amazonaws.com"):
                    kwargs.update(endpoint_override=host, scheme=scheme or "https")
                self._fs = pafs.S3FileSystem(**kwargs)
            return self._fs

    def open(self, name: str, size: int | None = None) -> Any:
        """A random-access file on the object: each read is a ranged GET (one HEAD first)."""
        path = f"{self.bucket}/{self.key(name)}"
        fs = self.filesystem()
        try:
            return fs.open_input_file(path)
        except FileNotFoundError:
            raise
        except OSError as exc:
            if "NoSuchKey" in str(exc) or "does not exist" in str(exc):
                raise FileNotFoundError(2, "no such object", self.url_of(name)) from exc
            raise


__all__ = ["INSTALL_HINT", "ObjectInfo", "S3Store", "is_url", "split_url"]
