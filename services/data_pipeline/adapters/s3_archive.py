"""The raw archive in S3 (boto3): create-only writes with `If-None-Match: *`.

A conditional write that finds the key answers 412 and leaves the object alone, which needs no
read permission: the function's grant is `s3:PutObject` only (infra/archive.py). Object lock
requires an integrity checksum on every write, so each carries SHA-256. The endpoint comes from
boto3's own configuration (`AWS_ENDPOINT_URL_S3` points it at a local S3-compatible server).
https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from data_pipeline.adapters.archive import ArchiveStore
from data_pipeline.errors import TransientError

_CONFIG = Config(
    connect_timeout=3,
    read_timeout=15,
    retries={"mode": "standard", "max_attempts": 3},
)


class S3Archive(ArchiveStore):
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any = None,
        client_options: dict[str, str] | None = None,
    ) -> None:
        if not bucket:
            raise ValueError("raw archive URL names no bucket (s3://bucket/prefix)")
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.url = f"s3://{bucket}/{prefix}".rstrip("/")
        self._client = client or boto3.client("s3", config=_CONFIG, **(client_options or {}))

    def put(self, key: str, data: bytes) -> bool:
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=self.prefix + key,
                Body=data,
                IfNoneMatch="*",
                ChecksumAlgorithm="SHA256",
                ContentType="application/gzip",
            )
            return True
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "PreconditionFailed":
                return False  # already archived: same key, same content
            raise TransientError(f"raw archive write failed: {_reason(error)}") from error
        except BotoCoreError as error:
            raise TransientError(f"raw archive write failed: {error}") from error

    def names(self, prefix: str = "") -> Iterator[str]:
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix
        )
        try:
            for page in pages:
                for entry in page.get("Contents", []):
                    yield entry["Key"][len(self.prefix) :]
        except (ClientError, BotoCoreError) as error:
            raise TransientError(f"raw archive listing failed: {_reason(error)}") from error

    def get(self, key: str) -> bytes:
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=self.prefix + key)
            return bytes(answer["Body"].read())
        except (ClientError, BotoCoreError) as error:
            raise TransientError(f"raw archive read failed: {_reason(error)}") from error


def _reason(error: Exception) -> str:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"{details.get('Code', 'error')}: {details.get('Message', '')}".strip()
    return str(error)
