"""Historical sync on loopback: the Salla Admin API emulator next to the real-time harness.

The pipeline talks to the emulator over real HTTP (httpx) exactly as it would to Salla; the
emulator's generated store answers "what should this window contain?" independently of the
pipeline's code, so the tests compare the warehouse against it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from data_pipeline.devtools.qstash_server.signing import sign_delivery
from data_pipeline.devtools.salla_emulator.app import (
    EmulatorConfig,
    EmulatorState,
    create_emulator_app,
)
from data_pipeline.devtools.salla_emulator.client import EmulatorClient, authorization_event
from data_pipeline.devtools.serving import RunningServer, start_server

from shared.dev_credentials import DEV_QSTASH_CURRENT_SIGNING_KEY
from shared.topics import SYNC_STEP_PATH
from tests.support.harness import API_KEY, Harness

CLIENT_ID, CLIENT_SECRET = "test-salla-client", "test-salla-client-secret"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


async def start_emulator(
    rate_limit_per_minute: int = 60_000,
) -> tuple[RunningServer, EmulatorState]:
    state = EmulatorState(
        config=EmulatorConfig(
            rate_limit_per_minute=rate_limit_per_minute,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
        )
    )
    server = await start_server(create_emulator_app(state), "127.0.0.1", 0, lifespan="off")
    return server, state


def salla_settings(emulator_url: str) -> dict[str, Any]:
    return {
        "salla_api_base_url": emulator_url + "/admin/v2",
        "salla_oauth_token_url": emulator_url + "/oauth2/token",
        "salla_client_id": CLIENT_ID,
        "salla_client_secret": CLIENT_SECRET,
    }


@dataclass
class SyncStack:
    harness: Harness
    emulator: EmulatorClient
    state: EmulatorState

    @property
    def sync(self) -> Any:
        return self.harness.container.sync

    async def authorize(self, merchant_id: int, *, orders: int, seed: int = 1) -> dict[str, Any]:
        """Generate the merchant's store and send the app.store.authorize webhook for it."""
        tokens = await self.emulator.create_merchant(merchant_id, orders=orders, seed=seed)
        response = await self.harness.send(authorization_event(merchant_id, tokens))
        assert response.status_code == 200, response.text
        await self.harness.settle()
        return tokens

    async def initiate(self, merchant_id: Any, depth: str = "12m") -> httpx.Response:
        return await self.harness.http.post(
            self.harness.url + "/api/jobs/sync/initiate",
            json={"merchantId": merchant_id, "depth": depth},
            headers=AUTH,
        )

    async def status(self, **params: Any) -> httpx.Response:
        return await self.harness.http.get(
            self.harness.url + "/api/jobs/sync/status", params=params, headers=AUTH
        )

    async def start(self, merchant_id: int, depth: str = "12m") -> str:
        response = await self.initiate(str(merchant_id), depth)
        assert response.status_code == 202, response.text
        job_id: str = response.json()["jobId"]
        return job_id

    async def wait(self, job_id: str, timeout: float = 120, until: tuple[str, ...] = ()) -> dict:
        """Poll until the job ends (or reaches one of `until`); every answer is kept."""
        deadline = time.monotonic() + timeout
        ends = until or ("COMPLETED", "FAILED")
        while True:
            response = await self.status(jobId=job_id)
            assert response.status_code == 200, response.text
            job: dict[str, Any] = response.json()
            self.polled.append(job)
            if job["status"] in ends:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job did not finish in {timeout}s: {job}")
            await asyncio.sleep(0.05)

    async def truth(self, merchant_id: int, job: dict[str, Any]) -> dict[str, Any]:
        return await self.emulator.truth(merchant_id, job["window"]["from"], job["window"]["to"])

    async def warehouse(self, merchant_id: int) -> dict[str, Any]:
        db = self.harness.container.warehouse.database  # type: ignore[attr-defined]
        where = f"merchant_id = {int(merchant_id)}"
        [(orders, total)] = await self.harness.sql(
            f"SELECT count(), sum(total) FROM {db}.orders WHERE {where}"
        )
        [(lines, line_total)] = await self.harness.sql(
            f"SELECT count(), sum(line_total) FROM {db}.sales_facts WHERE {where}"
        )
        [(products,)] = await self.harness.sql(f"SELECT count() FROM {db}.products WHERE {where}")
        [(customers,)] = await self.harness.sql(f"SELECT count() FROM {db}.customers WHERE {where}")
        return {
            "orders": orders,
            "total": str(Decimal(total).quantize(Decimal("0.01"))),
            "line_items": lines,
            "line_total": str(Decimal(line_total).quantize(Decimal("0.01"))),
            "products": products,
            "customers": customers,
        }

    async def deliver_step(
        self, body: bytes, *, message_id: str = "msg_test", retried: int = 0
    ) -> httpx.Response:
        """A step delivered the way QStash would: signed for the exact URL and body."""
        url = self.harness.settings.delivery_url(SYNC_STEP_PATH)
        return await self.harness.http.post(
            url,
            content=body,
            headers={
                "Upstash-Signature": sign_delivery(url, body, DEV_QSTASH_CURRENT_SIGNING_KEY),
                "Upstash-Message-Id": message_id,
                "Upstash-Retried": str(retried),
                "Content-Type": "application/json",
            },
        )

    def __post_init__(self) -> None:
        self.polled: list[dict[str, Any]] = []


def expected(truth: dict[str, Any]) -> dict[str, Any]:
    """The emulator's truth in the shape `SyncStack.warehouse` reports."""
    return {
        "orders": truth["orders"],
        "total": str(Decimal(truth["total"]).quantize(Decimal("0.01"))),
        "line_items": truth["line_items"],
        "line_total": str(Decimal(truth["line_total"]).quantize(Decimal("0.01"))),
        "products": truth["products"],
        "customers": truth["customers"],
    }
