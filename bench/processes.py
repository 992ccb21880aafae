"""Start the processes a benchmark measures, each on its own free port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from data_pipeline.devtools.serving import wait_until_healthy

from shared.contract import env_var_names

PYTHON = sys.executable
CLI = [PYTHON, "-m", "data_pipeline.entrypoints.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in env_var_names()}
    # These harnesses measure the ingest and sync paths, as recorded before RAG existed; the
    # local embedding model would compete for the same 2 cores. `bench rag` measures RAG.
    env["RAG_ENABLED"] = "false"
    env.update(extra)
    return env


def timed_cli(*args: str) -> tuple[float, str]:
    """`salla-pipeline ARGS` as a user runs it: (wall seconds, its output); fails loudly."""
    started = time.perf_counter()
    finished = subprocess.run(
        [str(Path(sys.executable).parent / "salla-pipeline"), *args],
        env=clean_env(COLUMNS="200"),
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if finished.returncode != 0:
        raise RuntimeError(finished.stdout[-2000:] + finished.stderr[-2000:])
    return seconds, finished.stdout


@contextmanager
def process(
    command: list[str], ready_url: str, env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    output = log.open("wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        command, env=env or clean_env(), stdout=output, stderr=subprocess.STDOUT
    )
    try:
        wait_until_healthy(ready_url, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        if log:
            output.close()  # type: ignore[union-attr]


@contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bench-") as directory:
        yield Path(directory)


def loadgen(url: str, requests_file: Path, **options: object) -> dict[str, float]:
    args = [PYTHON, "-m", "bench.loadgen", url, str(requests_file)]
    for name, value in options.items():
        args += [f"--{name}", str(value)]
    result = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])
