"""The official qstash-py SDK's own test suite passes against `salla-pipeline qstash-dev`.

See tests/compat/qstash_sdk/README.md: the suite is vendored unmodified, its external target
(mock.httpstatus.io) is a local stand-in reached through the server's `--route`, and every test
passes except the ones `not-run.txt` lists with a reason.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from importlib.metadata import version
from pathlib import Path

import pytest
import pytest_asyncio
from data_pipeline.devtools.serving import bind_socket, start_server, wait_until_healthy

from shared.dev_credentials import (
    DEV_QSTASH_CURRENT_SIGNING_KEY,
    DEV_QSTASH_NEXT_SIGNING_KEY,
    DEV_QSTASH_TOKEN,
)
from tests.compat.httpstatus import create_app

SUITE = Path(__file__).parent / "qstash_sdk"
pytestmark = pytest.mark.slow


def not_run() -> list[str]:
    lines = (SUITE / "not-run.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def vendored_version() -> str:
    for line in (SUITE / "SOURCE").read_text().splitlines():
        if line.startswith("version: "):
            return line.removeprefix("version: ")
    raise AssertionError("tests/compat/qstash_sdk/SOURCE has no version line")


@pytest_asyncio.fixture
async def httpstatus():
    server = await start_server(create_app(), "127.0.0.1", 0, lifespan="off")
    yield server.url
    await server.stop()


@pytest_asyncio.fixture
async def qstash_dev(tmp_path, httpstatus):
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    process = subprocess.Popen(  # noqa: ASYNC220 - returns at once; waits happen in threads
        [
            sys.executable, "-m", "data_pipeline.entrypoints.cli", "qstash-dev",
            "--port", str(port), "--data-dir", str(tmp_path), "--quiet",
            "--route", f"https://mock.httpstatus.io={httpstatus}",
        ],
        env={**os.environ, "LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(wait_until_healthy, url + "/healthz", process, 60)
        yield url
    finally:
        # Waited for in a thread: the stand-in answering its last deliveries runs on this loop.
        process.terminate()
        assert await asyncio.to_thread(process.wait, 60) == 0


async def test_the_sdk_suite_passes_against_the_local_server(qstash_dev, tmp_path):
    assert version("qstash") == vendored_version(), (
        "the installed qstash SDK differs from the vendored tests: "
        "run scripts/vendor-qstash-sdk-tests (see tests/compat/qstash_sdk/README.md)"
    )
    report = tmp_path / "junit.xml"
    environment = {
        **os.environ,
        "QSTASH_URL": qstash_dev,
        "QSTASH_TOKEN": DEV_QSTASH_TOKEN,
        "QSTASH_CURRENT_SIGNING_KEY": DEV_QSTASH_CURRENT_SIGNING_KEY,
        "QSTASH_NEXT_SIGNING_KEY": DEV_QSTASH_NEXT_SIGNING_KEY,
    }
    environment.pop("OPENAI_API_KEY", None)
    command = [
        sys.executable, "-m", "pytest", "-c", "pytest.ini", "--rootdir", ".", "tests",
        "-q", "-p", "no:cacheprovider", "-p", "no:randomly", f"--junitxml={report}",
        *(argument for node in not_run() for argument in ("--deselect", node)),
    ]  # fmt: skip
    # A thread keeps this test's event loop (and the httpstatus stand-in on it) running.
    finished = await asyncio.to_thread(
        subprocess.run, command, cwd=SUITE, env=environment, capture_output=True, text=True
    )
    root = ElementTree.parse(report).getroot()  # noqa: S314 - the report pytest just wrote
    cases = root.iter("testcase")
    failed = [
        f"{case.get('classname')}::{case.get('name')}"
        for case in cases
        if case.find("failure") is not None or case.find("error") is not None
    ]
    assert not failed, f"SDK tests failed:\n{finished.stdout[-6000:]}"
    suite = root.find("testsuite")
    assert suite is not None
    ran = int(suite.get("tests", "0")) - int(suite.get("skipped", "0"))
    assert ran == 91 - len(not_run()), finished.stdout[-3000:]
    assert finished.returncode == 0, finished.stdout[-3000:]
