"""Object-store plumbing: state under one S3-compatible bucket prefix (``SOUNDMATES_DATA_URL=s3://bucket/prefix``).

Every stage that keeps shared state there (feature-store Delta tables, model registry, index
versions) goes through :class:`ObjectStore`; each stage still owns its layout under its own
sub-prefix (``store/``, ``models/``, ``index/``). Connection settings are the usual AWS variables:
``AWS_ENDPOINT_URL`` (MinIO, a local server), ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_REGION`` / ``AWS_DEFAULT_REGION``, ``AWS_ALLOW_HTTP`` (a plain-http endpoint).

What S3 guarantees and this module relies on: one PUT is atomic (a reader gets the old object or
the new one), and a conditional PUT (``If-None-Match: *`` = create only, ``If-Match: <etag>`` =
compare-and-swap) fails with 412 instead of overwriting. Directories are written file by file
with a marker file last, so a reader that waits for the marker never sees half of one; a
directory is downloaded aside and renamed into place, so a local copy is whole or absent.
Floor 1: imports nothing of the package but :mod:`soundmates.atomic` (the one rename mechanism).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from soundmates.atomic import commit_directory

_URL = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?$")


class ObjectStoreError(RuntimeError):
    """The object store could not be reached or answered an error; the message is one line."""


def check_url(url: str) -> str:
    """``url`` if it is ``s3://bucket[/prefix]``, else ValueError saying what is expected."""
    if not _URL.match(url.strip()):
        raise ValueError(f"{url[:80]!r} is not an object-store URL: expected s3://bucket/prefix (a bucket of 3-63 a-z0-9.-)")
    return url.strip().rstrip("/")


def _errors() -> tuple[type[BaseException], ...]:
    """What boto3 raises for an unreachable store or an error answer (botocore loads on first use)."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError, Boto3Error)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


class ObjectStore:
    """One bucket prefix on an S3-compatible store; keys below are relative to ``prefix``."""

    def __init__(self, url: str, env: Mapping[str, str] | None = None):
        m = _URL.match(check_url(url))
        assert m is not None  # check_url matched it
        self.bucket = m["bucket"]
        self.prefix = (m["prefix"] or "").strip("/")
        env = os.environ if env is None else env
        self.endpoint_url = env.get("AWS_ENDPOINT_URL") or None
        self.region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.access_key = env.get("AWS_ACCESS_KEY_ID") or None
        self.secret_key = env.get("AWS_SECRET_ACCESS_KEY") or None
        self.allow_http = (env.get("AWS_ALLOW_HTTP") or "").lower() in {"1", "true", "yes"}
        self._client: Any = None
        self._client_lock = threading.Lock()

    @classmethod
    def for_settings(cls, settings: Any, sub: str = "") -> ObjectStore | None:
        """The store under ``settings.data_url`` (+ ``/sub``), or None when state stays on the local disk."""
        url = getattr(settings, "data_url", "") or ""
        if not url:
            return None
        return cls(url).child(sub) if sub else cls(url)

    def child(self, sub: str) -> ObjectStore:
        """The same bucket and connection, one level down (``sub`` without slashes at the ends)."""
        other = object.__new__(ObjectStore)
        other.__dict__.update(self.__dict__)
        other.prefix = self._key(sub.strip("/"))
        other._client_lock = self._client_lock
        return other

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix and key else (self.prefix or key)

    def url(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self._key(key)}".rstrip("/")

    def storage_options(self) -> dict[str, str]:
        """deltalake's ``storage_options``: the connection, plus conditional puts for commits (no unsafe rename)."""
        opts = {"AWS_REGION": self.region, "conditional_put": "etag"}
        for name, value in (
            ("AWS_ENDPOINT_URL", self.endpoint_url),
            ("AWS_ACCESS_KEY_ID", self.access_key),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key),
        ):
            if value:
                opts[name] = value
        if self.allow_http:
            opts["AWS_ALLOW_HTTP"] = "true"
        return opts

    # --- the client ----------------------------------------------------------------
    @property
    def client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                self._client = boto3.client(
                    "s3",
                    endpoint_url=self.endpoint_url,
                    region_name=self.region,
                    aws_access_key_id=self.access_key,
                    aws_secret_access_key=self.secret_key,
                    config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=60),
                )
            return self._client

    def _fail(self, what: str, exc: BaseException) -> ObjectStoreError:
        return ObjectStoreError(f"object store {self.url()}: {what} failed ({_one_line(exc)})")

    @staticmethod
    def _code(exc: BaseException) -> str:
        return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))

    # --- objects -------------------------------------------------------------------
    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        """(bytes, ETag) of ``key``, or None when there is no such object."""
        try:
            r = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return r["Body"].read(), str(r["ETag"])
        except _errors() as exc:
            if self._code(exc) in {"NoSuchKey", "404"}:
                return None
            raise self._fail(f"reading {key}", exc) from None

    def get(self, key: str) -> bytes | None:
        got = self.get_versioned(key)
        return None if got is None else got[0]

    def put(self, key: str, data: bytes, *, if_absent: bool = False, if_etag: str | None = None) -> bool:
        """Write ``key`` in one atomic PUT; False when its condition failed (exists / ETag changed)."""
        extra: dict[str, str] = {"IfNoneMatch": "*"} if if_absent else ({"IfMatch": if_etag} if if_etag else {})
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **extra)
        except _errors() as exc:
            if extra and self._code(exc) in {"PreconditionFailed", "412", "ConditionalRequestConflict", "409", "NoSuchKey"}:
                return False
            raise self._fail(f"writing {key}", exc) from None
        return True

    def keys(self, sub: str = "") -> list[str]:
        """Every key under ``sub`` (relative to this store's prefix), sorted."""
        base = self._key(sub.strip("/"))
        start = base + "/" if base else ""
        found: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=start):
                found += [obj["Key"] for obj in page.get("Contents", [])]
        except _errors() as exc:
            raise self._fail(f"listing {sub or '/'}", exc) from None
        cut = len(self.prefix) + 1 if self.prefix else 0
        return sorted(k[cut:] for k in found)

    def dirs(self, sub: str = "") -> list[str]:
        """Names one level below ``sub`` that hold at least one object, sorted."""
        cut = len(sub.strip("/")) + 1 if sub.strip("/") else 0
        return sorted({k[cut:].split("/", 1)[0] for k in self.keys(sub) if "/" in k[cut:]})

    def delete(self, sub: str) -> int:
        """Delete every object under ``sub``; returns how many."""
        keys = self.keys(sub)
        for start in range(0, len(keys), 1000):
            chunk = [{"Key": self._key(k)} for k in keys[start : start + 1000]]
            try:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True})
            except _errors() as exc:
                raise self._fail(f"deleting {sub}", exc) from None
        return len(keys)

    # --- directories ---------------------------------------------------------------
    def upload_dir(self, local: Path, sub: str, *, last: str, if_absent: bool = True) -> bool:
        """Upload the files of ``local`` under ``sub``, ``last`` (the marker readers wait for) last.

        ``if_absent``: the marker is written only if it is not there yet (a directory is written
        once); returns False when it already was."""
        files = sorted(p for p in Path(local).rglob("*") if p.is_file())
        for path in files:
            rel = path.relative_to(local).as_posix()
            if rel != last:
                try:
                    self.client.upload_file(str(path), self.bucket, self._key(f"{sub}/{rel}"))
                except _errors() as exc:
                    raise self._fail(f"uploading {sub}/{rel}", exc) from None
        return self.put(f"{sub}/{last}", (Path(local) / last).read_bytes(), if_absent=if_absent)

    def download_dir(self, sub: str, target: Path) -> bool:
        """Copy every object under ``sub`` to the new directory ``target`` (downloaded aside, renamed in).

        False when nothing is stored under ``sub``. Another process that downloaded it first wins;
        its copy is as good as ours."""
        keys = self.keys(sub)
        if not keys:
            return False
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".dl-{target.name[:40]}-", dir=target.parent))
        try:
            cut = len(sub.strip("/")) + 1
            for key in keys:
                dest = tmp / key[cut:]
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    self.client.download_file(self.bucket, self._key(key), str(dest))
                except _errors() as exc:
                    raise self._fail(f"downloading {key}", exc) from None
            try:
                commit_directory(tmp, target)
            except OSError:
                if not target.is_dir():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return True
