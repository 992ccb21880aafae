"""What publishing domain events costs the worker: `bench pipeline`'s worker throughput with and
without a subscriber to every entity event, side by side.

`python -m bench events`. Two local stacks (`salla-pipeline dev`), one plain and one with
`--subscribe <event>=<sink>` for every entity event, each fed the same kind of batch: N
`order.created` webhooks published straight to `raw-events`, timed until the worker settled
every one. With the subscriber, each settles only after its `order.created` event was derived
and accepted by QStash, and QStash then delivers every event to a sink in this process (200,
signature not checked here: the tests check it). Runs alternate plain / subscribed twice; the
ratio of the medians is the figure (target: at most 10 % lower). Nothing is added to the webhook
ack path: events are derived by the worker, after the load.

Differs from production: the sink, the QStash server, the service and chDB share 2 cores, so
QStash's deliveries of the events compete with the worker itself (in production they run on
Upstash and the subscriber's servers).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from data_pipeline.devtools.local_secrets import local_secrets

from bench.pipeline import worker_throughput
from bench.processes import CLI, clean_env, free_port, process, workdir
from shared.domain_events import EVENT_NAMES

EVENTS = 3000
ROUNDS = 2
# BENCH_EVENTS_ONLY=product.out_of_stock subscribes to an event these webhooks never cause: the
# worker then derives and keeps state for every order but publishes nothing (the state store's
# share of the cost, without QStash's deliveries competing for the cores).
SUBSCRIBED = [
    name
    for name in os.environ.get("BENCH_EVENTS_ONLY", "").split(",")
    or [n for n in EVENT_NAMES if not n.startswith("sync.")]
    if name
] or [n for n in EVENT_NAMES if not n.startswith("sync.")]


class _Sink(BaseHTTPRequestHandler):
    received = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).received += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _child(pid: int, name: str) -> int:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid and name.encode() in command:
            return int(stat.parent.name)
    raise RuntimeError(f"no {name} child of {pid}")


def _run(subscribe: str | None) -> dict[str, float]:
    """Settle rate, and CPU seconds of the service process (the worker) and of the local
    QStash server (which also delivers the events here; Upstash does in production)."""
    with workdir() as tmp:
        port, qport = free_port(), free_port()
        command = [*CLI, "dev", "--port", str(port), "--qstash-port", str(qport)]
        command += ["--salla-port", str(free_port()), "--data-dir", str(tmp)]
        if subscribe:
            for name in SUBSCRIBED:
                command += ["--subscribe", f"{name}={subscribe}/{name}"]
        base = f"http://127.0.0.1:{port}"
        with process(command, base + "/healthz", env=clean_env(), log=tmp / "stack.log") as dev:
            api_key = local_secrets(Path(tmp)).api_key
            qstash = _child(dev.pid, "qstash-dev")
            service_before, qstash_before = _cpu_seconds(dev.pid), _cpu_seconds(qstash)
            result = asyncio.run(
                worker_throughput(base, f"http://127.0.0.1:{qport}", api_key, EVENTS)
            )
            service = _cpu_seconds(dev.pid) - service_before
            queue = _cpu_seconds(qstash) - qstash_before
    return {
        "events_per_s": float(result["events_per_s"]),
        "service_cpu_ms_per_event": round(service * 1000 / EVENTS, 3),
        "qstash_cpu_ms_per_event": round(queue * 1000 / EVENTS, 3),
    }


def measure() -> dict[str, Any]:
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{sink.server_address[1]}"
    plain, subscribed = [], []
    try:
        for _ in range(ROUNDS):
            plain.append(_run(None))
            subscribed.append(_run(url))
    finally:
        sink.shutdown()

    def median(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    ratio = median(subscribed, "events_per_s") / median(plain, "events_per_s")
    worker_cpu = median(plain, "service_cpu_ms_per_event") / median(
        subscribed, "service_cpu_ms_per_event"
    )
    return {
        "events": EVENTS,
        "plain": plain,
        "subscribed": subscribed,
        "events_received": _Sink.received,
        "ratio": round(ratio, 3),
        "worker_cpu_ratio": round(worker_cpu, 3),
        "target_met": ratio >= 0.9,
    }


def report(result: dict[str, Any]) -> str:
    def rates(runs: list[dict[str, float]]) -> str:
        return ", ".join(
            f"{r['events_per_s']} events/s (service {r['service_cpu_ms_per_event']} ms, "
            f"QStash server {r['qstash_cpu_ms_per_event']} ms CPU per event)"
            for r in runs
        )

    return (
        f"domain events over {result['events']} order webhooks published to raw-events\n"
        f"  without a subscriber: {rates(result['plain'])}\n"
        f"  with {', '.join(SUBSCRIBED)} subscribed: {rates(result['subscribed'])}\n"
        f"  settle-rate ratio {result['ratio']} (target >= 0.9); the worker's own CPU per event, "
        f"ratio {result['worker_cpu_ratio']}; {result['events_received']} events reached the sink "
        "before the stacks stopped"
    )
