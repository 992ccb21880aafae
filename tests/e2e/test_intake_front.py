"""`salla-pipeline dev` serves Salla's webhooks from a front process of its own, at normal CPU
priority, and proxies every other path to the worker process, which runs below it (as
production's API gateway routes the webhook to the intake function and the rest to the worker).
Run as a user runs it: a subprocess, real local servers, signed webhooks over HTTP."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from data_pipeline.devtools.local_stack import EMBEDDINGS_NICENESS, WORKER_NICENESS
from data_pipeline.devtools.salla_samples import encode, sample_envelope
from data_pipeline.domain.webhook_auth import expected_signature
from prometheus_client.parser import text_string_to_metric_families

from shared.topics import WEBHOOK_PATH
from tests.support.cli import clean_env, start_cli, wait_healthy
from tests.support.redis_server import free_port


def _children(pid):
    found = {}
    listed = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    for child in listed.stdout.split():
        command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        for role in (b"intake-dev", b"qstash-dev", b"embeddings-dev", b"salla-emulator"):
            if role in command:
                found[role.decode()] = int(child)
    return found


def _priority(pid):
    return os.getpriority(os.PRIO_PROCESS, pid)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    data = tmp_path_factory.mktemp("front")
    port = free_port()
    process = start_cli(
        "dev",
        "--port",
        str(port),
        "--qstash-port",
        str(free_port()),
        "--salla-port",
        str(free_port()),
        "--embeddings-port",
        str(free_port()),
        "--data-dir",
        str(data),
        env=clean_env(RAG_ENABLED="true"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, process, timeout=120)
        secrets = json.loads((data / "local-secrets.json").read_text())
        yield base, process, secrets
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, output[-3000:]
        assert "Traceback" not in output, output[-3000:]


def _send(base, secret, body, **headers):
    signed = {
        "Content-Type": "application/json",
        "X-Salla-Signature": expected_signature(body, secret.encode()),
    }
    return httpx.post(base + WEBHOOK_PATH, content=body, headers=signed | headers, timeout=30)


def _api(base, secrets, method, path, **kwargs):
    headers = {"Authorization": f"Bearer {secrets['api_key']}"}
    return httpx.request(method, base + path, headers=headers, timeout=30, **kwargs)


def test_the_front_and_queue_keep_normal_priority_while_worker_and_embeddings_run_below(stack):
    _, process, _ = stack
    children = _children(process.pid)
    ours = _priority(os.getpid())
    assert _priority(children["intake-dev"]) == ours
    assert _priority(children["qstash-dev"]) == ours
    assert _priority(process.pid) == min(19, ours + WORKER_NICENESS)  # the worker
    # Every thread of the worker (chDB's, the executor's), not only its main one; except
    # ClickHouse's MemoryWorker, which sets its own priority (-20 where it may: as root).
    threads = Path(f"/proc/{process.pid}/task")
    for thread in threads.iterdir():
        if (thread / "comm").read_text().strip() != "MemoryWorker":
            assert _priority(int(thread.name)) == min(19, ours + WORKER_NICENESS), thread
    if "embeddings-dev" in children:  # the local model is installed (the `local` extra)
        expected = min(19, ours + WORKER_NICENESS + EMBEDDINGS_NICENESS)
        assert _priority(children["embeddings-dev"]) == expected


def test_webhooks_answered_by_the_front_load_through_the_worker_exactly_once(stack):
    base, _, secrets = stack
    body = encode(sample_envelope("order.created", merchant_id=4_400_001))
    order_id = json.loads(body)["data"]["id"]
    for _ in range(3):  # Salla retries: one event
        answer = _send(base, secrets["webhook_secret"], body)
        assert answer.status_code == 200, answer.text
    query = f"SELECT count() FROM analytics.orders WHERE order_id = {order_id}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = _api(base, secrets, "POST", "/api/dev/sql", json={"sql": query}).json()["rows"]
        if rows == [[1]]:
            break
        time.sleep(0.2)
    assert rows == [[1]]
    # The counts are split between the processes (the front accepts, the worker loads) and
    # merged in the answers: accepted, and settled once everything is loaded.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        counts = _api(base, secrets, "GET", "/api/dev/settlement").json()
        if counts["accepted"] >= 1 and counts["settled"] == counts["accepted"]:
            break
        time.sleep(0.2)
    assert counts["accepted"] >= 1 and counts["settled"] == counts["accepted"], counts
    assert counts["outcomes"]["loaded"] >= 1 and counts["outcomes"]["duplicate"] >= 2, counts
    families = {
        f.name: f for f in text_string_to_metric_families(httpx.get(base + "/metrics").text)
    }
    accepted = families["pipeline_webhooks_accepted"].samples  # counted by the front
    assert sum(s.value for s in accepted if s.name.endswith("_total")) == counts["accepted"]
    settled = families["pipeline_events_settled"].samples  # by both
    loaded = [s for s in settled if s.labels.get("outcome") == "loaded"]
    assert sum(s.value for s in loaded if s.name.endswith("_total")) >= 1


def test_the_front_refuses_bad_webhooks_itself(stack):
    base, _, secrets = stack
    body = encode(sample_envelope("order.created", merchant_id=4_400_002))
    forged = _send(base, "not-the-secret", body)
    assert forged.status_code == 401
    assert _send(base, secrets["webhook_secret"], b"{not json").status_code == 400
    huge = b'{"event":"order.created","merchant":1,"data":{"x":"' + b"a" * (1 << 20) + b'"}}'
    assert _send(base, secrets["webhook_secret"], huge).status_code == 413

    def chunks():  # no Content-Length: refused once the stream passes the limit
        for _ in range(20):
            yield b"a" * 65536

    streamed = httpx.post(
        base + WEBHOOK_PATH,
        content=chunks(),
        headers={"X-Salla-Signature": "0" * 64},
        timeout=30,
    )
    assert streamed.status_code == 413
    assert httpx.get(base + WEBHOOK_PATH).status_code == 405  # the worker's answer, proxied


def test_other_paths_are_proxied_with_their_status_query_and_body(stack):
    base, _, secrets = stack
    assert httpx.get(base + "/no/such/path").status_code == 404
    deep = httpx.get(base + "/healthz", params={"deep": "true"}, timeout=30).json()
    assert deep["checks"]["warehouse"] == "ok"  # the query string reached the worker
    refused = _api(base, secrets, "POST", "/api/dev/sql", json={"sql": "DROP TABLE x"})
    assert refused.status_code == 400 and "detail" in refused.json()
    unauthorized = httpx.get(base + "/api/dev/settlement")
    assert unauthorized.status_code == 401  # merged answers keep the worker's refusal
    docs = httpx.get(base + "/openapi.json").json()
    assert WEBHOOK_PATH in docs["paths"]  # the worker documents the webhook the front serves
