"""The Lambda entrypoint answers API Gateway HTTP API (payload 2.0) events through Mangum."""

import importlib
import json
import subprocess
import sys

from data_pipeline.adapters.token_cipher import TokenCipher

from shared.contract import env_var_names

HANDLER = "data_pipeline.entrypoints.lambda_handler"


def http_api_event(method: str, path: str, body: str = "", headers: dict | None = None) -> dict:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", **(headers or {})},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example.com",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.1",
                "userAgent": "Salla",
            },
            "requestId": "id",
            "routeKey": "$default",
            "stage": "$default",
            "time": "22/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1795341600000,
        },
        "body": body,
        "isBase64Encoded": False,
    }


def production_env(monkeypatch, tmp_path, chdb_path):
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
        "CLICKHOUSE_URL": f"chdb://{chdb_path}",
        "TOKEN_ENCRYPTION_KEY": TokenCipher.generate_key(),
        "PIPELINE_DATA_DIR": str(tmp_path),
        "SALLA_CLIENT_ID": "client-id",
        "SALLA_CLIENT_SECRET": "client-secret",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_health_and_unsigned_webhook_through_mangum(monkeypatch, tmp_path, chdb_path):
    production_env(monkeypatch, tmp_path, chdb_path)
    sys.modules.pop(HANDLER, None)
    handler = importlib.import_module(HANDLER).handler
    health = handler(http_api_event("GET", "/healthz"), None)
    assert health["statusCode"] == 200 and json.loads(health["body"]) == {
        "status": "ok",
        "checks": {},
    }
    body = json.dumps({"event": "order.created", "merchant": 1, "data": {}})
    webhook = handler(http_api_event("POST", "/api/webhooks/salla", body), None)
    assert webhook["statusCode"] == 401
    # Production hides the local-only SQL endpoint.
    assert handler(http_api_event("POST", "/api/dev/sql", "{}"), None)["statusCode"] in (404, 405)


def test_a_cold_start_with_bad_configuration_fails_with_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "CLICKHOUSE_URL": "ftp://nowhere"}
    result = subprocess.run(
        [sys.executable, "-c", f"import {HANDLER}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert (
        len(lines) == 1 and "CLICKHOUSE_URL" in lines[0] and "QSTASH_TOKEN is required" in lines[0]
    )
