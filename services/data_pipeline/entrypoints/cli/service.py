"""The running service's HTTP API as the CLI commands use it (sync jobs, RAG search)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from data_pipeline.entrypoints.cli.console import errors, fail

UrlOption = Annotated[str, typer.Option(envvar="PIPELINE_PUBLIC_URL", help="Service base URL.")]
DataDirOption = Annotated[
    Path, typer.Option("--data-dir", help="Local stack data dir (for its API key).")
]
DEFAULT_URL = "http://127.0.0.1:8000"
# Answers that mean "not now" (rate limited; a gateway or the service briefly unavailable).
RETRYABLE = frozenset({429, 502, 503, 504})


def secret_from_env_or_stack(variable: str, field: str, data_dir: Path) -> str:
    """`variable` from the environment, else the local stack's generated value (`field` of its
    secrets file in `data_dir`), else one clear failure line."""
    if os.environ.get(variable):
        return os.environ[variable]
    from data_pipeline.devtools.local_secrets import SECRETS_FILE, local_secrets

    if not (data_dir / SECRETS_FILE).exists():
        fail(f"no {variable} set and no local stack secrets in {data_dir}")
    value: str = getattr(local_secrets(data_dir.resolve()), field)
    return value


class ServiceClient:
    """The service's app-facing API with the service key, failing with one clear line."""

    @classmethod
    def connect(cls, url: str, data_dir: Path) -> ServiceClient:
        return cls(url, secret_from_env_or_stack("PIPELINE_API_KEY", "api_key", data_dir))

    def __init__(self, url: str, api_key: str) -> None:
        import httpx  # here: every command would pay its 0.05 s import, most never call a service

        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=30,
        )

    def call(
        self, method: str, path: str, *, attempts: int = 1, **kwargs: Any
    ) -> tuple[int, dict[str, Any]]:
        """One request; with `attempts` > 1 (for requests that are safe to repeat), a busy or
        unreachable service is asked again after a pause: 1, 2, 4 … 30 s, or what its
        Retry-After says."""
        import httpx

        for attempt in range(1, attempts + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.HTTPError as error:
                if attempt == attempts:
                    fail(f"could not reach {self._http.base_url}: {error}")
                _pause(attempt, f"no answer ({type(error).__name__})", None)
                continue
            if response.status_code not in RETRYABLE or attempt == attempts:
                break
            _pause(attempt, f"answered {response.status_code}", response.headers.get("Retry-After"))
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text[:300]}
        if response.status_code >= 400:
            detail = body.get("detail", body) if isinstance(body, dict) else body
            fail(f"{response.status_code}: {detail}", code=1)
        return response.status_code, body


def _pause(attempt: int, why: str, retry_after: str | None) -> None:
    seconds = float(min(2 ** (attempt - 1), 30))
    if retry_after is not None and retry_after.strip().isdigit():
        seconds = min(float(retry_after.strip()), 60.0)
    errors.print(f"the service {why}; trying again in {seconds:g} s", highlight=False)
    time.sleep(seconds)
