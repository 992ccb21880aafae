"""The local QStash-compatible server, driven by the official `qstash` SDK over real HTTP."""

import asyncio
import itertools
import time

import httpx
import jwt
import pytest
import pytest_asyncio
from data_pipeline.devtools.qstash_server.server import QStashDevConfig, QStashDevServer
from data_pipeline.devtools.qstash_server.signing import body_claim
from qstash import AsyncQStash, Receiver
from qstash.errors import QStashError
from qstash.log import LogState

from shared.dev_credentials import (
    DEV_QSTASH_CURRENT_SIGNING_KEY,
    DEV_QSTASH_NEXT_SIGNING_KEY,
    DEV_QSTASH_TOKEN,
)
from tests.support.sink import Sink

RECEIVER = Receiver(DEV_QSTASH_CURRENT_SIGNING_KEY, DEV_QSTASH_NEXT_SIGNING_KEY)


@pytest_asyncio.fixture
async def sink():
    running = await Sink().start()
    yield running
    await running.stop()


@pytest_asyncio.fixture
async def server(tmp_path):
    running = await QStashDevServer(QStashDevConfig(data_dir=tmp_path / "q", port=0)).start()
    yield running
    await running.stop()


@pytest_asyncio.fixture
async def client(server):
    return AsyncQStash(DEV_QSTASH_TOKEN, base_url=server.url, retry=False)


def verify(delivery, url):
    RECEIVER.verify(
        signature=delivery.headers["upstash-signature"], body=delivery.body.decode(), url=url
    )


async def test_publish_to_a_url_delivers_a_signed_copy_with_qstash_headers(client, sink):
    url = sink.url + "/hook?tenant=7"
    result = await client.message.publish(
        url=url, body=b'{"a":1}', content_type="application/json", headers={"X-Trace": "t-1"}
    )
    (delivery,) = await sink.wait_for("/hook", 1)
    verify(delivery, url)  # sub is the exact URL, query included
    assert delivery.query == "tenant=7" and delivery.body == b'{"a":1}'
    assert delivery.headers["upstash-message-id"] == result.message_id
    assert delivery.headers["upstash-retried"] == "0"
    assert delivery.headers["x-trace"] == "t-1"
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["user-agent"] == "Upstash-QStash"
    claims = jwt.decode(delivery.headers["upstash-signature"], options={"verify_signature": False})
    assert claims["iss"] == "Upstash" and claims["exp"] - claims["iat"] == 300
    assert claims["body"] == body_claim(b'{"a":1}') and claims["jti"].startswith("jwt_")


async def test_url_groups_fan_out_to_every_endpoint(client, sink):
    await client.url_group.upsert_endpoints(
        "raw-events", [{"url": sink.url + "/a"}, {"url": sink.url + "/b", "name": "b"}]
    )
    results = await client.message.publish(url_group="raw-events", body=b"x")
    assert sorted(r.url for r in results) == [sink.url + "/a", sink.url + "/b"]
    for path in ("/a", "/b"):
        (delivery,) = await sink.wait_for(path, 1)
        assert delivery.headers["upstash-topic-name"] == "raw-events"
    group = await client.url_group.get("raw-events")
    assert {e.name for e in group.endpoints} == {None, "b"}


async def test_publishing_to_an_unknown_or_empty_group_fails_clearly(client):
    with pytest.raises(QStashError, match="404"):
        await client.message.publish(url_group="nope", body=b"x")
    await client.url_group.upsert_endpoints("empty", [{"url": "http://127.0.0.1:9/x"}])
    await client.url_group.remove_endpoints("empty", [{"url": "http://127.0.0.1:9/x"}])
    with pytest.raises(QStashError, match="no endpoints"):
        await client.message.publish(url_group="empty", body=b"x")


async def test_deduplication_ids_suppress_copies_within_the_window(client, sink):
    first = await client.message.publish(url=sink.url + "/d", body=b"1", deduplication_id="k")
    again = await client.message.publish(url=sink.url + "/d", body=b"2", deduplication_id="k")
    content = [
        await client.message.publish(
            url=sink.url + "/c", body=b"same", content_based_deduplication=True
        )
        for _ in range(2)
    ]
    assert (again.message_id, again.deduplicated, first.deduplicated) == (
        first.message_id,
        True,
        False,
    )
    assert [c.deduplicated for c in content] == [False, True]
    await asyncio.sleep(0.3)
    assert [d.body for d in sink.to("/d")] == [b"1"] and len(sink.to("/c")) == 1


async def test_delays_and_not_before_hold_delivery(client, sink):
    started = time.monotonic()
    await client.message.publish(url=sink.url + "/late", body=b"x", delay="1s")
    await client.message.publish(url=sink.url + "/abs", body=b"x", not_before=int(time.time()) + 2)
    (late,) = await sink.wait_for("/late", 1)
    (absolute,) = await sink.wait_for("/abs", 1)
    assert late.at - started >= 0.95 and absolute.at - started >= 1.0


async def test_failures_are_retried_with_the_retry_delay_and_upstash_retried(client, sink):
    sink.fail_next("/flaky", 500, times=2)
    await client.message.publish(url=sink.url + "/flaky", body=b"x", retries=3, retry_delay="200")
    deliveries = await sink.wait_for("/flaky", 3)
    assert [d.headers["upstash-retried"] for d in deliveries] == ["0", "1", "2"]
    gaps = [b.at - a.at for a, b in itertools.pairwise(deliveries)]
    assert all(gap >= 0.18 for gap in gaps)
    assert len({d.headers["upstash-signature"] for d in deliveries}) == 3  # signed afresh


async def test_retry_after_on_a_failed_response_sets_the_next_attempt(client, sink):
    sink.fail_next("/busy", 503, **{"Retry-After": "1"})
    await client.message.publish(url=sink.url + "/busy", body=b"x", retries=1, retry_delay="10")
    first, second = await sink.wait_for("/busy", 2)
    assert second.at - first.at >= 0.95


async def test_non_retryable_489_goes_straight_to_the_dlq(client, sink):
    sink.fail_next("/poison", 489, **{"Upstash-NonRetryable-Error": "true"})
    published = await client.message.publish(url=sink.url + "/poison", body=b'{"bad":1}', retries=5)
    await sink.wait_for("/poison", 1)
    page = await wait_dlq(client, 1)
    (letter,) = page.messages
    assert letter.message_id == published.message_id and letter.response_status == 489
    assert letter.response_body == "scripted 489" and letter.body == '{"bad":1}'
    assert (await client.dlq.get(letter.dlq_id)).dlq_id == letter.dlq_id
    await asyncio.sleep(0.2)
    assert len(sink.to("/poison")) == 1


async def test_exhausted_retries_dead_letter_and_a_dlq_retry_redelivers(client, sink, server):
    sink.fail_next("/down", 500, times=3)
    await client.message.publish(
        url=sink.url + "/down", body=b"payload", retries=2, retry_delay="20"
    )
    (letter,) = (await wait_dlq(client, 1)).messages
    assert letter.response_status == 500 and len(sink.to("/down")) == 3
    retried = await client.http.request(path=f"/v2/dlq/retry/{letter.dlq_id}", method="POST")
    deliveries = await sink.wait_for("/down", 4)
    assert deliveries[-1].headers["upstash-message-id"] == retried["messageId"] != letter.message_id
    assert (await client.dlq.list()).messages == []


async def test_dlq_entries_can_be_deleted_one_or_many(client, sink):
    for path in ("/x1", "/x2", "/x3"):
        sink.fail_next(path, 489, **{"Upstash-NonRetryable-Error": "true"})
        await client.message.publish(url=sink.url + path, body=b"x")
    letters = (await wait_dlq(client, 3)).messages
    await client.dlq.delete(letters[0].dlq_id)
    assert await client.dlq.delete_many([m.dlq_id for m in letters[1:]]) == 2
    with pytest.raises(QStashError, match="404"):
        await client.dlq.get(letters[0].dlq_id)


async def test_pending_messages_survive_a_restart(tmp_path, sink):
    config = QStashDevConfig(data_dir=tmp_path / "q", port=0)
    first = await QStashDevServer(config).start()
    client = AsyncQStash(DEV_QSTASH_TOKEN, base_url=first.url, retry=False)
    await client.message.publish(url=sink.url + "/later", body=b"kept", delay="1s")
    await first.stop()
    assert sink.to("/later") == []
    second = await QStashDevServer(config).start()
    try:
        (delivery,) = await sink.wait_for("/later", 1)
        assert delivery.body == b"kept"
    finally:
        await second.stop()


async def test_the_event_log_reports_delivery(client, sink):
    result = await client.message.publish(url=sink.url + "/logged", body=b"x")
    await sink.wait_for("/logged", 1)
    await asyncio.sleep(0.1)
    logs = await client.log.list(
        filter={"message_id": result.message_id, "state": LogState.DELIVERED}
    )
    assert len(logs.logs) == 1


async def test_messages_can_be_inspected_and_cancelled(client, sink):
    result = await client.message.publish(url=sink.url + "/never", body=b"x", delay="1h")
    assert (await client.message.get(result.message_id)).url == sink.url + "/never"
    await client.message.cancel(result.message_id)
    with pytest.raises(QStashError, match="404"):
        await client.message.get(result.message_id)


async def test_signing_key_rotation_signs_with_the_new_current_key(client, sink):
    keys = await client.signing_key.rotate()
    assert keys.current == DEV_QSTASH_NEXT_SIGNING_KEY
    await client.message.publish(url=sink.url + "/rotated", body=b"x")
    (delivery,) = await sink.wait_for("/rotated", 1)
    Receiver(keys.current, keys.next).verify(
        signature=delivery.headers["upstash-signature"], body="x", url=sink.url + "/rotated"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"callback": "not-a-url"}, "Upstash-Callback url"),
        ({"flow_control": {"key": "k", "parallelism": 0}}, "flow-control parallelism"),
        ({"flow_control": {"key": "bad key!", "rate": 1}}, "Upstash-Flow-Control-Key"),
        ({"retry_delay": "import os"}, "Upstash-Retry-Delay"),
        ({"retries": 99}, "Upstash-Retries"),
        ({"delay": "10 years"}, "Upstash-Delay"),
    ],
)
async def test_invalid_options_are_refused_by_name(client, sink, kwargs, message):
    with pytest.raises(QStashError, match=message):
        await client.message.publish(url=sink.url + "/x", body=b"x", **kwargs)


async def test_requests_need_the_token(server):
    async with httpx.AsyncClient() as http:
        response = await http.post(
            server.url + "/v2/publish/http://127.0.0.1:9/x",
            content=b"x",
            headers={"Authorization": "Bearer wrong"},
        )
    assert response.status_code == 401


async def test_oversized_messages_are_refused(server):
    client = AsyncQStash(DEV_QSTASH_TOKEN, base_url=server.url, retry=False)
    with pytest.raises(QStashError, match="413"):
        await client.message.publish(url="http://127.0.0.1:9/x", body=b"x" * (10 * 1024 * 1024 + 1))


async def wait_dlq(client, count, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        page = await client.dlq.list()
        if len(page.messages) >= count:
            return page
        if time.monotonic() > deadline:
            raise AssertionError(f"DLQ has {len(page.messages)} of {count}")
        await asyncio.sleep(0.05)
