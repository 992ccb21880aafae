"""RAG enrichment end to end: webhooks → warehouse → embed step (QStash) → vectors → search.

Real parts throughout: the `openai` client against the local OpenAI-compatible server running
multilingual-e5-small, the `qstash` SDK against the local QStash server (signed deliveries),
vectors in chDB behind the same port as Pinecone.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from decimal import Decimal

import orjson
import pytest
from data_pipeline.devtools.qstash_server.signing import sign_delivery
from data_pipeline.devtools.salla_samples import (
    CATALOG,
    StoreSimulation,
    delivery_schedule,
    demo_store,
    encode,
)

from shared.dev_credentials import DEV_QSTASH_CURRENT_SIGNING_KEY
from shared.topics import EMBED_PATH
from tests.support.embeddings import inject_fault
from tests.support.harness import API_KEY

MERCHANT = 1305146709
PII_PATTERNS = (
    re.compile(r"@example\.com"),  # customer e-mails of the simulated store
    re.compile(r"9665\d{8}|\b5\d{8}\b"),  # mobiles and receiver phones
    re.compile(r"كريم|مستلم|رقم \d+"),  # customer last names, receiver name
)


async def test_the_demo_store_is_indexed_in_step_with_the_warehouse(rag_stack):
    store = demo_store(MERCHANT, orders=12)
    await rag_stack.send_all(store.events)
    await rag_stack.drain()
    vectors = await rag_stack.vectors(MERCHANT)
    live_products = {f"product:{p}" for p, t in store.truth.products.items() if not t["deleted"]}
    live_orders = {f"order:{o}" for o, order in store.truth.orders.items() if not order.deleted}
    assert {d for d in vectors if d.startswith("product:")} == live_products
    assert {d for d in vectors if d.startswith("order:")} == live_orders
    changed = store.product_ids[0]  # its price went 45.00 → 49.50
    assert vectors[f"product:{changed}"]["price"] == 49.5
    assert "49.50 SAR" in vectors[f"product:{changed}"]["text"]
    statuses = {v["order_id"]: v["status"] for d, v in vectors.items() if d.startswith("order:")}
    for order_id, order in store.truth.orders.items():
        if not order.deleted:
            assert statuses[str(order_id)] == order.status


@pytest.mark.parametrize(
    ("index", "language"), [(0, "arabic"), (5, "english"), (6, "arabic"), (11, "english")]
)
async def test_a_products_exact_name_ranks_it_first_among_near_identical_variants(
    rag_stack, index, language
):
    store = StoreSimulation(MERCHANT, seed=3)
    store.create_products(len(CATALOG))
    await rag_stack.send_all(store.events)
    await rag_stack.drain()
    arabic, english, _, _ = CATALOG[index]
    name = arabic if index % 2 == 0 else english  # how the simulated store names it
    matches = await rag_stack.search(MERCHANT, name, topK=3)
    assert matches[0]["id"] == f"product:{store.product_ids[index]}", (language, matches)
    assert matches[0]["metadata"]["name"] == name
    # Folded spelling (hamza, taa marbuta, case) still finds it.
    folded = name.replace("ة", "ه").upper()
    again = await rag_stack.search(MERCHANT, folded, topK=1)
    assert again[0]["id"] == matches[0]["id"]


async def test_semantic_queries_in_arabic_and_english_find_the_right_products(rag_stack):
    store = StoreSimulation(MERCHANT, seed=4)
    store.create_products(len(CATALOG))
    await rag_stack.send_all(store.events)
    await rag_stack.drain()
    coffee = await rag_stack.search(MERCHANT, "قهوة", topK=3, filter={"entity": "product"})
    assert all("قهوة" in m["metadata"]["text"] or "Coffee" in m["metadata"]["text"] for m in coffee)
    honey = await rag_stack.search(MERCHANT, "honey", topK=1)
    assert honey[0]["metadata"]["sku"] == "HN-SDR-500"
    cheap = await rag_stack.search(MERCHANT, "هدية", topK=20, filter={"price": {"$lt": 50}})
    assert cheap and all(m["metadata"]["price"] < 50 for m in cheap)


async def test_no_personal_data_reaches_the_index(rag_stack):
    store = demo_store(MERCHANT, orders=10)
    store.create_products(1)
    product = store.events[-1]["data"]
    product["description"] += " للطلب: sales@shop.example أو 0551234567 أو +966 55 123 4567"
    await rag_stack.send_all(store.events)
    await rag_stack.drain()
    vectors = await rag_stack.vectors(MERCHANT)
    assert vectors
    stored = json.dumps(vectors, ensure_ascii=False)
    for pattern in PII_PATTERNS:
        assert not pattern.search(stored), pattern.pattern
    assert "sales@shop.example" not in stored and "0551234567" not in stored
    assert "[email]" in stored and "[phone]" in stored
    for metadata in vectors.values():
        assert not {"customer_id", "customer", "email", "mobile", "address"} & set(metadata)


async def test_unchanged_text_is_never_re_embedded_and_a_change_replaces_the_vector(rag_stack):
    store = StoreSimulation(MERCHANT, seed=5)
    store.create_products(3)
    await rag_stack.send_all(store.events)
    await rag_stack.drain()
    embedded_before = rag_stack.embeddings.texts
    assert embedded_before == 3
    # The same products again, with new event times (so they load as newer versions) and
    # duplicates: the text is unchanged, so nothing is embedded again.
    updates = []
    for event in store.events:
        update = copy.deepcopy(event)
        update["event"] = "product.updated"
        update["created_at"] = update["created_at"].replace("2026", "2027", 1)
        updates.append(update)
    for body in delivery_schedule(updates, duplicate_share=1.0):
        assert (await rag_stack.harness.send(body)).status_code == 200
    await rag_stack.drain()
    assert rag_stack.embeddings.texts == embedded_before
    assert rag_stack.harness.metric("pipeline_rag_documents_total", outcome="unchanged") >= 3
    # A real change re-embeds that one product, under the same id.
    changed = copy.deepcopy(updates[1])
    changed["created_at"] = changed["created_at"].replace("2027", "2028", 1)
    # A real update carries its own, newer update time (the version follows it: issue 13 covers
    # two different bodies in the same second).
    changed["data"]["updated_at"] = {
        "date": "2028-01-01 00:00:00.000000",
        "timezone_type": 3,
        "timezone": "Asia/Riyadh",
    }
    changed["data"]["price"] = {"amount": 999, "currency": "SAR"}
    await rag_stack.send_all([changed])
    await rag_stack.drain()
    assert rag_stack.embeddings.texts == embedded_before + 1
    vectors = await rag_stack.vectors(MERCHANT)
    assert len(vectors) == 3
    assert vectors[f"product:{store.product_ids[1]}"]["price"] == 999.0


async def test_deletes_propagate_and_a_late_update_cannot_resurrect(rag_stack):
    store = StoreSimulation(MERCHANT, seed=6)
    store.create_products(2)
    store.create_customers(1)
    order = store.create_order(lines=1)
    await rag_stack.send_all(store.events)
    await rag_stack.drain()
    assert len(await rag_stack.vectors(MERCHANT)) == 3
    created = store.events[:]
    store.delete_product(0)
    store.delete(order)
    await rag_stack.send_all(store.events[len(created) :])
    await rag_stack.drain()
    assert set(await rag_stack.vectors(MERCHANT)) == {f"product:{store.product_ids[1]}"}
    # Out of order: the original creations arrive again after the deletions.
    for event in created:
        assert (await rag_stack.harness.send(encode(event))).status_code == 200
    await rag_stack.drain()
    assert set(await rag_stack.vectors(MERCHANT)) == {f"product:{store.product_ids[1]}"}
    matches = await rag_stack.search(MERCHANT, CATALOG[0][0], topK=5)
    assert f"product:{store.product_ids[0]}" not in {m["id"] for m in matches}


async def test_an_embedding_outage_leaves_the_warehouse_loading_and_drains_afterwards(
    rag_stack,
):
    harness = rag_stack.harness
    await inject_fault(rag_stack.embeddings_url, 503, count=10_000)
    store = StoreSimulation(MERCHANT, seed=8)
    store.create_products(6)
    await rag_stack.send_all(store.events)
    await harness.settle_events()  # every event loaded while embeddings are down
    db = harness.settings.clickhouse_database
    assert await harness.sql(f"SELECT count() FROM {db}.products") == [(6,)]
    await asyncio.sleep(0.5)
    assert await rag_stack.vectors(MERCHANT) == {}
    assert harness.metric("pipeline_delivery_failures_total", reason="embed") >= 1
    rag_stack.embeddings.faults.clear()  # embeddings come back
    harness.container.rag.embedder.breaker.open_until = 0  # skip the breaker's pause
    await rag_stack.drain(timeout=90)
    assert len(await rag_stack.vectors(MERCHANT)) == 6


async def test_the_embed_step_refuses_unsigned_and_dead_letters_malformed_messages(rag_stack):
    harness = rag_stack.harness
    url = harness.settings.delivery_url(EMBED_PATH)
    good = orjson.dumps({"merchantId": MERCHANT, "products": [1], "orders": []})
    unsigned = await harness.http.post(url, content=good)
    assert unsigned.status_code == 401
    forged = await harness.http.post(
        url, content=good, headers={"Upstash-Signature": sign_delivery(url, good, "x" * 32)}
    )
    assert forged.status_code == 401
    for body in (
        b"not json",
        b"[]",
        orjson.dumps({"merchantId": "abc"}),
        orjson.dumps({"merchantId": MERCHANT, "products": [-1]}),
        orjson.dumps({"merchantId": MERCHANT, "products": list(range(1, 502))}),
        orjson.dumps({"merchantId": MERCHANT, "orders": "1,2"}),
    ):
        signature = sign_delivery(url, body, DEV_QSTASH_CURRENT_SIGNING_KEY)
        answer = await harness.http.post(
            url, content=body, headers={"Upstash-Signature": signature}
        )
        assert answer.status_code == 489, body
        assert answer.headers["upstash-nonretryable-error"] == "true"
    signature = sign_delivery(url, good, DEV_QSTASH_CURRENT_SIGNING_KEY)
    answer = await harness.http.post(url, content=good, headers={"Upstash-Signature": signature})
    assert answer.status_code == 200 and answer.json()["missing"] == 1  # unknown product: no-op


async def test_search_needs_the_key_and_validates_its_body(rag_stack):
    harness = rag_stack.harness
    url = harness.url + "/api/rag/search"
    body = {"merchantId": MERCHANT, "query": "قهوة"}
    assert (await harness.http.post(url, json=body)).status_code == 401
    wrong = {"Authorization": "Bearer wrong"}
    assert (await harness.http.post(url, json=body, headers=wrong)).status_code == 401
    auth = {"Authorization": f"Bearer {API_KEY}"}
    for bad, field in (
        ({"merchantId": MERCHANT}, "query"),
        ({**body, "query": ""}, "query"),
        ({**body, "query": "x" * 501}, "query"),
        ({**body, "topK": 0}, "topK"),
        ({**body, "topK": 51}, "topK"),
        ({**body, "merchantId": "abc"}, "merchantId"),
        ({**body, "filter": {"customer_email": "a"}}, "customer_email"),
        ({**body, "filter": {"price": {"$regex": "1"}}}, "$regex"),
        ({**body, "filter": {"price": "cheap"}}, "price"),
        ({**body, "extra": 1}, "extra"),
    ):
        answer = await harness.http.post(url, json=bad, headers=auth)
        assert answer.status_code == 422, bad
        assert field in answer.text
    blank = await harness.http.post(url, json={**body, "query": "   "}, headers=auth)
    assert blank.status_code == 422
    empty = await harness.http.post(url, json={**body, "merchantId": 42}, headers=auth)
    assert empty.status_code == 200 and empty.json() == {"matches": []}


async def test_search_answers_503_with_retry_after_when_embeddings_are_down(rag_stack):
    await inject_fault(rag_stack.embeddings_url, 503, count=100)
    harness = rag_stack.harness
    answer = await harness.http.post(
        harness.url + "/api/rag/search",
        json={"merchantId": MERCHANT, "query": "قهوة"},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert answer.status_code == 503
    assert int(answer.headers["retry-after"]) >= 1


async def test_search_is_503_when_rag_is_off(harness):
    answer = await harness.http.post(
        harness.url + "/api/rag/search",
        json={"merchantId": MERCHANT, "query": "قهوة"},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert answer.status_code == 503
    assert "not enabled" in answer.text


async def test_a_historical_sync_indexes_what_it_loads(harness_with):
    from data_pipeline.devtools.salla_emulator.client import EmulatorClient

    from tests.support.embeddings import embeddings_server, rag_settings
    from tests.support.rag import RagStack
    from tests.support.salla import SyncStack, salla_settings, start_emulator

    server, state = await start_emulator()
    client = EmulatorClient(server.url)
    async with embeddings_server() as (embeddings, embeddings_state):
        running = await harness_with(**salla_settings(server.url), **rag_settings(embeddings.url))
        sync = SyncStack(running, client, state)
        rag = RagStack(running, embeddings.url, embeddings_state)
        try:
            await sync.authorize(7_100_001, orders=150, seed=9)
            job = await sync.wait(await sync.start(7_100_001))
            assert job["status"] == "COMPLETED"
            await rag.drain(timeout=120)
            vectors = await rag.vectors(7_100_001)
            counts = job["counts"]
            assert sum(d.startswith("product:") for d in vectors) == counts["products"]
            assert sum(d.startswith("order:") for d in vectors) == counts["orders"]
            # Customers are loaded into the warehouse but never embedded.
            assert not any(d.startswith("customer:") for d in vectors)
            assert embeddings_state.texts == embeddings_state.distinct.__len__()
        finally:
            running.dispatcher.pause()
            await client.aclose()
            await server.stop()


async def test_the_rag_search_command(rag_stack):
    from tests.support.cli import clean_env, run_cli

    store = StoreSimulation(MERCHANT, seed=10)
    store.create_products(len(CATALOG))
    await rag_stack.send_all(store.events)
    await rag_stack.drain()
    env = clean_env(PIPELINE_API_KEY=API_KEY)
    common = ("--merchant", str(MERCHANT), "--url", rag_stack.harness.url)

    def cli(*args: str):
        return asyncio.to_thread(run_cli, "rag", "search", *args, env=env)

    shown = await cli(CATALOG[0][0], *common)
    assert shown.returncode == 0, shown.stderr
    first_row = next(line for line in shown.stdout.splitlines() if line.startswith("│ 1 "))
    assert f"product:{store.product_ids[0]}" in first_row
    raw = await cli("honey", "--top-k", "2", "--json", *common)
    assert raw.returncode == 0 and len(json.loads(raw.stdout)["matches"]) == 2
    bad_filter = await cli("x", "--filter", "{not json", *common)
    assert bad_filter.returncode != 0 and "not JSON" in bad_filter.stderr + bad_filter.stdout
    refused = await cli("x", "--filter", '{"email": "a"}', *common)
    assert refused.returncode == 1 and "422" in refused.stderr + refused.stdout
    wrong_key = await asyncio.to_thread(
        run_cli, "rag", "search", "x", *common, env=clean_env(PIPELINE_API_KEY="wrong")
    )
    assert wrong_key.returncode == 1 and "401" in wrong_key.stderr + wrong_key.stdout
    missing = await cli("x", "--url", rag_stack.harness.url)
    assert missing.returncode != 0 and "--merchant" in missing.stderr + missing.stdout


async def test_pinecone_eventual_reads_never_leave_a_deleted_product_searchable(harness_with):
    """Pinecone acknowledges writes before they are readable (known limitations: "eventually
    consistent"). A product created and deleted within that window must not stay in the index:
    its delete is sent whatever a fetch would answer, and what the index holds is judged from
    our own record, not from a read that may be stale."""
    from data_pipeline.devtools.serving import start_server

    from tests.support.embeddings import embeddings_server, rag_settings
    from tests.support.pinecone_standin import API_KEY as PINECONE_KEY
    from tests.support.pinecone_standin import PineconeState, create_pinecone_app

    pinecone = PineconeState(dimension=384, read_lag_seconds=1.5)
    vectors = await start_server(create_pinecone_app(pinecone), "127.0.0.1", 0, lifespan="off")
    try:
        async with embeddings_server() as (server, _):
            harness = await harness_with(
                **rag_settings(server.url, pinecone_api_key=PINECONE_KEY, pinecone_host=vectors.url)
            )
            store = StoreSimulation(MERCHANT, seed=11)
            store.create_products(2)
            for event in store.events:
                assert (await harness.send(encode(event))).status_code == 200
            await harness.settle()
            created = len(store.events)
            store.delete_product(0)
            store.update_product_price(1, Decimal("77.50"))
            for event in store.events[created:]:
                assert (await harness.send(encode(event))).status_code == 200
            await harness.settle()
            await asyncio.sleep(1.8)  # every acknowledged write readable now
            namespace = pinecone.space(f"merchant-{MERCHANT}")
            assert set(namespace) == {f"product:{store.product_ids[1]}"}
            assert namespace[f"product:{store.product_ids[1]}"]["metadata"]["price"] == 77.5
            deletes = [body for op, body in pinecone.calls if op == "delete"]
            assert deletes and all(
                body["ids"] == [f"product:{store.product_ids[0]}"] for body in deletes
            )
            assert not [op for op, _ in pinecone.calls if op == "fetch"]  # nothing judged by reads
    finally:
        await vectors.stop()


async def test_a_replica_behind_the_load_is_read_again_not_indexed(rag_stack, monkeypatch):
    """Through ClickHouse Cloud's load balancer the embed step can read a replica that has not
    seen the insert it was told about. What it read is older than the announced version: it
    indexes nothing for that document and asks QStash to deliver again. (No replicated
    ClickHouse runs here: the first read answers the state before the update, as such a
    replica would.)"""
    harness = rag_stack.harness
    store = StoreSimulation(MERCHANT, seed=12)
    store.create_products(1)
    await rag_stack.send_all(store.events)
    await rag_stack.drain()
    doc_id = f"product:{store.product_ids[0]}"
    before = await rag_stack.vectors(MERCHANT)
    source = harness.container.rag.indexer._source
    stale_state = await source.products(MERCHANT, [store.product_ids[0]])
    real_products, stale_reads = source.products, []

    async def replica_behind(merchant, ids):
        if not stale_reads:
            stale_reads.append(ids)
            return stale_state
        return await real_products(merchant, ids)

    monkeypatch.setattr(source, "products", replica_behind)
    store.update_product_price(0, Decimal("61.25"))
    await rag_stack.send_all(store.events[-1:])
    await rag_stack.drain()
    assert stale_reads  # the stale answer was given once
    after = await rag_stack.vectors(MERCHANT)
    assert after[doc_id]["price"] == 61.25 != before[doc_id]["price"]
    assert harness.metric("pipeline_delivery_failures_total", reason="embed") >= 1
