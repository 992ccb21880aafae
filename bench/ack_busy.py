"""Webhook ack on a busy box: the whole local stack delivering, loading and embedding while
webhooks keep arriving, with and without the intake in a process of its own.

`python -m bench ack_busy`. Each mode starts `salla-pipeline dev` as a user runs it (local QStash
server delivering, Salla emulator, local embeddings model, RAG on), warms it up, then sends
signed webhooks open-loop at `BENCH_BUSY_RATE` (350/s) over 16 connections for
`BENCH_BUSY_SECONDS` (20): half new products (each one embedded), half new orders (each one
transformed and loaded). Every body is distinct (first publishes only). Latency is measured
from each request's scheduled time (no coordinated omission).

Modes, in one run: `--no-intake-process` (one process serves webhooks, deliveries, chDB and the
API, as before) and the default (webhooks in a front process at normal CPU priority, the worker
and the embeddings server below it). Reported per mode: ack p50/p99/max, non-200 answers, the
CPU seconds each process used during the load, and the backlog left at its end (accepted but not
yet settled; growing = the worker and embeddings are saturated, which is the point).

Differs from production: there the intake is its own Lambda function on its own instances, so
nothing shares its CPU; here everything shares two cores and the load generator.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
from data_pipeline.devtools.local_secrets import local_secrets
from data_pipeline.devtools.salla_samples import encode, sample_envelope
from data_pipeline.domain.webhook_auth import expected_signature

from bench.processes import CLI, clean_env, free_port, loadgen, process, workdir
from shared.topics import WEBHOOK_PATH

CONNECTIONS = 16


def _requests(path: Path, secret: str, count: int, first: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for index in range(first, first + count):
            kind = "product.created" if index % 2 else "order.created"
            body = encode(sample_envelope(kind, merchant_id=2_000_000 + index))
            headers = {
                "Content-Type": "application/json",
                "X-Salla-Signature": expected_signature(body, secret.encode()),
            }
            handle.write(
                json.dumps({"path": WEBHOOK_PATH, "body": body.decode(), "headers": headers}) + "\n"
            )


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _processes(root: int) -> dict[str, int]:
    """The stack's processes by role: the supervisor/worker and its children by command."""
    found = {"worker": root}
    children = subprocess.run(
        ["pgrep", "-P", str(root)], capture_output=True, text=True, check=False
    ).stdout.split()
    for child in children:
        command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        for role in (b"intake-dev", b"qstash-dev", b"embeddings-dev", b"salla-emulator"):
            if role in command:
                found[role.decode().removesuffix("-dev")] = int(child)
    return found


def _one_mode(
    tmp: Path, name: str, flags: list[str], rate: float, seconds: float
) -> dict[str, Any]:
    data = tmp / name
    secrets = local_secrets(data)
    secret, api_key = secrets.webhook_secret, secrets.api_key
    count = int(rate * seconds * 1.2) + 400
    warm, load = data / "warm.jsonl", data / "load.jsonl"
    _requests(warm, secret, 300, 0)
    _requests(load, secret, count, 300)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        *CLI,
        "dev",
        "--data-dir",
        str(data),
        "--port",
        str(port),
        "--qstash-port",
        str(free_port()),
        "--salla-port",
        str(free_port()),
        "--embeddings-port",
        str(free_port()),
        *flags,
    ]
    env = clean_env(RAG_ENABLED="true")
    with process(command, url + "/healthz", env=env, log=data / "stack.log") as stack:
        loadgen(url, warm, mode="rate", rate=50, connections=4, duration=5)
        pids = _processes(stack.pid)
        before = {role: _cpu_seconds(pid) for role, pid in pids.items()}
        result = loadgen(
            url, load, mode="rate", rate=rate, connections=CONNECTIONS, duration=seconds
        )
        cpu = {role: round(_cpu_seconds(pid) - before[role], 1) for role, pid in pids.items()}
        counts = httpx.get(
            url + "/api/dev/settlement", headers={"Authorization": f"Bearer {api_key}"}
        ).json()
    return {
        "ack": result,
        "cpu_seconds": cpu,
        "backlog_at_end": int(counts["accepted"] - counts["settled"]),
        "accepted": int(counts["accepted"]),
    }


def measure() -> dict[str, Any]:
    rate = float(os.environ.get("BENCH_BUSY_RATE", "350"))
    seconds = float(os.environ.get("BENCH_BUSY_SECONDS", "20"))
    with workdir() as tmp:
        shared = _one_mode(tmp, "one-process", ["--no-intake-process"], rate, seconds)
        split = _one_mode(tmp, "intake-process", [], rate, seconds)
    return {
        "rate": rate,
        "seconds": seconds,
        "connections": CONNECTIONS,
        "one_process": shared,
        "intake_process": split,
        "target_p99_ms<=100": split["ack"]["p99_ms"] <= 100,
    }


def report(result: dict[str, Any]) -> str:
    lines = [
        f"webhook ack on a busy box ({result['rate']:.0f} req/s open loop, "
        f"{result['connections']} connections, {result['seconds']:.0f} s; half products "
        "to embed, half orders to load; every body new)"
    ]
    for key, label in (("one_process", "one process"), ("intake_process", "intake process")):
        mode = result[key]
        ack = mode["ack"]
        lines.append(
            f"  {label:<15} p50 {ack['p50_ms']} ms, p99 {ack['p99_ms']} ms, "
            f"max {ack['max_ms']} ms; {ack['rps']} req/s, non-200 {ack['non_200']}; backlog at end "
            f"{mode['backlog_at_end']} of {mode['accepted']}; CPU s {mode['cpu_seconds']}"
        )
    lines.append(
        f"  target p99 <= 100 ms with the intake process: "
        f"{'met' if result['target_p99_ms<=100'] else 'NOT met'}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    outcome = measure()
    print(report(outcome))
    print(json.dumps(outcome))
