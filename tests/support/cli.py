"""Run the `salla-pipeline` console script as a user would, in a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from data_pipeline.devtools.serving import wait_until_healthy

from shared.contract import env_var_names

SCRIPT = str(Path(sys.executable).parent / "salla-pipeline")


def clean_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in env_var_names()}
    env.update(overrides)
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, *args],
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [SCRIPT, *args],
        env=env or clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_healthy(url: str, process: subprocess.Popen[str], timeout: float = 60) -> None:
    wait_until_healthy(url + "/healthz", process, timeout)
