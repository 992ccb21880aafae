"""A throwaway PostgreSQL 15 (Debian's postgresql-15, which `make test` installs) with
wal_level=logical, in a temp dir, run as a non-root user (PostgreSQL refuses root): the source
of the CDC tests, benchmark and demo scene.

synchronous_commit stays on: logical decoding reads only flushed WAL, so with asynchronous
commits a drain right after a write may not see it yet (a loop catches up; a test would not).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(command: list[str], user: str) -> list[str]:
    if os.geteuid() != 0:
        return command
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root needs runuser to start PostgreSQL as another user")
    return [runuser, "-u", user, "--", *command]


@contextmanager
def postgres_server(directory: Path, *, wal_level: str = "logical") -> Iterator[str]:
    if not (BIN / "postgres").exists():
        raise RuntimeError(
            "PostgreSQL 15 is not installed: run `make test` or scripts/ensure-system-deps"
        )
    user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    if os.geteuid() == 0:
        # pytest's temp dirs are private to root; the server's user needs its own.
        directory = Path(tempfile.mkdtemp(prefix="salla-pg-"))
        shutil.chown(directory, user)
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "pgdata"
    subprocess.run(  # noqa: S603 - our own argument list
        _as_postgres(
            [str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            user,
        ),
        check=True,
        capture_output=True,
    )
    port = free_port()
    options = (
        f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c wal_level={wal_level} "
        "-c max_replication_slots=8 -c max_wal_senders=8 -c fsync=off "
        "-c full_page_writes=off"
    )
    log = directory / "postgres.log"
    subprocess.run(  # noqa: S603 - our own argument list
        _as_postgres(
            [str(BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start"],
            user,
        ),
        check=True,
        capture_output=True,
        timeout=60,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(  # noqa: S603 - our own argument list
            _as_postgres([str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], user),
            capture_output=True,
            timeout=60,
        )
        time.sleep(0.1)
        if os.geteuid() == 0:
            shutil.rmtree(directory, ignore_errors=True)
