"""Vercel has no migrator function: the deployment asks the live service to migrate.

The machine running `pulumi up` cannot reach ClickHouse (the allow list admits the service's
static egress IPs only), but it can reach the service's public URL. Once the new deployment is
live, this dynamic resource POSTs the migration request (the admin connection and the users'
passwords, as Pulumi secrets) to `/api/ops/migrate` with the service key; the service converges
the warehouse from inside the allow list, under the same lease as the Lambda migrator. A
non-2xx answer fails `pulumi up` with the service's reason. It runs again whenever the schema
version or the deployment changes (idempotent).
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

ATTEMPTS = 10  # a fresh deployment can take a few seconds to answer


class DeployedMigrationProvider(ResourceProvider):
    def _migrate(self, props: dict[str, Any]) -> dict[str, Any]:
        import json
        import time

        import httpx

        body = json.loads(props["request"])
        for attempt in range(ATTEMPTS):
            try:
                response = httpx.post(
                    props["url"],
                    json=body,
                    headers={"Authorization": f"Bearer {props['api_key']}"},
                    timeout=330,
                )
            except httpx.TransportError as error:
                if attempt == ATTEMPTS - 1:
                    raise RuntimeError(f"migration: {props['url']} unreachable: {error}") from None
                time.sleep(3)
                continue
            if response.status_code == 503 and attempt < ATTEMPTS - 1:
                time.sleep(3)
                continue
            if response.is_success:
                return dict(response.json())
            raise RuntimeError(f"migration refused ({response.status_code}): {response.text[:500]}")
        raise RuntimeError("migration: no answer")  # unreachable

    def create(self, props: dict[str, Any]) -> CreateResult:
        report = self._migrate(props)
        return CreateResult(id_="warehouse-migration", outs={**props, "report": report})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = ("url", "request", "api_key", "triggers")
        changed = [key for key in keys if olds.get(key) != news.get(key)]
        return DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs={**news, "report": self._migrate(news)})


class DeployedMigration(pulumi.dynamic.Resource):
    def __init__(
        self,
        name: str,
        *,
        url: pulumi.Input[str],
        request: pulumi.Input[str],
        api_key: pulumi.Input[str],
        triggers: dict[str, pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            DeployedMigrationProvider(),
            name,
            {
                "url": url,
                "request": pulumi.Output.secret(request),
                "api_key": pulumi.Output.secret(api_key),
                "triggers": triggers,
                "report": None,
            },
            opts,
        )
