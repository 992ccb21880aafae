"""Cold start of the built Lambda zip: a fresh interpreter importing the handler and answering
its first request, with and without the bytecode `make bundle` compiles in.

The zip is built as `make bundle` builds it but with this machine's wheels (`--platform host`:
the deployable one is linux/arm64), extracted, and run with only the bundle and the standard
library importable (`python -I -S bench/lambda_probe.py`), with a production configuration
(PIPELINE_ENVIRONMENT=production, Redis state, RAG off as deployed without it). Each sample is
a new process: spawn → import → a signed Salla webhook published to a real (local) QStash
server, the intake function's first request. "Without bytecode" is the same tree with every
__pycache__ removed, run with `-B` (write no bytecode), as the bundle was before: a read-only
/var/task compiles everything on each cold start. Both roles are measured: the intake function
(its first request is a signed Salla webhook published to a real, local QStash server) and the
worker (its first request is liveness: its deliveries need a warehouse, which cannot run here).

Differs from production: x86_64 here, arm64 on Lambda; Lambda's own init (runtime start,
extension, network attachment in the VPC) comes on top; QStash is on loopback here.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from bench.lambda_events import http_api_event
from bench.processes import CLI, clean_env, free_port, process

SAMPLES = 5
PROBE = Path(__file__).with_name("lambda_probe.py")
PUBLIC_URL = "https://abc123.execute-api.eu-central-1.amazonaws.com"
SECRET = "bench-webhook-secret-0123456789"


def _environment(qstash_url: str, directory: Path, role: str) -> dict[str, str]:
    from data_pipeline.adapters.token_cipher import TokenCipher

    return {
        "PATH": "/usr/bin:/bin",
        "PIPELINE_ENVIRONMENT": "production",
        "PIPELINE_ROLE": role,
        "PIPELINE_METRICS": "emf",
        "PIPELINE_PUBLIC_URL": PUBLIC_URL,
        "PIPELINE_API_KEY": "k" * 40,
        "SALLA_WEBHOOK_SECRET": SECRET,
        "QSTASH_URL": qstash_url,
        "QSTASH_TOKEN": "bench-qstash-token",
        "QSTASH_CURRENT_SIGNING_KEY": "sig_bench_current",
        "QSTASH_NEXT_SIGNING_KEY": "sig_bench_next",
        "CLICKHOUSE_URL": "https://pipeline_writer:pw@127.0.0.1:9/",
        "REDIS_URL": "redis://127.0.0.1:9/0",  # the intake path never opens it
        "TOKEN_ENCRYPTION_KEY": TokenCipher.generate_key(),
        "PIPELINE_DATA_DIR": str(directory),
        "SALLA_CLIENT_ID": "client-id",
        "SALLA_CLIENT_SECRET": "client-secret",
        "RAG_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
    }


def _sample(
    directory: Path, environment: dict[str, str], event: dict[str, Any], flags: list[str]
) -> dict[str, float]:
    started = time.perf_counter()
    finished = subprocess.run(
        [sys.executable, "-I", "-S", *flags, str(PROBE), str(directory)],
        input=json.dumps([event]),
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    wall = time.perf_counter() - started
    line = next(x for x in finished.stdout.splitlines() if x.startswith("PROBE "))
    result = json.loads(line.removeprefix("PROBE "))
    (first,) = result["invocations"]
    if first["status"] != 200:
        raise RuntimeError(f"first request answered {first['status']}: {first['body'][:200]}")
    return {"process": wall, "import": result["import_seconds"], "first_request": first["seconds"]}


def measure() -> dict[str, Any]:
    from data_pipeline.devtools.salla_samples import encode, sample_envelope
    from data_pipeline.domain.webhook_auth import expected_signature
    from qstash import QStash

    from infra import bundle
    from shared.topics import HEALTH_PATH, PROCESS_EVENT_PATH, WEBHOOK_PATH

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        built = bundle.build(root / "host.zip", platform="host")
        compiled, source_only = root / "compiled", root / "source-only"
        zipfile.ZipFile(built.path).extractall(compiled)
        shutil.copytree(compiled, source_only, ignore=shutil.ignore_patterns("__pycache__"))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        qstash_env = clean_env(
            QSTASH_TOKEN="bench-qstash-token",  # noqa: S106 - a local, throwaway credential
            QSTASH_CURRENT_SIGNING_KEY="sig_bench_current",
            QSTASH_NEXT_SIGNING_KEY="sig_bench_next",
        )
        command = [*CLI, "qstash-dev", "--port", str(port), "--data-dir", str(root), "--hold"]
        with process([*command, "--quiet"], url + "/healthz", env=qstash_env):
            QStash("bench-qstash-token", base_url=url).url_group.upsert_endpoints(
                "raw-events", [{"url": PUBLIC_URL + PROCESS_EVENT_PATH}]
            )
            samples: dict[str, list[dict[str, float]]] = {}
            for _ in range(SAMPLES):  # interleaved, so drift on a noisy machine hits all
                for role in ("intake", "worker"):
                    environment = _environment(url, root, role)
                    for variant, directory, flags in (
                        ("bytecode", compiled, []),
                        ("source only", source_only, ["-B"]),
                    ):
                        body = encode(sample_envelope("order.created"))  # a new event each time
                        event = (
                            http_api_event(
                                "POST",
                                WEBHOOK_PATH,
                                body.decode(),
                                {"x-salla-signature": expected_signature(body, SECRET.encode())},
                            )
                            if role == "intake"
                            else http_api_event("GET", HEALTH_PATH)
                        )
                        samples.setdefault(f"{role}, {variant}", []).append(
                            _sample(directory, environment, event, flags)
                        )
    medians = {
        variant: {key: statistics.median(s[key] for s in runs) for key in runs[0]}
        for variant, runs in samples.items()
    }
    return {
        "samples": SAMPLES,
        "bundle_zipped_mib": round(built.zipped_bytes / 2**20, 1),
        "bundle_unzipped_mib": round(built.unzipped_bytes / 2**20, 1),
        "median_seconds": medians,
        "ratio": medians["intake, source only"]["process"] / medians["intake, bytecode"]["process"],
    }


def report(result: dict[str, Any]) -> str:
    lines = [
        f"cold start of the built zip (import + first request in a fresh process), "
        f"median of {result['samples']} fresh processes; bundle "
        f"{result['bundle_zipped_mib']} MiB zipped, {result['bundle_unzipped_mib']} MiB unzipped"
    ]
    for variant, medians in result["median_seconds"].items():
        lines.append(
            f"  {variant:20s} process {medians['process']:.2f} s = import "
            f"{medians['import']:.2f} s + first request {medians['first_request'] * 1000:.0f} ms "
            "+ interpreter start"
        )
    lines.append(f"  intake without bytecode / with: {result['ratio']:.1f}x")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(measure()))
