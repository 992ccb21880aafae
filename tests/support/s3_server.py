"""A local S3-compatible server: moto in server mode, spoken to over real HTTP by boto3.

The service's code is unchanged: boto3 finds the endpoint in `AWS_ENDPOINT_URL_S3`, as it
would find a VPC endpoint or LocalStack. Stopping the server is a real outage (connections
refused); starting one again on the same port brings the same buckets back (moto keeps them
in this process).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from moto.server import ThreadedMotoServer

REGION = "eu-central-1"


class LocalS3:
    def __init__(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        self.port = self._server.get_host_and_port()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.stop()

    def start_again(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL_S3": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
        }

    def create_bucket(self, prefix: str = "raw-archive", *, object_lock: bool = True) -> str:
        """A new bucket (moto keeps buckets for the whole test process: each test its own)."""
        import uuid

        import boto3

        name = f"{prefix}-{uuid.uuid4().hex[:12]}"

        client = boto3.client("s3", endpoint_url=self.url, region_name=REGION)
        client.create_bucket(
            Bucket=name,
            CreateBucketConfiguration={"LocationConstraint": REGION},
            ObjectLockEnabledForBucket=object_lock,
        )
        return name


@contextmanager
def local_s3(monkeypatch) -> Iterator[LocalS3]:  # type: ignore[no-untyped-def]
    server = LocalS3()
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)
    try:
        yield server
    finally:
        server.stop()
