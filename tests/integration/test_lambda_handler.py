"""The Lambda entrypoint answers API Gateway HTTP API (payload 2.0) events through Mangum."""

import gc
import importlib
import json
import os
import subprocess
import sys

import pytest
from data_pipeline.adapters.token_cipher import TokenCipher

from bench.lambda_events import http_api_event
from shared.contract import env_var_names

HANDLER = "data_pipeline.entrypoints.lambda_handler"


def production_env(monkeypatch, tmp_path, redis_url, **changes):
    """The shape a deployed function has: Redis state, a ClickHouse server URL (none can run
    here, so nothing listens on it: the start-up and the paths that do not need the warehouse
    are what these tests exercise; see test_clickhouse_client_settings)."""
    for name in env_var_names():
        monkeypatch.delenv(name, raising=False)
    values = {
        "PIPELINE_ENVIRONMENT": "production",
        "PIPELINE_PUBLIC_URL": "https://abc123.execute-api.me-central-1.amazonaws.com",
        "PIPELINE_API_KEY": "k" * 32,
        "SALLA_WEBHOOK_SECRET": "s" * 32,
        "QSTASH_TOKEN": "qstash-production-token",
        "QSTASH_CURRENT_SIGNING_KEY": "sig_current",
        "QSTASH_NEXT_SIGNING_KEY": "sig_next",
        "CLICKHOUSE_URL": "https://pipeline_writer:pw@127.0.0.1:9/",
        "REDIS_URL": redis_url,
        "TOKEN_ENCRYPTION_KEY": TokenCipher.generate_key(),
        "PIPELINE_DATA_DIR": str(tmp_path),
        "SALLA_CLIENT_ID": "client-id",
        "SALLA_CLIENT_SECRET": "client-secret",
        "RAG_ENABLED": "false",
        "RAW_ARCHIVE_URL": "s3://salla-pipeline-test-raw-archive/raw",
        **changes,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def cold_start():
    sys.modules.pop(HANDLER, None)
    handler = importlib.import_module(HANDLER).handler
    # The cold start froze its objects out of the cyclic GC (an instance lives for them); this
    # process outlives it and its tests' garbage must stay collectable.
    assert gc.get_freeze_count() > 0
    gc.unfreeze()
    return handler


def test_operations_endpoints_are_closed_to_the_public_in_production(
    monkeypatch, tmp_path, redis_url
):
    production_env(monkeypatch, tmp_path, redis_url)
    handler = cold_start()
    health = handler(http_api_event("GET", "/healthz"), None)
    assert health["statusCode"] == 200 and json.loads(health["body"]) == {
        "status": "ok",
        "checks": {},
    }
    key = {"authorization": "Bearer " + "k" * 32}
    for path in ("/metrics", "/healthz?deep=true"):
        raw_path, _, query = path.partition("?")
        assert handler(http_api_event("GET", raw_path, query=query), None)["statusCode"] == 401
        answer = handler(http_api_event("GET", raw_path, headers=key, query=query), None)
        assert answer["statusCode"] in (200, 503), path
    deep = http_api_event("GET", "/healthz", headers=key, query="deep=true")
    checks = json.loads(handler(deep, None)["body"])["checks"]
    assert checks["state"] == "ok" and checks["warehouse"] != "ok"  # real Redis, no ClickHouse
    for path in ("/docs", "/openapi.json", "/redoc", "/api/dev/sql"):
        assert handler(http_api_event("GET", path), None)["statusCode"] == 404, path


def test_an_intake_function_serves_only_webhooks_and_a_worker_only_the_rest(
    monkeypatch, tmp_path, redis_url
):
    body = json.dumps({"event": "order.created", "merchant": 1, "data": {}})
    production_env(monkeypatch, tmp_path, redis_url, PIPELINE_ROLE="intake")
    intake = cold_start()
    assert intake(http_api_event("POST", "/api/webhooks/salla", body), None)["statusCode"] == 401
    assert (
        intake(http_api_event("POST", "/api/queue/process-event", "{}"), None)["statusCode"] == 404
    )
    production_env(monkeypatch, tmp_path, redis_url, PIPELINE_ROLE="worker")
    worker = cold_start()
    assert worker(http_api_event("POST", "/api/webhooks/salla", body), None)["statusCode"] == 404
    unsigned = worker(http_api_event("POST", "/api/queue/process-event", "{}"), None)
    assert unsigned["statusCode"] == 401  # the worker verifies QStash's signature first


def test_emf_metrics_are_written_after_each_invocation(monkeypatch, tmp_path, redis_url, capsys):
    production_env(
        monkeypatch, tmp_path, redis_url, PIPELINE_METRICS="emf", PIPELINE_DEPLOYMENT="prod"
    )
    handler = cold_start()
    capsys.readouterr()
    body = json.dumps({"event": "order.created", "merchant": 1, "data": {}})
    handler(http_api_event("POST", "/api/webhooks/salla", body), None)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    (received,) = [line for line in lines if "pipeline_webhooks_received_total" in line]
    assert received["pipeline_webhooks_received_total"] == 1 and received["result"] == "401"
    directive = received["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "SallaPipeline"
    assert directive["Dimensions"] == [["Deployment", "Role", "result"]]
    assert received["Deployment"] == "prod"
    handler(http_api_event("GET", "/healthz"), None)  # nothing new counted: nothing written
    assert '"pipeline_webhooks_received_total"' not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"CLICKHOUSE_URL": "chdb:///tmp/clickhouse"}, "CLICKHOUSE_URL must be a ClickHouse"),
        ({"REDIS_URL": ""}, "REDIS_URL"),
    ],
)
def test_a_production_cold_start_refuses_local_backends_in_one_line(
    tmp_path, redis_url, changes, named
):
    env = {"PATH": "/usr/bin:/bin", "PIPELINE_DATA_DIR": str(tmp_path)}
    with pytest.MonkeyPatch.context() as patch:
        production_env(patch, tmp_path, redis_url, **changes)
        env.update({name: value for name, value in os.environ.items() if name in env_var_names()})
    (line,) = refused_cold_start({name: value for name, value in env.items() if value != ""})
    assert named in line


def test_clickhouse_client_settings_for_a_server(monkeypatch):
    """No ClickHouse server can run here: what the client is asked for is what is checked."""
    from data_pipeline.adapters import clickhouse_warehouse

    opened = []
    monkeypatch.setattr(
        clickhouse_warehouse.clickhouse_connect, "get_client", lambda **kw: opened.append(kw)
    )
    warehouse = clickhouse_warehouse.ClickHouseWarehouse("https://u:p@ch.example:8443", "analytics")
    assert opened == []  # nothing connects until first use (cold starts stay cheap)
    warehouse._open()
    (settings,) = opened
    assert settings["compress"] == "lz4" and settings["connect_timeout"] == 5.0
    assert settings["autogenerate_session_id"] is False
    assert warehouse._insert_settings == {"async_insert": 1, "wait_for_async_insert": 1}


def test_reads_after_another_instances_write_ask_for_sequential_consistency(monkeypatch):
    """Through ClickHouse Cloud's load balancer a read can reach a replica that has not seen a
    confirmed insert; `select_sequential_consistency` makes it catch up first (knowledge base:
    "read consistency"). Ordinary reads do not pay for it; chDB (one node) never does."""
    from types import SimpleNamespace

    from data_pipeline.adapters import clickhouse_warehouse

    sent, commands = [], []

    class RecordingClient:
        def query(self, sql, parameters=None, settings=None):
            if "system.settings" in sql:  # the embedded session asks which reader settings exist
                return SimpleNamespace(result_rows=[(name,) for name in parameters["names"]])
            sent.append(settings)
            return SimpleNamespace(column_names=("x",), result_rows=[(1,)])

        def command(self, sql):
            commands.append(sql)

    monkeypatch.setattr(
        clickhouse_warehouse.clickhouse_connect, "get_client", lambda **kw: RecordingClient()
    )
    server = clickhouse_warehouse.ClickHouseWarehouse("https://u:p@ch.example:8443", "analytics")
    server.query("SELECT 1", read_after_write=True)
    server.query("SELECT 1")
    embedded = clickhouse_warehouse.ClickHouseWarehouse("chdb:///tmp/x", "analytics")
    embedded.query("SELECT 1", read_after_write=True)
    assert sent == [
        {"readonly": 2, "select_sequential_consistency": 1},
        {"readonly": 2},
        {"readonly": 2},
    ]
    assert commands == ["SET analyzer_inline_views = 1"]  # the reader's settings, as a session


def refused_cold_start(env):
    """Import the handler in a fresh process that must refuse to start; its output lines."""
    result = subprocess.run(
        [sys.executable, "-c", f"import {HANDLER}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


def test_a_cold_start_with_bad_configuration_fails_with_one_line(tmp_path):
    (line,) = refused_cold_start({"PATH": "/usr/bin:/bin", "CLICKHOUSE_URL": "ftp://nowhere"})
    assert "CLICKHOUSE_URL" in line and "QSTASH_TOKEN is required" in line
