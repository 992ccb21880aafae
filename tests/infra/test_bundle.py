"""The Lambda zip, built for real from the pinned requirements (wheels for linux/arm64)."""

import zipfile
from pathlib import Path

import pytest

from infra import bundle


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bundle")
    return bundle.build(directory / "a.zip"), bundle.build(directory / "b.zip")


def test_the_bundle_fits_lambda_and_carries_only_production_code(built):
    first, _ = built
    assert first.zipped_bytes < bundle.LAMBDA_ZIP_LIMIT
    assert first.unzipped_bytes < bundle.LAMBDA_UNZIPPED_LIMIT
    names = zipfile.ZipFile(first.path).namelist()
    top = {name.split("/")[0].split("-")[0].lower() for name in names}
    assert not top & set(bundle.FORBIDDEN), top & set(bundle.FORBIDDEN)
    assert "data_pipeline/entrypoints/lambda_handler.py" in names
    assert "shared/contract.py" in names
    assert not any(name.startswith("data_pipeline/devtools") for name in names)
    assert any(name.startswith("pydantic_core/") and "aarch64" in name for name in names)


def test_the_bundle_is_reproducible(built):
    first, second = built
    assert first.sha256 == second.sha256


def test_the_lock_covers_every_production_dependency():
    pinned = {
        line.split("==")[0].lower().replace("_", "-")
        for line in bundle.LOCK_FILE.read_text().splitlines()
        if line and not line.startswith("#")
    }
    for requirement in bundle.production_dependencies():
        name = requirement.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip().lower()
        if name in bundle.RUNTIME_PROVIDED:  # Lambda's runtime has it; never in the zip
            assert name not in pinned, name
            continue
        assert name.replace("_", "-") in pinned, name


def test_the_bundle_carries_bytecode_compiled_for_lambda(built):
    first, _ = built
    archive = zipfile.ZipFile(first.path)
    names = set(archive.namelist())
    for module in ("data_pipeline/entrypoints/lambda_handler", "pydantic/main", "fastapi/routing"):
        directory, _, stem = module.rpartition("/")
        pyc = f"{directory}/__pycache__/{stem}.cpython-312.pyc"
        assert pyc in names, pyc
    header = archive.read("data_pipeline/entrypoints/__pycache__/lambda_handler.cpython-312.pyc")
    assert int.from_bytes(header[4:8], "little") == 0b01  # hash-based, unchecked: no mtimes
    assert b"/var/task/data_pipeline/entrypoints/lambda_handler.py" in header


# -- the built zip's handler, end to end in a fresh interpreter ------------------------------------
# The deployable zip holds linux/arm64 wheels; this machine is not arm64, so the same lock and
# code are built with its own wheels (`--platform host`) and run with only the bundle and the
# standard library importable (`python -I -S`), as Lambda does. No ClickHouse server can run
# here: the worker's signed delivery reaches processing and answers 503 (QStash retries).
PUBLIC_URL = "https://abc123.execute-api.eu-central-1.amazonaws.com"
WEBHOOK_SECRET = "salla-webhook-secret-0123456789"


@pytest.fixture(scope="module")
def host_bundle(tmp_path_factory):
    directory = tmp_path_factory.mktemp("host-bundle")
    built = bundle.build(directory / "host.zip", platform="host")
    extracted = directory / "task"
    zipfile.ZipFile(built.path).extractall(extracted)
    return extracted


@pytest.fixture(scope="module")
def lambda_runtime(tmp_path_factory):
    """What Lambda's Python runtime has on its path besides the function's code (/var/runtime:
    the AWS SDK and its dependencies), from this environment's copies."""
    import importlib.util

    runtime = tmp_path_factory.mktemp("var-runtime")
    for name in ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six"):
        origin = Path(importlib.util.find_spec(name).origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (runtime / source.name).symlink_to(source)
    return runtime


def probe(directory, events, environment, runtime=None):
    import json
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "bench" / "lambda_probe.py"
    extra = [str(runtime)] if runtime else []
    finished = subprocess.run(
        [sys.executable, "-I", "-S", str(script), str(directory), *extra],
        input=json.dumps(events),
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line for line in finished.stdout.splitlines() if line.startswith("PROBE ")]
    assert finished.returncode == 0 and lines, finished.stdout[-2000:] + finished.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("PROBE "))


def production_environment(role, qstash_url, redis_url, tmp_path):
    from data_pipeline.adapters.token_cipher import TokenCipher

    from shared.dev_credentials import DEV_QSTASH_CURRENT_SIGNING_KEY, DEV_QSTASH_NEXT_SIGNING_KEY

    return {
        "PATH": "/usr/bin:/bin",
        "PIPELINE_ENVIRONMENT": "production",
        "PIPELINE_ROLE": role,
        "PIPELINE_METRICS": "emf",
        "PIPELINE_DEPLOYMENT": "test",
        "PIPELINE_PUBLIC_URL": PUBLIC_URL,
        "PIPELINE_API_KEY": "k" * 40,
        "SALLA_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "QSTASH_URL": qstash_url,
        # The local server's credentials are the public dev ones, which production refuses:
        # it runs with a token and keys of its own here.
        "QSTASH_TOKEN": "bundle-test-qstash-token",
        "QSTASH_CURRENT_SIGNING_KEY": DEV_QSTASH_CURRENT_SIGNING_KEY + "-prod",
        "QSTASH_NEXT_SIGNING_KEY": DEV_QSTASH_NEXT_SIGNING_KEY + "-prod",
        "QSTASH_TOPIC_PREFIX": "salla-pipeline-test-",
        "CLICKHOUSE_URL": "https://pipeline_writer:pw@127.0.0.1:9/",
        "REDIS_URL": redis_url,
        "TOKEN_ENCRYPTION_KEY": TokenCipher.generate_key(),
        "PIPELINE_DATA_DIR": str(tmp_path),
        "SALLA_CLIENT_ID": "client-id",
        "SALLA_CLIENT_SECRET": "client-secret",
        "RAG_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
        # Nothing listens there: an archive write fails fast, as the warehouse does here.
        "RAW_ARCHIVE_URL": "s3://salla-pipeline-test-raw-archive/raw",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-central-1",
    }


async def test_the_built_handler_acknowledges_webhooks_and_verifies_deliveries(
    host_bundle, lambda_runtime, redis_url, tmp_path
):
    import asyncio
    import json

    from data_pipeline.devtools.qstash_server.server import QStashDevConfig, QStashDevServer
    from data_pipeline.devtools.qstash_server.signing import sign_delivery
    from data_pipeline.devtools.salla_samples import encode, sample_envelope
    from data_pipeline.domain.webhook_auth import expected_signature
    from qstash import AsyncQStash

    from bench.lambda_events import function_url_event, http_api_event
    from shared.topics import PROCESS_EVENT_PATH, WEBHOOK_PATH

    environment = production_environment("intake", "", redis_url, tmp_path)
    config = QStashDevConfig(
        data_dir=tmp_path / "qstash",
        port=0,
        hold=True,  # keep what the handler publishes, to look at it
        token=environment["QSTASH_TOKEN"],
        current_signing_key=environment["QSTASH_CURRENT_SIGNING_KEY"],
        next_signing_key=environment["QSTASH_NEXT_SIGNING_KEY"],
    )
    server = await QStashDevServer(config).start()
    try:
        environment["QSTASH_URL"] = server.url
        client = AsyncQStash(config.token, base_url=server.url)
        await client.url_group.upsert_endpoints(
            "salla-pipeline-test-raw-events", [{"url": PUBLIC_URL + PROCESS_EVENT_PATH}]
        )
        first = encode(sample_envelope("order.created"))
        second = encode(sample_envelope("product.created"))

        def signed(body):
            return {"x-salla-signature": expected_signature(body, WEBHOOK_SECRET.encode())}

        events = [
            http_api_event("POST", WEBHOOK_PATH, first.decode(), signed(first)),  # cold
            http_api_event("POST", WEBHOOK_PATH, first.decode(), signed(first)),  # warm, again
            function_url_event("POST", WEBHOOK_PATH, second.decode(), signed(second)),
            http_api_event("POST", WEBHOOK_PATH, second.decode(), {"x-salla-signature": "0" * 64}),
        ]
        intake = await asyncio.to_thread(probe, host_bundle, events, environment, lambda_runtime)
        statuses = [invocation["status"] for invocation in intake["invocations"]]
        assert statuses == [200, 200, 200, 401]
        bodies = [json.loads(invocation["body"]) for invocation in intake["invocations"][:3]]
        assert [b["deduplicated"] for b in bodies] == [False, True, False]
        queued = sorted(m.body for m in server.state.dispatcher.all_messages())
        assert queued == sorted([first, second])  # what Salla sent, durably in QStash

        delivery = encode(sample_envelope("order.created"))
        url = PUBLIC_URL + PROCESS_EVENT_PATH
        key = environment["QSTASH_CURRENT_SIGNING_KEY"]
        headers = {"upstash-signature": sign_delivery(url, delivery, key)}
        worker = await asyncio.to_thread(
            probe,
            host_bundle,
            [
                http_api_event("POST", PROCESS_EVENT_PATH, delivery.decode(), headers),
                http_api_event("POST", PROCESS_EVENT_PATH, delivery.decode(), {}),
                http_api_event("POST", WEBHOOK_PATH, first.decode(), signed(first)),
            ],
            {**environment, "PIPELINE_ROLE": "worker"},
            lambda_runtime,
        )
        statuses = [invocation["status"] for invocation in worker["invocations"]]
        assert statuses == [503, 401, 404]  # no warehouse here; unsigned refused; not intake
        assert "warehouse" in worker["invocations"][0]["body"]
    finally:
        await server.stop()
