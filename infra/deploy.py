"""`python -m infra.deploy up|preview|refresh|destroy --stack NAME [-- pulumi args]`.

Pulumi's S3 backend has no lock of its own across machines, so every deploy goes through this
wrapper: it takes a lease in the DynamoDB table the bootstrap stack created (a conditional write
that only succeeds when nobody holds a live lease), renews it while `pulumi` runs, and deletes it
when `pulumi` exits, however it exits. A lease whose holder died expires after `--ttl` seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

DEFAULT_TABLE = "pulumi-deploy-locks"
DEFAULT_TTL_SECONDS = 45 * 60


class LeaseHeld(RuntimeError):
    pass


class DeployLock:
    def __init__(
        self,
        client: Any,
        table: str,
        key: str,
        *,
        operation: str = "deploy",
        holder: str | None = None,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._table = table
        self.key = key
        self.operation = operation
        self.holder = holder or f"{getpass.getuser()}@{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self._ttl = ttl_seconds
        self._clock = clock

    def acquire(self) -> None:
        now = int(self._clock())
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "LockID": {"S": self.key},
                    "Holder": {"S": self.holder},
                    "Operation": {"S": self.operation},
                    "AcquiredAt": {"N": str(now)},
                    "ExpiresAt": {"N": str(now + self._ttl)},
                },
                ConditionExpression=(
                    "attribute_not_exists(LockID) OR ExpiresAt < :now OR Holder = :me"
                ),
                ExpressionAttributeValues={":now": {"N": str(now)}, ":me": {"S": self.holder}},
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            raise LeaseHeld(self._describe_current()) from None

    def renew(self) -> bool:
        """Extend our lease; False if it is no longer ours."""
        now = int(self._clock())
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"LockID": {"S": self.key}},
                UpdateExpression="SET ExpiresAt = :expires",
                ConditionExpression="Holder = :me",
                ExpressionAttributeValues={
                    ":expires": {"N": str(now + self._ttl)},
                    ":me": {"S": self.holder},
                },
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def release(self) -> None:
        """Delete the lease if it is still ours (never someone else's)."""
        with contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException):
            self._client.delete_item(
                TableName=self._table,
                Key={"LockID": {"S": self.key}},
                ConditionExpression="Holder = :me",
                ExpressionAttributeValues={":me": {"S": self.holder}},
            )

    def _describe_current(self) -> str:
        item = self._client.get_item(TableName=self._table, Key={"LockID": {"S": self.key}}).get(
            "Item", {}
        )
        holder = item.get("Holder", {}).get("S", "someone")
        operation = item.get("Operation", {}).get("S", "a deploy")
        expires = int(item.get("ExpiresAt", {}).get("N", "0"))
        until = datetime.fromtimestamp(expires, UTC).isoformat(timespec="seconds")
        return f"{self.key} is locked by {holder} ({operation}) until {until}"

    def __enter__(self) -> DeployLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()


def run_locked(lock: DeployLock, command: list[str], *, heartbeat_seconds: float) -> int:
    """Run `command` while holding `lock`; forward SIGINT/SIGTERM; always release."""
    with lock:
        process = subprocess.Popen(command)  # noqa: S603
        stop = threading.Event()

        def heartbeat() -> None:
            while not stop.wait(heartbeat_seconds):
                if not lock.renew():
                    print(f"warning: lost the deploy lock on {lock.key}", file=sys.stderr)
                    return

        beat = threading.Thread(target=heartbeat, daemon=True)
        beat.start()
        previous = {
            sig: signal.signal(sig, lambda s, _f: process.send_signal(s))
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            return process.wait()
        finally:
            stop.set()
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("operation", choices=["up", "preview", "refresh", "destroy"])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--project", default="salla-data-pipeline")
    parser.add_argument("--table", default=os.environ.get("PULUMI_LOCK_TABLE", DEFAULT_TABLE))
    parser.add_argument("--ttl", type=int, default=DEFAULT_TTL_SECONDS)
    parser.add_argument("--pulumi", default="pulumi", help="pulumi executable")
    argv = sys.argv[1:] if argv is None else argv
    ours, extra = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    args = parser.parse_args(ours)
    import boto3

    lock = DeployLock(
        boto3.client("dynamodb"),
        args.table,
        f"{args.project}/{args.stack}",
        operation=args.operation,
        ttl_seconds=args.ttl,
    )
    command = [args.pulumi, args.operation, "--stack", args.stack, *extra]
    try:
        return run_locked(lock, command, heartbeat_seconds=max(5.0, args.ttl / 3))
    except LeaseHeld as error:
        print(f"refusing to run: {error}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    raise SystemExit(main())
