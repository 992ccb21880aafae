"""Signed Salla webhooks → local QStash → ETL worker → chDB, all over real HTTP."""

import asyncio
import json
import time

import jwt
import pytest
from data_pipeline.devtools.qstash_server.signing import sign_delivery
from data_pipeline.devtools.salla_samples import (
    delivery_schedule,
    demo_store,
    encode,
    sample_envelope,
)
from data_pipeline.domain import orders as order_domain

from shared.dev_credentials import DEV_QSTASH_CURRENT_SIGNING_KEY
from shared.topics import PROCESS_EVENT_PATH, WEBHOOK_PATH
from tests.support.harness import WEBHOOK_SECRET


def queued(harness):
    return harness.dispatcher.pending + len(harness.qstash.state.store.load_messages())


async def test_a_signed_order_webhook_lands_in_the_warehouse(harness):
    body = encode(sample_envelope("order.created"))
    response = await harness.send(body)
    assert response.status_code == 200 and response.json()["event"] == "order.created"
    await harness.settle()
    order_id = json.loads(body)["data"]["id"]
    rows = await harness.sql(
        f"SELECT order_id, status FROM {harness.settings.clickhouse_database}.orders"
    )
    assert rows == [(order_id, "under_review")]
    assert harness.metric("pipeline_events_settled_total", outcome="loaded") == 1


async def test_deliveries_signed_by_a_clock_two_seconds_ahead_load(harness_with):
    """QStash stamps iat/nbf at its own now (docs: howto/signature); a worker clock that lags by
    a second or two must not refuse genuine deliveries and burn QStash's retries."""
    harness = await harness_with(qstash_clock_skew=2)
    body = encode(sample_envelope("order.created"))
    assert (await harness.send(body)).status_code == 200
    await harness.settle()
    rows = await harness.sql(f"SELECT count() FROM {harness.settings.clickhouse_database}.orders")
    assert rows == [(1,)]
    assert harness.metric("pipeline_deliveries_rejected_total", reason="signature") == 0


async def test_a_replayed_stream_with_duplicates_out_of_order_converges_exactly(harness):
    store = demo_store()
    deliveries = delivery_schedule(store.events, duplicate_share=0.4)
    responses = await asyncio.gather(*(harness.send(body) for body in deliveries))
    assert {r.status_code for r in responses} == {200}
    await harness.settle()
    db, truth = harness.settings.clickhouse_database, store.truth
    assert await harness.sql(f"SELECT count(), sum(total) FROM {db}.orders") == [
        (len(truth.live_orders()), truth.order_total_sum())
    ]
    assert await harness.sql(f"SELECT count(), sum(line_total) FROM {db}.sales_facts") == [
        (truth.line_count(), truth.line_total_sum())
    ]
    live_products = [p for p in truth.products.values() if not p["deleted"]]
    assert await harness.sql(f"SELECT count(), sum(price) FROM {db}.products") == [
        (len(live_products), sum(p["price"] for p in live_products))
    ]
    assert await harness.sql(f"SELECT count() FROM {db}.customers") == [(len(truth.customers),)]
    carts = await harness.sql(f"SELECT cart_id, total, item_count FROM {db}.abandoned_carts")
    assert {c: (t, n) for c, t, n in carts} == {
        c: (v["total"], v["item_count"]) for c, v in truth.carts.items()
    }
    metrics = harness.container.metrics
    assert metrics.settled_total() == metrics.accepted_total() == len(deliveries)
    assert harness.metric("pipeline_events_settled_total", outcome="ignored") == 1
    assert harness.metric("pipeline_events_settled_total", outcome="duplicate") == len(
        deliveries
    ) - len(store.events)


async def test_items_changed_by_an_update_replace_the_old_items(harness):
    store = demo_store()
    changed = next(e for e in store.events if e["event"] == "order.products.updated")
    created = next(
        e
        for e in store.events
        if e["event"] == "order.created" and e["data"]["id"] == changed["data"]["id"]
    )
    for body in (encode(changed), encode(created)):  # the update arrives first
        assert (await harness.send(body)).status_code == 200
    await harness.settle()
    rows = await harness.sql(
        f"SELECT item_id FROM {harness.settings.clickhouse_database}.sales_facts ORDER BY item_id"
    )
    assert [r[0] for r in rows] == sorted(item["id"] for item in changed["data"]["items"])


async def test_order_deleted_removes_the_order_and_its_facts(harness):
    body = encode(sample_envelope("order.created"))
    order = json.loads(body)
    deleted = {**order, "event": "order.deleted", "created_at": "Sun Dec 31 2034 23:00:00 GMT+0300"}
    for payload in (encode(deleted), body):
        await harness.send(payload)
    await harness.settle()
    db = harness.settings.clickhouse_database
    assert await harness.sql(f"SELECT count() FROM {db}.orders") == [(0,)]
    assert await harness.sql(f"SELECT count() FROM {db}.sales_facts") == [(0,)]


async def test_unmodeled_events_are_accepted_and_settled_as_ignored(harness):
    body = encode(
        {
            "event": "specialoffer.created",
            "merchant": 1,
            "created_at": "2024-01-01 10:00:00",
            "data": {"id": 1},
        }
    )
    assert (await harness.send(body)).status_code == 200
    await harness.settle()
    assert harness.metric("pipeline_events_settled_total", outcome="ignored") == 1
    rows = await harness.sql(f"SELECT event FROM {harness.settings.clickhouse_database}.raw_events")
    assert rows == [("specialoffer.created",)]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"X-Salla-Signature": "0" * 64}, 401),
        ({"X-Salla-Signature": "nonsense"}, 401),
        ({"Authorization": WEBHOOK_SECRET}, 401),  # token strategy is not configured
    ],
)
async def test_unauthenticated_webhooks_are_refused_and_nothing_is_published(
    harness, headers, status
):
    response = await harness.send(encode(sample_envelope("order.created")), headers=headers)
    assert response.status_code == status
    assert queued(harness) == 0 and harness.container.metrics.accepted_total() == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"event": "order.created", "data": {}}', "missing merchant"),
        (b'{"event": "order.created", "merchant": 1}', "missing data"),
        (b'{"event": "order.created", "merchant": {"id": 1}, "data": {}}', "merchant"),
        ('{"event": "x.y", "merchant": 1, "data": {}}'.encode("utf-16"), "UTF-8"),
    ],
)
async def test_signed_but_malformed_bodies_get_400_with_the_reason(harness, body, reason):
    response = await harness.send(body)
    assert response.status_code == 400 and reason in response.json()["detail"]
    assert queued(harness) == 0


async def test_bodies_over_one_mebibyte_get_413_before_anything_else(harness):
    big = b'{"event":"order.created","merchant":1,"data":{"pad":"' + b"x" * (1024 * 1024) + b'"}}'
    assert (await harness.send(big, headers={})).status_code == 413  # even unsigned: size first

    async def chunks():  # no Content-Length: the limit applies while streaming
        for _ in range(17):
            yield b"x" * 65536

    response = await harness.http.post(harness.url + WEBHOOK_PATH, content=chunks())
    assert response.status_code == 413 and queued(harness) == 0


async def test_a_duplicate_webhook_is_settled_at_the_ingress(harness):
    body = encode(sample_envelope("product.created"))
    first, second = [await harness.send(body) for _ in range(2)]
    assert (first.json()["deduplicated"], second.json()["deduplicated"]) == (False, True)
    await harness.settle()
    assert harness.metric("pipeline_events_settled_total", outcome="duplicate") == 1
    assert harness.metric("pipeline_events_settled_total", outcome="loaded") == 1


async def test_queue_unavailable_answers_503_and_counts_it(harness):
    await harness.qstash.stop()
    response = await harness.send(encode(sample_envelope("order.created")))
    assert response.status_code == 503
    assert harness.metric("pipeline_queue_publish_failures_total", topic="raw-events") == 1
    assert harness.container.metrics.accepted_total() == 0


async def test_a_poison_event_is_dead_lettered_and_replayed_after_a_fix(harness, monkeypatch):
    event = sample_envelope("order.created")
    event["data"]["amounts"]["total"] = {
        "amount": "1,234.50",
        "currency": "SAR",
    }  # a shape we cannot read
    assert (await harness.send(encode(event))).status_code == 200
    client = harness.container.queue.client
    letters = await wait_for(lambda: client.dlq.list(), lambda page: len(page.messages) == 1)
    (letter,) = letters.messages
    assert letter.response_status == 489 and "order.amounts.total" in letter.response_body
    assert harness.metric("pipeline_events_settled_total", outcome="dead_lettered") == 1

    # "Deploy" a fix that reads thousands separators, then replay through the same idempotent path.
    original = order_domain.parse_decimal
    monkeypatch.setattr(
        order_domain,
        "parse_decimal",
        lambda value, *, field: original(_strip_commas(value), field=field),
    )
    await client.http.request(path=f"/v2/dlq/retry/{letter.dlq_id}", method="POST")
    await wait_for(
        lambda: harness.sql(f"SELECT total FROM {harness.settings.clickhouse_database}.orders"),
        lambda rows: rows == [(__import__("decimal").Decimal("1234.50"),)],
    )
    # The load is visible before the worker records the settlement that follows it.

    async def recovered():
        return harness.metric("pipeline_events_recovered_total")

    assert await wait_for(recovered, lambda count: count >= 1) == 1
    assert harness.container.metrics.settled_total() == harness.container.metrics.accepted_total()


def _strip_commas(value):
    if isinstance(value, dict) and isinstance(value.get("amount"), str):
        return {**value, "amount": value["amount"].replace(",", "")}
    return value


async def test_a_warehouse_outage_within_the_retry_window_loses_nothing(harness_with):
    # Exponential retries (0.2 s, 0.4 s, ... 6.4 s) span ~12 s; the outage lasts ~1.5 s.
    harness = await harness_with(qstash_retries=6, qstash_retry_delay="200 * pow(2, retried)")
    db = harness.settings.clickhouse_database
    client = harness.container.warehouse._connect()
    client.command(f"DETACH TABLE {db}.raw_events")
    store = demo_store(orders=5)
    for event in store.events:
        assert (await harness.send(encode(event))).status_code == 200
    await wait_for(
        lambda: metric_now(harness, "pipeline_delivery_failures_total", reason="transient"),
        lambda failures: failures >= len(store.events),
    )
    await asyncio.sleep(1.0)
    client.command(f"ATTACH TABLE {db}.raw_events")
    await harness.settle()
    assert await harness.sql(f"SELECT count(), sum(total) FROM {db}.orders") == [
        (len(store.truth.live_orders()), store.truth.order_total_sum())
    ]
    assert harness.metric("pipeline_events_settled_total", outcome="dead_lettered") == 0


async def test_an_outage_longer_than_the_retries_is_recovered_from_the_dlq(harness):
    db = harness.settings.clickhouse_database
    client = harness.container.warehouse._connect()
    client.command(f"DETACH TABLE {db}.raw_events")
    store = demo_store(orders=4)
    for event in store.events:
        assert (await harness.send(encode(event))).status_code == 200
    queue = harness.container.queue.client
    await wait_for(queue.dlq.list, lambda page: len(page.messages) == len(store.events))
    assert harness.metric("pipeline_events_settled_total", outcome="dead_lettered") == len(
        store.events
    )
    client.command(f"ATTACH TABLE {db}.raw_events")
    for letter in (await queue.dlq.list()).messages:
        await queue.http.request(path=f"/v2/dlq/retry/{letter.dlq_id}", method="POST")
    await wait_for(
        lambda: metric_now(harness, "pipeline_events_recovered_total"),
        lambda recovered: recovered == len(store.events),
    )
    assert await harness.sql(f"SELECT count(), sum(total) FROM {db}.orders") == [
        (len(store.truth.live_orders()), store.truth.order_total_sum())
    ]
    metrics = harness.container.metrics
    assert metrics.settled_total() == metrics.accepted_total()


async def metric_now(harness, name, **labels):
    return harness.metric(name, **labels)


async def test_forged_expired_or_mismatched_deliveries_are_refused(harness):
    body = encode(sample_envelope("order.created"))
    url = harness.settings.delivery_url(PROCESS_EVENT_PATH)
    now = int(time.time())
    good = sign_delivery(url, body, DEV_QSTASH_CURRENT_SIGNING_KEY)
    forged = sign_delivery(url, body, "sig_not_the_real_signing_key_at_all")
    other_body = sign_delivery(url, b'{"event":"order.deleted"}', DEV_QSTASH_CURRENT_SIGNING_KEY)
    other_url = sign_delivery(
        "http://evil.example/api/queue/process-event", body, DEV_QSTASH_CURRENT_SIGNING_KEY
    )
    expired = jwt.encode(
        {
            "iss": "Upstash",
            "sub": url,
            "iat": now - 900,
            "nbf": now - 900,
            "exp": now - 600,
            "jti": "jwt_x",
            "body": jwt.utils.base64url_encode(
                __import__("hashlib").sha256(body).digest()
            ).decode(),
        },
        DEV_QSTASH_CURRENT_SIGNING_KEY,
        algorithm="HS256",
    )
    no_body_claim = jwt.encode(
        {"iss": "Upstash", "sub": url, "iat": now, "nbf": now, "exp": now + 300},
        DEV_QSTASH_CURRENT_SIGNING_KEY,
        algorithm="HS256",
    )
    for signature in (None, "garbage", forged, other_body, other_url, expired, no_body_claim):
        headers = {"Upstash-Signature": signature} if signature else {}
        response = await harness.http.post(url, content=body, headers=headers)
        assert response.status_code == 401, signature
    assert await harness.sql(
        f"SELECT count() FROM {harness.settings.clickhouse_database}.raw_events"
    ) == [(0,)]
    accepted = await harness.http.post(url, content=body, headers={"Upstash-Signature": good})
    assert accepted.status_code == 200


async def test_app_authorization_stores_encrypted_tokens_and_uninstall_deactivates(harness):
    store = demo_store()
    authorize = store.events[0]
    assert authorize["event"] == "app.store.authorize"
    uninstall = {
        "event": "app.uninstalled",
        "merchant": store.merchant_id,
        "created_at": "2026-12-01 10:00:00",
        "data": {},
    }
    await harness.send(encode(uninstall))  # arrives before the (older) authorization
    await harness.send(encode(authorize))
    await harness.settle()
    record = await harness.container.state.get_merchant(store.merchant_id)
    assert record is not None and not record.installed and not record.active
    assert b"ory_at_demo" not in record.access_token
    assert harness.container.cipher.decrypt(record.access_token) == "ory_at_demo_access_token"
    assert harness.container.cipher.decrypt(record.refresh_token) == "ory_rt_demo_refresh_token"
    letters = await harness.container.queue.client.dlq.list()
    assert letters.messages == []


async def test_openapi_documents_every_endpoint(harness):
    spec = (await harness.http.get(harness.url + "/openapi.json")).json()
    paths = spec["paths"]
    for path in (WEBHOOK_PATH, PROCESS_EVENT_PATH, "/healthz", "/metrics", "/api/dev/sql"):
        assert path in paths
        for operation in paths[path].values():
            assert operation.get("description") or operation.get("summary")
    assert {"400", "401", "413", "503"} <= set(paths[WEBHOOK_PATH]["post"]["responses"])


async def test_metrics_and_deep_health(harness):
    assert (await harness.http.get(harness.url + "/healthz?deep=true")).json()["checks"] == {
        "warehouse": "ok",
        "state": "ok",
    }
    text = (await harness.http.get(harness.url + "/metrics")).text
    assert (
        "pipeline_webhooks_accepted_total" in text
        and 'pipeline_events_settled_total{outcome="loaded"}' in text
    )


async def test_the_dev_sql_endpoint_needs_the_api_key(harness):
    response = await harness.http.post(harness.url + "/api/dev/sql", json={"sql": "SELECT 1"})
    assert response.status_code == 401
    response = await harness.http.post(
        harness.url + "/api/dev/sql",
        json={"sql": "SELECT 1"},
        headers={"Authorization": "Bearer wrong"},
    )
    assert response.status_code == 401


async def wait_for(fetch, done, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last value {value!r}")
        await asyncio.sleep(0.05)
