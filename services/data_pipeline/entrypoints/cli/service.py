"""The running service's HTTP API as the CLI commands use it (sync jobs, RAG search)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from data_pipeline.entrypoints.cli.console import fail

UrlOption = Annotated[str, typer.Option(envvar="PIPELINE_PUBLIC_URL", help="Service base URL.")]
DataDirOption = Annotated[
    Path, typer.Option("--data-dir", help="Local stack data dir (for its API key).")
]
DEFAULT_URL = "http://127.0.0.1:8000"


def _api_key(data_dir: Path) -> str:
    if os.environ.get("PIPELINE_API_KEY"):
        return os.environ["PIPELINE_API_KEY"]
    from data_pipeline.devtools.local_stack import SECRETS_FILE, local_secrets

    if not (data_dir / SECRETS_FILE).exists():
        fail(f"no PIPELINE_API_KEY set and no local stack secrets in {data_dir}")
    return local_secrets(data_dir.resolve()).api_key


class ServiceClient:
    """The service's app-facing API with the service key, failing with one clear line."""

    @classmethod
    def connect(cls, url: str, data_dir: Path) -> ServiceClient:
        return cls(url, _api_key(data_dir))

    def __init__(self, url: str, api_key: str) -> None:
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=30,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            fail(f"could not reach {self._http.base_url}: {error}")
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text[:300]}
        if response.status_code >= 400:
            detail = body.get("detail", body) if isinstance(body, dict) else body
            fail(f"{response.status_code}: {detail}", code=1)
        return response.status_code, body
