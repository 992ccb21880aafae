"""Domain events end to end: the demo store's shuffled, duplicated stream through the real path
(webhook, local QStash, worker, chDB) to a subscriber that verifies QStash's signature. One event
per effective change, none for duplicates, redeliveries, replays or superseded versions; every
event valid against its checked-in JSON Schema; no customer PII."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import jsonschema
import pytest
from data_pipeline.devtools.salla_samples import delivery_schedule, demo_store
from data_pipeline.domain.envelope import parse_envelope
from data_pipeline.domain.events import transform
from data_pipeline.domain.model import (
    AbandonedCartVersion,
    CustomerVersion,
    OrderVersion,
)
from qstash import Receiver

from shared.domain_events import EVENT_NAMES, SCHEMA_DIR, event_topic, schema, write_schemas
from tests.support.harness import API_KEY
from tests.support.sink import Sink

ENTITY_EVENTS = [name for name in EVENT_NAMES if not name.startswith("sync.")]


@pytest.fixture
async def sink():
    running = await Sink().start()
    yield running
    await running.stop()


@pytest.fixture
async def events_harness(harness_with, sink):
    harness = await harness_with(domain_events=",".join(ENTITY_EVENTS))
    for name in ENTITY_EVENTS:
        await harness.container.queue.ensure_topic(event_topic(name), [f"{sink.url}/{name}"])
    return harness


def received(harness, sink):
    """Every delivery's CloudEvent, after checking QStash's signature on it."""
    receiver = Receiver(
        current_signing_key=harness.settings.qstash_current_signing_key.get_secret_value(),
        next_signing_key=harness.settings.qstash_next_signing_key.get_secret_value(),
    )
    events = []
    for delivery in sink.deliveries:
        receiver.verify(
            signature=delivery.headers["upstash-signature"],
            body=delivery.body.decode(),
            url=f"{sink.url}{delivery.path}",
        )
        events.append(json.loads(delivery.body))
    return events


def expected(deliveries):
    """What the contract says, computed independently of the service: per entity, only a version
    newer than every one before it changes anything; the first such version of an order creates
    it (or deletes it), a later one whose status differs changes the status."""
    newest, status, deleted, out = {}, {}, {}, Counter()
    for body in deliveries:
        for entity in transform(parse_envelope(body)).entities:
            if isinstance(entity, OrderVersion):
                kind, entity_id = "order", entity.order_id
            elif isinstance(entity, CustomerVersion):
                kind, entity_id = "customer", entity.customer_id
            elif isinstance(entity, AbandonedCartVersion):
                kind, entity_id = "cart", entity.cart_id
            else:
                continue
            key = (kind, entity.merchant_id, entity_id)
            subject = f"merchant/{entity.merchant_id}/{kind}/{entity_id}"
            if key in newest and entity.version <= newest[key]:
                continue  # a duplicate, a redelivery or a superseded version: no change
            first = key not in newest
            newest[key] = entity.version
            if kind == "customer" and first:
                out[("customer.created", subject, entity.version)] += 1
            if kind == "cart" and first and entity.recovered_order_id is None:
                out[("cart.abandoned", subject, entity.version)] += 1
            if kind != "order":
                continue
            if entity.is_deleted:
                if not deleted.get(key):
                    out[("order.deleted", subject, entity.version)] += 1
                deleted[key] = True
                continue
            if first or deleted.get(key):
                out[("order.created", subject, entity.version)] += 1
            elif entity.status is not None and entity.status != status.get(key):
                out[("order.status_changed", subject, entity.version)] += 1
            deleted[key] = False
            status[key] = entity.status if entity.status is not None else status.get(key)
    return out


def name_of(event):
    return event["type"].removeprefix("sa.salla.").removesuffix(".v1")


def exact_types(events, types):
    return Counter(
        (name_of(e), e["subject"], e["data"]["version"]) for e in events if name_of(e) in types
    )


async def test_the_shuffled_duplicated_demo_stream_publishes_one_event_per_effective_change(
    events_harness, sink
):
    harness = events_harness
    store = demo_store(seed=12, orders=12)
    deliveries = delivery_schedule(store.events, duplicate_share=0.4, seed=3)
    for body in deliveries:  # one at a time: the order of arrival is the order of processing
        assert (await harness.send(body)).status_code == 200
        await harness.settle()
    events = received(harness, sink)
    assert events, "no domain event was published"
    personal = {  # what the customer payloads say about people
        str(e["data"][k])
        for e in store.events
        if e["event"].startswith("customer.")
        for k in ("mobile", "email", "last_name")
        if e["data"].get(k)
    }
    assert personal
    # exactly once per (type, entity, version)
    keys = Counter((e["type"], e["subject"], e["data"]["version"]) for e in events)
    assert max(keys.values()) == 1
    assert len({e["id"] for e in events}) == len(events)
    # the events the contract pins down, exactly
    pinned = {
        "order.created",
        "order.deleted",
        "order.status_changed",
        "customer.created",
        "cart.abandoned",
    }
    assert exact_types(events, pinned) == +expected(deliveries)
    by_type = Counter(e["type"] for e in events)
    assert by_type["sa.salla.order.created.v1"] == len(store.truth.orders)
    # every event valid against its checked-in schema, and ids only where people are concerned
    for event in events:
        jsonschema.validate(event, schema(name_of(event)))
        assert event["source"] == "salla-pipeline/test"
        text = json.dumps(event, ensure_ascii=False)
        assert not any(value in text for value in personal)

    # A replay of every delivery (the raw archive, say) publishes nothing new.
    before = len(sink.deliveries)
    for body in deliveries[: len(deliveries) // 2]:
        assert (await harness.send(body)).status_code == 200
    await harness.settle()
    assert len(sink.deliveries) == before


async def test_an_older_version_after_a_newer_one_publishes_nothing(events_harness, sink):
    harness = events_harness
    store = demo_store(seed=4, orders=4)
    orders = [e for e in store.events if e["event"].startswith("order.")]
    newest_first = sorted(
        orders, key=lambda e: transform(parse_envelope(json.dumps(e).encode())).entities[0].version
    )[::-1]
    for event in newest_first:
        assert (await harness.send(json.dumps(event).encode())).status_code == 200
        await harness.settle()
    events = received(harness, sink)
    created = [e for e in events if e["type"] == "sa.salla.order.created.v1"]
    live = store.truth.live_orders()
    assert len(created) == len({e["subject"] for e in created}) == len(live)
    deleted = [e for e in events if e["type"] == "sa.salla.order.deleted.v1"]
    assert len(deleted) == len(store.truth.orders) - len(live)  # the deletion came first
    assert not [e for e in events if e["type"] == "sa.salla.order.status_changed.v1"]


async def test_a_subscriber_outage_ends_in_qstash_dlq_not_in_lost_loads(events_harness, sink):
    harness = events_harness
    store = demo_store(seed=5, orders=4)
    sink.fail_next("/customer.created", 503, times=100)
    for body in delivery_schedule(store.events, duplicate_share=0.0, seed=1):
        assert (await harness.send(body)).status_code == 200
    await harness.settle(timeout=60)
    db = harness.settings.clickhouse_database
    [(customers,)] = await harness.sql(f"SELECT count() FROM {db}.customers")
    assert customers == len(store.truth.customers)  # the warehouse has every load
    dlq = await harness.container.queue.client.dlq.list()
    dead = [m for m in dlq.messages if m.url.endswith("/customer.created")]
    assert len(dead) == len(store.truth.customers)  # each undelivered event kept by QStash


def test_the_checked_in_schemas_are_what_the_code_says(tmp_path):
    written = write_schemas(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in SCHEMA_DIR.glob("*.json"))
    for path in written:
        assert path.read_text() == (SCHEMA_DIR / path.name).read_text(), (
            f"{path.name} is stale: run python -m shared.domain_events"
        )
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))


async def test_the_schemas_are_served_to_the_app_with_the_service_key(events_harness):
    harness = events_harness
    url = harness.url + "/api/events/schema"
    assert (await harness.http.get(url)).status_code == 401
    response = await harness.http.get(url, headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code == 200
    served = {e["name"]: e for e in response.json()["events"]}
    assert set(served) == set(EVENT_NAMES)
    assert served["order.created"]["published"] and not served["sync.failed"]["published"]
    assert served["order.created"]["jsonSchema"] == schema("order.created")


async def test_a_completed_sync_is_announced_once(harness_with, sink):
    from data_pipeline.devtools.salla_emulator.client import EmulatorClient

    from tests.support.salla import SyncStack, salla_settings, start_emulator

    server, state = await start_emulator()
    client = EmulatorClient(server.url)
    try:
        harness = await harness_with(
            **salla_settings(server.url), domain_events="sync.completed,sync.failed"
        )
        for name in ("sync.completed", "sync.failed"):
            await harness.container.queue.ensure_topic(event_topic(name), [f"{sink.url}/{name}"])
        stack = SyncStack(harness, client, state)
        merchant = 1305146709
        await stack.authorize(merchant, orders=60, seed=3)
        job_id = await stack.start(merchant, "12m")
        done = await stack.wait(job_id)
        await harness.settle()
        events = received(harness, sink)
        assert [name_of(e) for e in events] == ["sync.completed"]
        [event] = events
        jsonschema.validate(event, schema("sync.completed"))
        assert event["data"]["jobId"] == job_id
        assert event["data"]["counts"]["orders"] == done["counts"]["orders"] > 0
        assert event["subject"] == f"merchant/{merchant}/sync/{job_id}"
    finally:
        harness.dispatcher.pause()
        await client.aclose()
        await server.stop()


async def test_events_tail_shows_what_was_published(events_harness, sink):
    import subprocess
    import sys
    from pathlib import Path

    harness = events_harness
    store = demo_store(seed=6, orders=4)
    for body in delivery_schedule(store.events, duplicate_share=0.0, seed=2):
        assert (await harness.send(body)).status_code == 200
    await harness.settle()
    cli = str(Path(sys.executable).parent / "salla-pipeline")
    command = [cli, "events", "tail", "--once", "--qstash-url", harness.qstash.url]
    command += ["--token", harness.settings.qstash_token.get_secret_value()]

    def tail(*extra):
        return subprocess.run(
            [*command, *extra], capture_output=True, text=True, timeout=60, env={"COLUMNS": "250"}
        )

    everything = await asyncio.to_thread(tail)
    assert everything.returncode == 0, everything.stderr
    published = received(harness, sink)
    lines = [line for line in everything.stdout.splitlines() if line.startswith("sa.salla.")]
    assert len(lines) == len(published)
    created = await asyncio.to_thread(tail, "--topic", "customer.created")
    assert {line.split()[0] for line in created.stdout.splitlines()} == {
        "sa.salla.customer.created.v1"
    }
    refused = await asyncio.to_thread(tail, "--topic", "order.shipped")
    assert refused.returncode != 0 and "not a domain event" in refused.stdout + refused.stderr


async def test_concurrent_deliveries_publish_each_event_once(events_harness, sink):
    harness = events_harness
    store = demo_store(seed=9, orders=16)
    deliveries = delivery_schedule(store.events, duplicate_share=0.5, seed=8)
    responses = await asyncio.gather(*(harness.send(body) for body in deliveries))
    assert {r.status_code for r in responses} == {200}
    await harness.settle()
    events = received(harness, sink)
    keys = Counter((e["type"], e["subject"], e["data"]["version"]) for e in events)
    assert max(keys.values()) == 1
    orders = {f"merchant/{store.merchant_id}/order/{o}" for o in store.truth.orders}
    first = Counter(
        e["subject"] for e in events if name_of(e) in ("order.created", "order.deleted")
    )
    assert set(first) == orders  # every order announced, created (or deleted first) once each
    assert all(
        count == 1
        for subject, count in Counter(
            e["subject"] for e in events if name_of(e) == "order.created"
        ).items()
    )
    before = len(sink.deliveries)
    await asyncio.gather(*(harness.send(body) for body in deliveries))  # a concurrent replay
    await harness.settle()
    assert len(sink.deliveries) == before


async def test_dead_letters_past_the_threshold_raise_one_alert_also_on_notifications(
    harness_with, sink
):
    from data_pipeline.devtools.salla_samples import encode, sample_envelope

    harness = await harness_with(domain_events="dlq.growing,notifications", dlq_alert_threshold=3)
    await harness.container.queue.ensure_topic(event_topic("dlq.growing"), [f"{sink.url}/dlq"])
    await harness.container.queue.ensure_topic("notifications", [f"{sink.url}/notifications"])
    for index in range(5):  # five poison events of one merchant: unreadable totals
        event = sample_envelope("order.created", merchant_id=4242)
        event["data"]["amounts"]["total"] = {"amount": f"1,23{index}.50", "currency": "SAR"}
        assert (await harness.send(encode(event))).status_code == 200
    await harness.settle()
    alerts = [json.loads(d.body) for d in sink.to("/dlq")]
    copies = [json.loads(d.body) for d in sink.to("/notifications")]
    assert len(alerts) == 1 and copies == alerts  # once per merchant and hour, on both topics
    [alert] = alerts
    jsonschema.validate(alert, schema("dlq.growing"))
    assert alert["data"]["merchantId"] == 4242
    assert alert["data"]["deadLettered"] == alert["data"]["threshold"] == 3
