"""The `salla-pipeline` command line, run as a subprocess against real local servers."""

import json
import signal

import httpx
import pytest
from data_pipeline.devtools.salla_samples import demo_store, encode
from qstash import QStash

from shared.dev_credentials import DEV_QSTASH_TOKEN
from shared.topics import RAW_EVENTS_TOPIC
from tests.support.cli import clean_env, run_cli, start_cli, wait_healthy
from tests.support.redis_server import free_port


def sql(base, api_key, query):
    response = httpx.post(
        base + "/api/dev/sql",
        json={"sql": query},
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["rows"]


def stop(process, timeout=60):
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


@pytest.mark.slow
def test_dev_stack_stops_cleanly_and_keeps_pending_deliveries_across_a_restart(tmp_path):
    port, qport = free_port(), free_port()
    base, args = (
        f"http://127.0.0.1:{port}",
        (
            "dev",
            "--port",
            str(port),
            "--qstash-port",
            str(qport),
            "--data-dir",
            str(tmp_path),
            "--salla-port",
            str(free_port()),
        ),
    )
    process = start_cli(*args)
    wait_healthy(base, process)
    sent = run_cli("webhook", "send", "order.created", "--url", base, "--data-dir", str(tmp_path))
    assert sent.returncode == 0 and '"accepted"' in sent.stdout

    # Hand the queue events that are due only after the stack has stopped.
    store = demo_store(seed=21, orders=4)
    queue = QStash(DEV_QSTASH_TOKEN, base_url=f"http://127.0.0.1:{qport}")
    for event in store.events:
        queue.message.publish(url_group=RAW_EVENTS_TOPIC, body=encode(event), delay="4s")
    code, output = stop(process)
    assert code == 0, output
    assert "stopped cleanly" in output and "Traceback" not in output
    # The banner shows what QStash holds for the stack.
    assert all(row in output for row in ("schedules", "queues", "flow control")), output

    restarted = start_cli(*args)
    try:
        wait_healthy(base, restarted)
        api_key = json.loads((tmp_path / "local-secrets.json").read_text())["api_key"]
        expected = 1 + len(store.truth.live_orders())
        for _ in range(150):
            if sql(base, api_key, "SELECT count() FROM analytics.orders") == [[expected]]:
                break
            __import__("time").sleep(0.1)
        assert sql(base, api_key, "SELECT count() FROM analytics.orders") == [[expected]]
        listed = run_cli("dlq", "list", "--url", f"http://127.0.0.1:{qport}")
        assert listed.returncode == 0 and "Dead-letter queue (0)" in listed.stdout
    finally:
        code, output = stop(restarted)
    assert code == 0, output


def test_bad_configuration_fails_at_start_with_one_line(tmp_path):
    result = run_cli(
        "dev",
        "--data-dir",
        str(tmp_path),
        "--port",
        str(free_port()),
        env=clean_env(CLICKHOUSE_URL="ftp://warehouse"),
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "CLICKHOUSE_URL" in lines[0] and "scheme" in lines[0]


def test_migrate_is_idempotent(tmp_path):
    first = run_cli("migrate", "--data-dir", str(tmp_path))
    second = run_cli("migrate", "--data-dir", str(tmp_path))
    assert first.returncode == 0 and "applied 0002" in first.stdout
    assert second.returncode == 0 and "already current" in second.stdout


def test_webhook_send_explains_a_bad_file(tmp_path):
    bad = tmp_path / "payload.json"
    bad.write_text("{not json")
    result = run_cli(
        "webhook",
        "send",
        "order.created",
        "--file",
        str(bad),
        env=clean_env(SALLA_WEBHOOK_SECRET="x" * 20),
    )
    assert result.returncode == 2 and "cannot read" in result.stderr
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"event": "product.created", "merchant": 1, "data": {}}))
    result = run_cli(
        "webhook",
        "send",
        "order.created",
        "--file",
        str(other),
        env=clean_env(SALLA_WEBHOOK_SECRET="x" * 20),
    )
    assert result.returncode == 2 and "not 'order.created'" in result.stderr


def test_webhook_send_reports_an_unreachable_stack(tmp_path):
    result = run_cli(
        "webhook",
        "send",
        "order.created",
        "--url",
        f"http://127.0.0.1:{free_port()}",
        env=clean_env(SALLA_WEBHOOK_SECRET="x" * 20),
    )
    assert result.returncode == 2 and "could not reach" in result.stderr


def test_dlq_replay_needs_an_id_or_all():
    result = run_cli("dlq", "replay")
    assert result.returncode == 2 and "--all" in result.stderr


def test_replay_rebuilds_from_the_archive_and_reports(tmp_path):
    assert run_cli("migrate", "--data-dir", str(tmp_path)).returncode == 0
    result = run_cli("replay", "--data-dir", str(tmp_path))
    assert result.returncode == 0 and "replayed 0 events" in result.stdout


@pytest.mark.slow
def test_dlq_list_and_replay_a_poison_webhook(tmp_path):
    port, qport = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_cli(
        "dev",
        "--port",
        str(port),
        "--qstash-port",
        str(qport),
        "--data-dir",
        str(tmp_path),
        "--salla-port",
        str(free_port()),
    )
    try:
        wait_healthy(base, process)
        poison = {"id": 77, "status": {"slug": "x"}, "amounts": {"total": {"amount": "1,2"}}}
        payload = tmp_path / "poison.json"
        payload.write_text(json.dumps(poison))
        sent = run_cli(
            "webhook",
            "send",
            "order.created",
            "--file",
            str(payload),
            "--url",
            base,
            "--data-dir",
            str(tmp_path),
        )
        assert sent.returncode == 0
        queue = f"http://127.0.0.1:{qport}"
        for _ in range(100):
            listed = run_cli("dlq", "list", "--url", queue, env=clean_env(COLUMNS="200"))
            if "Dead-letter queue (1)" in listed.stdout:
                break
            __import__("time").sleep(0.1)
        assert "Dead-letter queue (1)" in listed.stdout and "order.created" in listed.stdout
        replayed = run_cli("dlq", "replay", "--all", "--url", queue)
        assert replayed.returncode == 0 and "replayed" in replayed.stdout
    finally:
        code, output = stop(process)
    assert code == 0, output


@pytest.mark.slow
def test_sync_start_watch_status_and_resume_against_the_dev_stack(tmp_path):
    """`salla-pipeline dev` runs the Salla emulator too; the sync commands drive a backfill."""
    import asyncio

    from data_pipeline.devtools.local_secrets import local_secrets
    from data_pipeline.devtools.salla_emulator.client import EmulatorClient, authorization_event
    from data_pipeline.domain.webhook_auth import expected_signature

    port, qport, sport = free_port(), free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_cli(
        "dev",
        "--port",
        str(port),
        "--qstash-port",
        str(qport),
        "--salla-port",
        str(sport),
        "--data-dir",
        str(tmp_path),
    )
    try:
        wait_healthy(base, process)

        async def authorize() -> None:
            emulator = EmulatorClient(f"http://127.0.0.1:{sport}")
            await emulator.configure(rate_limit_per_minute=6000)
            tokens = await emulator.create_merchant(4242, orders=200, seed=5)
            await emulator.aclose()
            body = authorization_event(4242, tokens)
            secret = local_secrets(tmp_path.resolve()).webhook_secret
            async with httpx.AsyncClient() as http:
                answer = await http.post(
                    base + "/api/webhooks/salla",
                    content=body,
                    headers={"X-Salla-Signature": expected_signature(body, secret.encode())},
                )
            assert answer.status_code == 200

        asyncio.run(authorize())
        common = ("--url", base, "--data-dir", str(tmp_path))
        for _ in range(100):  # the authorization goes through the queue
            started = run_cli(
                "sync", "start", "--merchant", "4242", "--depth", "12m", "--watch", *common
            )
            if "has not authorized" not in started.stderr:
                break
            __import__("time").sleep(0.1)
        assert started.returncode == 0, started.stdout + started.stderr
        assert "started" in started.stdout and "COMPLETED" in started.stdout
        job_id = started.stdout.split("job ", 1)[1].split()[0]
        shown = run_cli("sync", "status", "--merchant", "4242", *common)
        assert shown.returncode == 0 and job_id in shown.stdout and "COMPLETED" in shown.stdout
        resumed = run_cli("sync", "resume", job_id, *common)
        assert resumed.returncode == 1 and "has completed" in resumed.stderr
        bad = run_cli("sync", "start", "--merchant", "4242", "--depth", "6m", *common)
        assert bad.returncode == 2 and "--depth must be 12m or 24m" in bad.stderr
        neither = run_cli("sync", "status", *common)
        assert neither.returncode == 2 and "exactly one of" in neither.stderr
    finally:
        code, output = stop(process)
    assert code == 0, output


def test_sync_commands_explain_an_unreachable_service(tmp_path):
    result = run_cli(
        "sync",
        "status",
        "--merchant",
        "1",
        "--url",
        f"http://127.0.0.1:{free_port()}",
        env=clean_env(PIPELINE_API_KEY="k" * 20),
    )
    assert result.returncode == 2 and "could not reach" in result.stderr
    no_key = run_cli("sync", "status", "--merchant", "1", "--data-dir", str(tmp_path))
    assert no_key.returncode == 2 and "PIPELINE_API_KEY" in no_key.stderr
