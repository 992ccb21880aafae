"""Historical sync end to end: the service, the local QStash server (real SDK, real signatures),
chDB and the Salla Admin API emulator, all over loopback HTTP.

Every test compares the warehouse with the emulator's own record of the store, so "nothing lost,
nothing doubled" is checked against data the pipeline's code did not compute.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Any

import orjson
import pytest
from data_pipeline.adapters.warehouse import LoadBatch
from data_pipeline.devtools.salla_emulator.app import new_tokens
from data_pipeline.devtools.salla_emulator.client import authorization_event
from data_pipeline.devtools.salla_samples import RIYADH, js_date
from data_pipeline.domain.model import OrderVersion
from data_pipeline.domain.sync import months_back
from data_pipeline.errors import TransientError

from tests.support.salla import AUTH, SyncStack, expected

MERCHANT = 7_000_001


@pytest.mark.parametrize(("depth", "months"), [("12m", 12), ("24m", 24)])
async def test_a_backfill_loads_exactly_the_orders_created_in_the_window(
    sync_stack: SyncStack, depth: str, months: int
) -> None:
    await sync_stack.authorize(MERCHANT, orders=600, seed=3)
    job = await sync_stack.wait(await sync_stack.start(MERCHANT, depth))

    assert job["status"] == "COMPLETED" and job["progress"] == 100 and job["error"] is None
    today = datetime.now(RIYADH).date()
    assert job["window"] == {
        "from": months_back(today, months).isoformat(),
        "to": today.isoformat(),
    }
    truth = await sync_stack.truth(MERCHANT, job)
    assert truth["orders"] > 150  # the store has 30 months: the window excludes a real share
    assert await sync_stack.warehouse(MERCHANT) == expected(truth)
    assert job["counts"] == {
        "products": truth["products"],
        "customers": truth["customers"],
        "orders": truth["orders"],
    }
    # One detail call per order, a few list pages: every request the emulator saw is counted.
    stats = (await sync_stack.emulator.stats())["counts"]
    assert stats["requests:orders.detail"] == truth["orders"] == job["requests"]["orders.detail"]
    assert stats["requests:orders.list"] == job["requests"]["orders.list"]
    assert stats["requests:orders.list"] <= truth["orders"] // 60 + 3


async def test_429_storms_5xx_bursts_timeouts_and_empty_pages_lose_and_double_nothing(
    sync_stack: SyncStack,
) -> None:
    await sync_stack.authorize(MERCHANT, orders=600, seed=4)
    emulator = sync_stack.emulator
    sync_stack.harness.container.salla.timeout = 0.5
    await emulator.fault(429, count=25, path="/admin/v2/orders/", retry_after=1)  # detail storm
    await emulator.fault(503, count=6, path="/admin/v2/")  # a burst on every endpoint
    await emulator.configure(
        error_rate=0.05, timeout_rate=0.01, hang_seconds=2, empty_page_rate=0.2, seed=5
    )

    job = await sync_stack.wait(await sync_stack.start(MERCHANT, "24m"), timeout=240)

    assert job["status"] == "COMPLETED", job
    truth = await sync_stack.truth(MERCHANT, job)
    assert await sync_stack.warehouse(MERCHANT) == expected(truth)
    assert job["counts"]["orders"] == truth["orders"]
    stats = (await emulator.stats())["counts"]
    assert stats["429"] >= 25 and job["requests"]["throttled"] >= 1
    assert job["requests"]["failed"] >= 6 and stats.get("empty_pages", 0) >= 1


SKIPPED = ("stale", "busy")  # a copy that ran nothing


async def _next_step(stack: SyncStack, timeout: float = 10) -> Any:
    """The one step message waiting in the (paused) queue, taken out of it."""
    dispatcher = stack.harness.dispatcher
    deadline = time.monotonic() + timeout
    while True:
        steps = [m for m in dispatcher.all_messages() if m.url.endswith("/sync-step")]
        if steps:
            # Besides the next step, only delayed copies of steps found busy (stale by now).
            newest = max(json.loads(m.body)["seq"] for m in steps)
            current = [m for m in steps if json.loads(m.body)["seq"] == newest]
            assert len(current) == 1, "a step chain never forks"
            for message in steps:
                dispatcher.cancel(message.message_id)
            return current[0]
        if time.monotonic() > deadline:
            raise AssertionError("no step was published")
        await asyncio.sleep(0.01)


async def test_a_step_delivered_twice_at_once_and_again_later_runs_once(
    sync_stack: SyncStack,
) -> None:
    await sync_stack.authorize(MERCHANT, orders=400, seed=6)
    sync_stack.harness.dispatcher.pause()
    job_id = await sync_stack.start(MERCHANT, "12m")
    answers: list[tuple[int, str]] = []
    while True:
        step = await _next_step(sync_stack)
        copies = await asyncio.gather(
            sync_stack.deliver_step(step.body, message_id=step.message_id),
            sync_stack.deliver_step(step.body, message_id=step.message_id + "-copy"),
        )
        late = await sync_stack.deliver_step(step.body, message_id=step.message_id + "-late")
        ran = [r for r in copies if r.status_code == 200 and r.json()["outcome"] not in SKIPPED]
        assert len(ran) == 1, [(r.status_code, r.text) for r in copies]
        # The other copy found the step busy (a copy comes back later) or already done.
        other = next(r for r in copies if r is not ran[0])
        assert other.json()["outcome"] in ("busy", "stale", "republished"), other.text
        answers.append((late.status_code, late.json()["outcome"]))
        if ran[0].json()["outcome"] == "completed":
            break
    job = (await sync_stack.status(jobId=job_id)).json()
    assert job["status"] == "COMPLETED"
    # Every late copy found its step done; it only re-published the next one (deduplicated).
    assert {outcome for _, outcome in answers} <= {"republished", "stale"}
    truth = await sync_stack.truth(MERCHANT, job)
    assert await sync_stack.warehouse(MERCHANT) == expected(truth)
    stats = (await sync_stack.emulator.stats())["counts"]
    assert stats["requests:orders.detail"] == truth["orders"]  # no copy fetched anything twice


async def test_a_busy_copy_on_its_last_retry_never_fails_the_running_job(
    sync_stack: SyncStack,
) -> None:
    """QStash's final retry of a step can find another copy still running it (the lease is
    held). That copy carries the job on; the duplicate must neither fail the job nor
    dead-letter."""
    await sync_stack.authorize(MERCHANT, orders=200, seed=8)
    harness = sync_stack.harness
    final = harness.settings.qstash_retries
    harness.dispatcher.pause()
    job_id = await sync_stack.start(MERCHANT, "12m")
    busy = 0
    while True:
        step = await _next_step(sync_stack)
        running, last_retry = await asyncio.gather(
            sync_stack.deliver_step(step.body, message_id=step.message_id),
            sync_stack.deliver_step(step.body, message_id=step.message_id + "-b", retried=final),
        )
        assert running.status_code == last_retry.status_code == 200, last_retry.text
        busy += last_retry.json()["outcome"] == "busy"
        outcomes = {running.json()["outcome"], last_retry.json()["outcome"]}
        if "completed" in outcomes:
            break
    job = (await sync_stack.status(jobId=job_id)).json()
    assert job["status"] == "COMPLETED", job
    assert busy > 0  # the race the test is named after happened
    truth = await sync_stack.truth(MERCHANT, job)
    assert await sync_stack.warehouse(MERCHANT) == expected(truth)


async def test_a_step_whose_lease_a_killed_instance_holds_comes_back_and_completes(
    sync_stack: SyncStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An instance killed mid-step keeps the step's lease until it expires. Deliveries that
    find it held must not burn their retries against it (the job would stop for good): each
    publishes a copy for later and is done; a copy after the expiry runs the step."""
    from data_pipeline.service_layer import sync as sync_module

    monkeypatch.setattr(sync_module, "BUSY_RETRY_SECONDS", 1)
    await sync_stack.authorize(MERCHANT, orders=60, seed=9)
    harness = sync_stack.harness
    harness.dispatcher.pause()
    job_id = await sync_stack.start(MERCHANT, "12m")
    step = await _next_step(sync_stack)
    state = harness.container.state
    assert await state.acquire_lock(f"sync-step:{job_id}", "killed-instance", 3)
    answer = await sync_stack.deliver_step(step.body, message_id=step.message_id)
    assert answer.status_code == 200 and answer.json()["outcome"] == "busy", answer.text
    copies = [m for m in harness.dispatcher.all_messages() if m.url.endswith("/sync-step")]
    assert [json.loads(m.body)["seq"] for m in copies] == [json.loads(step.body)["seq"]]
    harness.dispatcher.resume()
    job = await sync_stack.wait(job_id, until=("COMPLETED", "FAILED"))
    assert job["status"] == "COMPLETED", job
    truth = await sync_stack.truth(MERCHANT, job)
    assert await sync_stack.warehouse(MERCHANT) == expected(truth)


async def test_giving_up_on_a_step_never_overwrites_a_job_that_moved_on(
    sync_stack: SyncStack,
) -> None:
    """`fail` after QStash's last retry is refused while a copy holds the step's lease, and a
    failure whose compare-and-set loses leaves the other copy's state standing."""
    await sync_stack.authorize(MERCHANT, orders=50, seed=9)
    harness = sync_stack.harness
    orchestrator, state = harness.container.sync, harness.container.state
    harness.dispatcher.pause()
    job_id = await sync_stack.start(MERCHANT, "12m")
    job = await state.get_job(job_id)
    assert await state.acquire_lock(f"sync-step:{job_id}", "running-copy", 60)
    await orchestrator.fail(job_id, job.seq, "step failed after all retries: boom")
    assert (await state.get_job(job_id)).status.active
    await state.release_lock(f"sync-step:{job_id}", "running-copy")

    stale = await state.get_job(job_id)
    moved_on = await state.get_job(job_id)
    moved_on.seq += 1
    assert await state.save_job(moved_on, expected_seq=stale.seq)
    assert await orchestrator._finish_failed(stale, stale.seq, "late failure") == "superseded"
    assert (await state.get_job(job_id)).status.active


async def test_a_step_that_crashes_after_loading_resumes_without_doubling(
    sync_stack: SyncStack,
) -> None:
    """Two crash points: after saving (before publishing the next step) and after loading
    (before saving). QStash redelivers the crashed step either way."""
    await sync_stack.authorize(MERCHANT, orders=400, seed=7)
    container = sync_stack.harness.container
    queue, state = container.queue, container.state
    real_publish, real_save = queue.publish_step, state.save_job
    calls = {"publish": 0, "save": 0}

    async def publish_then_crash(*args: Any, **kwargs: Any) -> Any:
        calls["publish"] += 1
        if calls["publish"] == 4:
            raise TransientError("crashed before publishing the next step")
        return await real_publish(*args, **kwargs)

    async def crash_before_save(job: Any, *, expected_seq: int) -> bool:
        if job.cursor.resource == "orders" and job.counts["orders"] > 0:
            calls["save"] += 1
            if calls["save"] == 2:
                raise TransientError("crashed after loading, before saving")
        return await real_save(job, expected_seq=expected_seq)

    queue.publish_step = publish_then_crash  # type: ignore[method-assign]
    state.save_job = crash_before_save  # type: ignore[method-assign]

    job = await sync_stack.wait(await sync_stack.start(MERCHANT, "12m"))

    assert job["status"] == "COMPLETED" and calls["publish"] > 4 and calls["save"] > 2
    truth = await sync_stack.truth(MERCHANT, job)
    assert await sync_stack.warehouse(MERCHANT) == expected(truth)
    assert job["counts"]["orders"] == truth["orders"]  # counted once, saved with the cursor
    stats = (await sync_stack.emulator.stats())["counts"]
    assert stats["requests:orders.detail"] > truth["orders"]  # the unsaved page was refetched


async def _drive_until_orders(stack: SyncStack) -> None:
    """Deliver steps by hand (queue paused) until the job is listing orders."""
    while True:
        step = await _next_step(stack)
        answer = await stack.deliver_step(step.body, message_id=step.message_id)
        assert answer.status_code == 200, answer.text
        job_id = orjson.loads(step.body)["jobId"]
        job = (await stack.status(jobId=job_id)).json()
        if job["position"].startswith("orders"):
            return


async def test_an_order_deleted_between_list_pages_does_not_hide_the_next_one(
    sync_stack: SyncStack,
) -> None:
    """Offset pages shift when a merchant deletes an order between two page requests minutes
    apart: the first order of the next page moves onto the page already read. The slice's
    total changed, so the slice is listed once more and that order is found."""
    await sync_stack.authorize(MERCHANT, orders=400, seed=13)
    sync_stack.harness.dispatcher.pause()
    job_id = await sync_stack.start(MERCHANT, "12m")
    await _drive_until_orders(sync_stack)
    step = await _next_step(sync_stack)  # lists the slice's first page, fetches its orders
    assert (await sync_stack.deliver_step(step.body, message_id=step.message_id)).is_success
    cursor = (await sync_stack.harness.container.state.get_job(job_id)).cursor
    assert cursor.page == 2 and len(cursor.slice_ids) == 60 and cursor.slice_total > 120
    await sync_stack.emulator.delete_order(MERCHANT, cursor.slice_ids[0])  # already loaded
    sync_stack.harness.dispatcher.resume()

    job = await sync_stack.wait(job_id)

    assert job["status"] == "COMPLETED", job
    truth = await sync_stack.truth(MERCHANT, job)  # without the deleted order
    loaded = await sync_stack.warehouse(MERCHANT)
    assert loaded["orders"] == job["counts"]["orders"] == truth["orders"] + 1


async def test_a_product_deleted_between_list_pages_does_not_hide_another(
    sync_stack: SyncStack,
) -> None:
    """The same shift in the products listing: its total changed, so it is listed again in
    full, and the job counts the products the store has now."""
    await sync_stack.authorize(MERCHANT, orders=50, seed=14)  # 75 products: two pages
    sync_stack.harness.dispatcher.pause()
    job_id = await sync_stack.start(MERCHANT, "12m")
    step = await _next_step(sync_stack)  # the first products page
    assert (await sync_stack.deliver_step(step.body, message_id=step.message_id)).is_success
    job = await sync_stack.harness.container.state.get_job(job_id)
    assert job.cursor.label() == "products:p2" and job.cursor.slice_total == 75
    first_listed = sync_stack.state.stores[MERCHANT].products[0]["id"]
    await sync_stack.emulator.delete_product(MERCHANT, first_listed)  # already loaded
    sync_stack.harness.dispatcher.resume()

    job = await sync_stack.wait(job_id)

    assert job["status"] == "COMPLETED", job
    truth = await sync_stack.truth(MERCHANT, job)  # 74 products now
    loaded = await sync_stack.warehouse(MERCHANT)
    assert loaded["products"] == truth["products"] + 1 == 75  # none skipped; the deleted kept
    assert job["counts"]["products"] == truth["products"]


async def test_a_customer_deleted_between_cursor_pages_does_not_hide_another(
    sync_stack: SyncStack,
) -> None:
    """Customers come with cursor pagination (`{count, current, next}`, no total), whose cursor
    may be an offset in disguise: a deletion between pages shifts the next page's first row
    onto the page already read, and no total tells. Such a listing is always read once more."""
    await sync_stack.authorize(MERCHANT, orders=50, seed=15)
    store = sync_stack.state.stores[MERCHANT]
    store.simulation.create_customers(70)
    listed = len(store.customers)
    assert 60 < listed <= 120  # two cursor pages of 60
    sync_stack.harness.dispatcher.pause()
    job_id = await sync_stack.start(MERCHANT, "12m")
    while True:  # deliver steps until the first customers page is read
        step = await _next_step(sync_stack)
        assert (await sync_stack.deliver_step(step.body, message_id=step.message_id)).is_success
        job = await sync_stack.harness.container.state.get_job(job_id)
        if job.cursor.label() == "customers:p2":
            break
    assert job.cursor.slice_total is None  # the cursor listing says no total
    await sync_stack.emulator.delete_customer(MERCHANT, store.customers[0]["id"])  # loaded
    sync_stack.harness.dispatcher.resume()

    job = await sync_stack.wait(job_id)

    assert job["status"] == "COMPLETED", job
    truth = await sync_stack.truth(MERCHANT, job)  # one customer fewer now
    loaded = await sync_stack.warehouse(MERCHANT)
    assert loaded["customers"] == truth["customers"] + 1 == listed  # none skipped; deleted kept
    assert job["counts"]["customers"] == truth["customers"]


async def test_an_access_token_expiring_mid_job_is_refreshed_once(sync_stack: SyncStack) -> None:
    tokens = await sync_stack.authorize(MERCHANT, orders=500, seed=8)
    sync_stack.harness.dispatcher.pause()
    job_id = await sync_stack.start(MERCHANT, "12m")
    await _drive_until_orders(sync_stack)
    await sync_stack.emulator.expire_token(MERCHANT)
    sync_stack.harness.dispatcher.resume()  # eight detail fetches in flight meet the 401

    job = await sync_stack.wait(job_id)

    assert job["status"] == "COMPLETED", job
    stats = (await sync_stack.emulator.stats())["counts"]
    assert stats["refreshes"] == 1 and "refresh_reused" not in stats
    assert job["requests"]["token.refresh"] >= 1
    current = await sync_stack.emulator.tokens(MERCHANT)
    assert current["access_token"] != tokens["access_token"]
    stored = await sync_stack.harness.container.state.get_merchant(MERCHANT)
    cipher = sync_stack.harness.container.cipher
    assert cipher.decrypt(stored.access_token) == current["access_token"]
    assert cipher.decrypt(stored.refresh_token) == current["refresh_token"]
    truth = await sync_stack.truth(MERCHANT, job)
    assert await sync_stack.warehouse(MERCHANT) == expected(truth)


class GatedLoader:
    """Holds the first order batch of the backfill after it was fetched, before it loads."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.held = asyncio.Event()
        self.release = asyncio.Event()
        self.order_ids: list[int] = []

    async def load(self, batch: LoadBatch) -> None:
        orders = [e.order_id for e in batch.entities if isinstance(e, OrderVersion)]
        if orders and not self.held.is_set():
            self.order_ids = orders
            self.held.set()
            await self.release.wait()
        await self.real.load(batch)


async def test_webhooks_during_a_backfill_keep_the_newest_state(sync_stack: SyncStack) -> None:
    await sync_stack.authorize(MERCHANT, orders=300, seed=9)
    sync = sync_stack.sync
    gate = GatedLoader(sync._loader)
    sync._loader = gate
    job_id = await sync_stack.start(MERCHANT, "12m")
    await asyncio.wait_for(gate.held.wait(), 30)  # a page of orders is fetched, not yet loaded
    order_id = gate.order_ids[0]
    await asyncio.sleep(1.1)  # Salla's webhook times have one-second resolution

    # The merchant refunds the order now: Salla changes it and sends the webhook.
    refunded = await sync_stack.emulator.set_order_status(MERCHANT, order_id, "refunded")
    newer = {
        "event": "order.refunded",
        "merchant": MERCHANT,
        "created_at": js_date(datetime.now(RIYADH)),
        "data": refunded,
    }
    # A late copy of an older event (an hour earlier, still in progress) arrives too.
    older = {
        "event": "order.status.updated",
        "merchant": MERCHANT,
        "created_at": js_date(datetime.fromtimestamp(time.time() - 3600, RIYADH)),
        "data": {**refunded, "status": {**refunded["status"], "slug": "in_progress"}},
    }
    try:
        for document in (newer, older):
            assert (await sync_stack.harness.send(orjson.dumps(document))).status_code == 200
        await sync_stack.harness.settle_events()
        db = sync_stack.harness.container.warehouse.database
        status = f"SELECT status FROM {db}.orders WHERE order_id = {order_id}"
        assert await sync_stack.harness.sql(status) == [("refunded",)]
    finally:
        gate.release.set()  # now the backfill loads its older snapshot of the page

    job = await sync_stack.wait(job_id)

    assert job["status"] == "COMPLETED"
    assert await sync_stack.harness.sql(status) == [("refunded",)]
    truth = await sync_stack.truth(MERCHANT, job)
    assert await sync_stack.warehouse(MERCHANT) == expected(truth)


async def test_progress_is_monotonic_and_reaches_100_only_when_complete(
    sync_stack: SyncStack,
) -> None:
    await sync_stack.emulator.configure(rate_limit_per_minute=1500)
    await sync_stack.authorize(MERCHANT, orders=500, seed=10)
    job = await sync_stack.wait(await sync_stack.start(MERCHANT, "12m"))

    assert job["status"] == "COMPLETED"
    polled = sync_stack.polled
    assert len(polled) > 20  # watched while it ran, not just at the end
    progress = [p["progress"] for p in polled]
    assert progress == sorted(progress)
    assert all(p["progress"] < 100 for p in polled if p["status"] != "COMPLETED")
    assert any(0 < p["progress"] < 100 for p in polled)
    order = {"QUEUED": 0, "RUNNING": 1, "COMPLETED": 2}
    states = [order[p["status"]] for p in polled]
    assert states == sorted(states)
    counts = [p["counts"]["orders"] for p in polled]
    assert counts == sorted(counts)


async def test_initiate_is_idempotent_while_a_job_runs(sync_stack: SyncStack) -> None:
    await sync_stack.authorize(MERCHANT, orders=200, seed=11)
    sync_stack.harness.dispatcher.pause()
    first = await sync_stack.initiate(str(MERCHANT), "12m")
    again = await sync_stack.initiate(MERCHANT, "24m")  # a number this time, another depth
    assert first.status_code == 202 and first.json()["created"] is True
    assert again.status_code == 200 and again.json() == {**first.json(), "created": False}
    sync_stack.harness.dispatcher.resume()
    job = await sync_stack.wait(first.json()["jobId"])
    assert job["status"] == "COMPLETED" and job["depth"] == "12m"
    later = await sync_stack.initiate(MERCHANT, "24m")  # a finished job does not block a new one
    assert later.status_code == 202 and later.json()["jobId"] != first.json()["jobId"]


async def test_revoked_tokens_fail_the_job_clearly_and_it_resumes_after_reauthorization(
    sync_stack: SyncStack,
) -> None:
    await sync_stack.authorize(MERCHANT, orders=300, seed=12)
    sync_stack.harness.dispatcher.pause()
    job_id = await sync_stack.start(MERCHANT, "12m")
    await _drive_until_orders(sync_stack)
    store = sync_stack.state.stores[MERCHANT]
    store.tokens.revoked = True  # e.g. the merchant revoked access in the Salla dashboard
    sync_stack.harness.dispatcher.resume()

    failed = await sync_stack.wait(job_id)
    assert failed["status"] == "FAILED"
    assert "re-authorize" in failed["error"] and failed["progress"] < 100
    store.tokens = new_tokens()  # the merchant reinstalls: Salla sends fresh tokens
    await asyncio.sleep(1.1)  # a later second than the first authorization (1 s resolution)
    await sync_stack.harness.send(authorization_event(MERCHANT, store.tokens.__dict__))
    await sync_stack.harness.settle()
    resumed = await sync_stack.harness.http.post(
        sync_stack.harness.url + "/api/jobs/sync/resume", json={"jobId": job_id}, headers=AUTH
    )
    assert resumed.status_code == 202, resumed.text
    job = await sync_stack.wait(job_id)
    assert job["status"] == "COMPLETED" and job["error"] is None
    truth = await sync_stack.truth(MERCHANT, job)
    assert await sync_stack.warehouse(MERCHANT) == expected(truth)
    assert job["counts"]["orders"] == truth["orders"]


async def test_an_outage_opens_the_breaker_fails_the_job_and_resume_finishes_it(
    sync_stack: SyncStack,
) -> None:
    await sync_stack.authorize(MERCHANT, orders=300, seed=13)
    sync_stack.sync.fail_after = 5
    await sync_stack.emulator.configure(error_rate=1.0)  # Salla is down
    job_id = await sync_stack.start(MERCHANT, "12m")
    failed = await sync_stack.wait(job_id)
    assert failed["status"] == "FAILED" and "Salla unavailable for 5 steps" in failed["error"]
    notes = [p["note"] or "" for p in sync_stack.polled]
    assert any("circuit open" in note for note in notes)
    requests_during_outage = (await sync_stack.emulator.stats())["counts"]["requests"]
    assert requests_during_outage <= 5 * 3 + 2  # each failed step: one request, two retries

    await sync_stack.emulator.configure(error_rate=0.0)  # Salla is back
    resumed = await sync_stack.harness.http.post(
        sync_stack.harness.url + "/api/jobs/sync/resume", json={"jobId": job_id}, headers=AUTH
    )
    assert resumed.status_code == 202
    job = await sync_stack.wait(job_id)
    assert job["status"] == "COMPLETED"
    truth = await sync_stack.truth(MERCHANT, job)
    assert await sync_stack.warehouse(MERCHANT) == expected(truth)


async def test_an_uninstall_mid_job_fails_it_with_the_reason(sync_stack: SyncStack) -> None:
    await sync_stack.authorize(MERCHANT, orders=200, seed=14)
    sync_stack.harness.dispatcher.pause()
    job_id = await sync_stack.start(MERCHANT, "12m")
    await _drive_until_orders(sync_stack)
    uninstall = {
        "event": "app.uninstalled",
        "merchant": MERCHANT,
        "created_at": js_date(datetime.now(RIYADH)),
        "data": {},
    }
    # Straight through the worker (the paused queue holds webhook deliveries too).
    processor = sync_stack.harness.container.processor
    assert await processor.process(orjson.dumps(uninstall), message_id="m-uninstall") == "loaded"
    sync_stack.harness.dispatcher.resume()
    job = await sync_stack.wait(job_id)
    assert job["status"] == "FAILED" and "uninstalled the app" in job["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"depth": "12m"}, "merchantId"),
        ({"merchantId": "1", "depth": "6m"}, "depth"),
        ({"merchantId": "abc", "depth": "12m"}, "merchantId"),
        ({"merchantId": -5, "depth": "12m"}, "merchantId"),
        ({"merchantId": 0, "depth": "12m"}, "merchantId"),
        ({"merchantId": True, "depth": "12m"}, "merchantId"),
        ({"merchantId": 12.5, "depth": "12m"}, "merchantId"),
        ({"merchantId": str(2**64), "depth": "12m"}, "merchantId"),
        ({"merchantId": "1", "depth": "12m", "extra": 1}, "extra"),
        ([], "body"),
    ],
)
async def test_initiate_rejects_a_bad_body_naming_the_field(
    sync_stack: SyncStack, body: Any, field: str
) -> None:
    response = await sync_stack.harness.http.post(
        sync_stack.harness.url + "/api/jobs/sync/initiate", json=body, headers=AUTH
    )
    assert response.status_code == 422
    assert field in str(response.json()["detail"])


async def test_the_sync_endpoints_need_the_service_key(sync_stack: SyncStack) -> None:
    http, url = sync_stack.harness.http, sync_stack.harness.url
    body = {"merchantId": "1", "depth": "12m"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        for method, path, kwargs in (
            ("POST", "/api/jobs/sync/initiate", {"json": body}),
            ("POST", "/api/jobs/sync/initiate", {"json": {"junk": True}}),  # 401 before 422
            ("GET", "/api/jobs/sync/status", {"params": {"merchantId": "1"}}),
            ("POST", "/api/jobs/sync/resume", {"json": {"jobId": "sync_x"}}),
        ):
            response = await http.request(method, url + path, headers=headers, **kwargs)
            assert response.status_code == 401, (method, path, headers)


async def test_initiate_and_status_explain_conflicts_and_unknowns(sync_stack: SyncStack) -> None:
    never = await sync_stack.initiate("424242", "12m")
    assert never.status_code == 409 and "has not authorized" in never.json()["detail"]
    assert (await sync_stack.status(merchantId="424242")).status_code == 404
    assert (await sync_stack.status(jobId="sync_unknown")).status_code == 404
    assert (await sync_stack.status()).status_code == 422
    assert (await sync_stack.status(merchantId="12ab")).status_code == 422
    resumed = await sync_stack.harness.http.post(
        sync_stack.harness.url + "/api/jobs/sync/resume", json={"jobId": "sync_nope"}, headers=AUTH
    )
    assert resumed.status_code == 404

    await sync_stack.authorize(MERCHANT, orders=100, seed=15)
    uninstall = {
        "event": "app.uninstalled",
        "merchant": MERCHANT,
        "created_at": js_date(datetime.now(RIYADH)),
        "data": {},
    }
    await sync_stack.harness.send(orjson.dumps(uninstall))
    await sync_stack.harness.settle()
    gone = await sync_stack.initiate(MERCHANT, "12m")
    assert gone.status_code == 409 and "uninstalled" in gone.json()["detail"]


async def test_the_step_endpoint_refuses_unsigned_forged_and_malformed_deliveries(
    sync_stack: SyncStack,
) -> None:
    http, url = (
        sync_stack.harness.http,
        sync_stack.harness.settings.delivery_url("/api/queue/sync-step"),
    )
    body = b'{"jobId":"sync_x","seq":0}'
    assert (await http.post(url, content=body)).status_code == 401
    forged = {"Upstash-Signature": "eyJhbGciOiJIUzI1NiJ9.e30.bad"}
    assert (await http.post(url, content=body, headers=forged)).status_code == 401
    assert (await http.post(url, content=b"x" * 10_000)).status_code == 413
    for bad in (
        b"not json",
        b"[]",
        b'{"jobId": 5, "seq": 0}',
        b'{"jobId": "j", "seq": -1}',
        b'{"jobId": "j", "seq": true}',
        b'{"jobId": "j"}',
    ):
        answer = await sync_stack.deliver_step(bad)
        assert answer.status_code == 489, (bad, answer.text)
        assert answer.headers["Upstash-NonRetryable-Error"] == "true"
    unknown = await sync_stack.deliver_step(body)
    assert unknown.status_code == 489 and "unknown job" in unknown.json()["error"]


async def test_a_stale_step_after_completion_changes_nothing(sync_stack: SyncStack) -> None:
    await sync_stack.authorize(MERCHANT, orders=150, seed=16)
    job_id = await sync_stack.start(MERCHANT, "12m")
    done = await sync_stack.wait(job_id)
    requests_before = (await sync_stack.emulator.stats())["counts"]["requests"]
    stored = await sync_stack.harness.container.state.get_job(job_id)
    for seq in (0, 1, stored.seq - 1):
        answer = await sync_stack.deliver_step(orjson.dumps({"jobId": job_id, "seq": seq}))
        assert answer.status_code == 200 and answer.json()["outcome"] == "stale"
    after = (await sync_stack.status(jobId=job_id)).json()
    assert after == done
    assert (await sync_stack.emulator.stats())["counts"]["requests"] == requests_before


async def test_status_by_merchant_returns_the_latest_job(sync_stack: SyncStack) -> None:
    await sync_stack.authorize(MERCHANT, orders=100, seed=17)
    first = await sync_stack.wait(await sync_stack.start(MERCHANT, "12m"))
    second_id = await sync_stack.start(MERCHANT, "24m")
    latest = (await sync_stack.status(merchantId=str(MERCHANT))).json()
    assert latest["jobId"] == second_id != first["jobId"]
    assert latest["merchantId"] == str(MERCHANT)
