"""Queues, flow control, schedules and callbacks of the local QStash-compatible server, driven by
the official `qstash` SDK over real HTTP, including restarts (the behaviour Upstash documents
in features/queues.mdx, flowcontrol.mdx, schedules.mdx and callbacks.mdx)."""

import asyncio
import base64
import json
import sqlite3
import time

import pytest
import pytest_asyncio
from data_pipeline.devtools.qstash_server.schedules import next_tick_ms
from data_pipeline.devtools.qstash_server.server import QStashDevConfig, QStashDevServer
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


class Restartable:
    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.server: QStashDevServer | None = None

    async def start(self) -> AsyncQStash:
        config = QStashDevConfig(data_dir=self.data_dir, port=0)
        self.server = await QStashDevServer(config).start()
        return AsyncQStash(DEV_QSTASH_TOKEN, base_url=self.server.url, retry=False)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None


@pytest_asyncio.fixture
async def qstash(tmp_path):
    restartable = Restartable(tmp_path / "q")
    yield restartable
    await restartable.stop()


@pytest_asyncio.fixture
async def client(qstash):
    return await qstash.start()


async def eventually(check, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


# -- flow control ---------------------------------------------------------------------------------
async def test_flow_control_parallelism_bounds_calls_in_flight_across_urls(client, sink):
    sink.delays.update({"/a": 0.3, "/b": 0.3})
    control = {"key": "worker", "parallelism": 2}
    for i in range(8):
        await client.message.publish(
            url=sink.url + ("/a" if i % 2 else "/b"), body=str(i), flow_control=control
        )
    await sink.wait_for("/a", 4)
    await sink.wait_for("/b", 4)
    await eventually(_no_open(sink, "/a", "/b"))
    # The limit is per key, not per URL: never more than two open across both paths.
    assert sink.most_open["*"] == 2


def _no_open(sink, *paths):
    async def check():
        assert all(sink.open_now[path] == 0 for path in paths)

    return check


async def test_flow_control_rate_spreads_calls_over_periods(client, sink):
    for i in range(6):
        await client.message.publish(
            url=sink.url + "/rated", body=str(i), flow_control={"key": "r", "rate": 2, "period": 1}
        )
    deliveries = await sink.wait_for("/rated", 6, timeout=10)
    starts = sorted(d.at for d in deliveries)
    # Two per one-second window: the fifth call cannot start before two windows have passed.
    assert starts[4] - starts[0] >= 1.8
    assert all(later - earlier >= 0.9 for earlier, later in zip(starts, starts[2:], strict=False))


async def test_a_paused_flow_control_key_holds_its_messages_until_resumed(client, sink):
    first = await client.message.publish(
        url=sink.url + "/held", body="1", flow_control={"key": "held", "parallelism": 5}
    )
    await sink.wait_for("/held", 1)
    await client.flow_control.pause("held")
    for i in range(3):
        await client.message.publish(
            url=sink.url + "/held", body=str(i), flow_control={"key": "held", "parallelism": 5}
        )
    await asyncio.sleep(0.5)
    assert len(sink.to("/held")) == 1
    info = await client.flow_control.get("held")
    assert info.is_paused and info.wait_list_size == 3
    await client.flow_control.resume("held")
    await sink.wait_for("/held", 4)
    assert first.message_id


async def test_a_pinned_parallelism_overrides_the_messages_config(client, sink):
    sink.delays["/pinned"] = 0.3
    await client.message.publish(
        url=sink.url + "/pinned", body="seed", flow_control={"key": "p", "parallelism": 10}
    )
    await client.flow_control.pin("p", {"parallelism": 1})
    for i in range(4):
        await client.message.publish(
            url=sink.url + "/pinned", body=str(i), flow_control={"key": "p", "parallelism": 10}
        )
    await sink.wait_for("/pinned", 5)
    await eventually(_no_open(sink, "/pinned"))
    assert sink.most_open["/pinned"] == 1
    info = await client.flow_control.get("p")
    assert info.is_pinned_parallelism and info.parallelism_max == 1


async def test_flow_control_errors_are_named(client):
    with pytest.raises(QStashError, match="404"):
        await client.flow_control.get("never-used")
    with pytest.raises(QStashError, match="flow-control rate"):
        await client.message.publish(
            url="http://127.0.0.1:9/x", body="x", flow_control={"key": "k", "rate": 0}
        )


async def test_flow_control_pause_and_pins_survive_a_restart(qstash, client, sink):
    await client.message.publish(
        url=sink.url + "/x", body="x", flow_control={"key": "durable", "rate": 5}
    )
    await client.flow_control.pause("durable")
    await client.flow_control.pin("durable", {"parallelism": 2})
    await qstash.stop()
    client = await qstash.start()
    info = await client.flow_control.get("durable")
    assert info.is_paused and info.is_pinned_parallelism and info.parallelism_max == 2


# -- queues ---------------------------------------------------------------------------------------
async def test_a_queue_delivers_in_order_and_waits_for_retries(client, sink):
    sink.fail_next("/fifo", 500, times=2, **{"Retry-After": "0"})
    for i in range(4):
        await client.message.enqueue(queue="orders", url=sink.url + "/fifo", body=str(i))
    deliveries = await sink.wait_for("/fifo", 6)
    # The first message fails twice and is retried before the second is even attempted.
    assert [d.body for d in deliveries] == [b"0", b"0", b"0", b"1", b"2", b"3"]


async def test_queue_parallelism_and_pause(client, sink):
    sink.delays["/par"] = 0.3
    await client.queue.upsert("wide", parallelism=3)
    await client.queue.pause("wide")
    for i in range(6):
        await client.message.enqueue(queue="wide", url=sink.url + "/par", body=str(i))
    await asyncio.sleep(0.4)
    queue = await client.queue.get("wide")
    assert sink.to("/par") == [] and queue.paused and queue.lag == 6
    await client.queue.resume("wide")
    await sink.wait_for("/par", 6)
    await eventually(_no_open(sink, "/par"))
    assert sink.most_open["/par"] == 3
    assert (await client.queue.get("wide")).lag == 0


async def test_queued_messages_survive_a_restart_in_order(qstash, client, sink):
    await client.queue.upsert("durable", parallelism=1, paused=True)
    for i in range(5):
        await client.message.enqueue(queue="durable", url=sink.url + "/restart", body=str(i))
    await qstash.stop()
    client = await qstash.start()
    queue = await client.queue.get("durable")
    assert queue.paused and queue.lag == 5
    await client.queue.resume("durable")
    deliveries = await sink.wait_for("/restart", 5)
    assert [d.body for d in deliveries] == [b"0", b"1", b"2", b"3", b"4"]


async def test_deleting_a_queue_cancels_its_messages(client, sink):
    await client.queue.upsert("doomed", paused=True)
    result = await client.message.enqueue(queue="doomed", url=sink.url + "/doomed", body="x")
    await client.queue.delete("doomed")
    assert all(q.name != "doomed" for q in await client.queue.list())
    with pytest.raises(QStashError, match="404"):
        await client.message.get(result.message_id)


async def test_invalid_queue_requests_are_refused(client):
    with pytest.raises(QStashError, match="queue name"):
        await client.message.enqueue(queue="bad name", url="http://127.0.0.1:9/x", body="x")
    with pytest.raises(QStashError, match="parallelism"):
        await client.queue.upsert("q", parallelism=0)
    with pytest.raises(QStashError, match="404"):
        await client.queue.get("missing")


# -- callbacks ------------------------------------------------------------------------------------
async def test_a_callback_reports_each_attempt_signed_for_its_own_url(client, sink):
    sink.fail_next("/target", 503, **{"Retry-After": "0"})
    result = await client.message.publish(
        url=sink.url + "/target",
        body="payload",
        retries=2,
        callback=sink.url + "/callback",
        callback_headers={"Forward-X-Tenant": "t1"},
    )
    callbacks = await sink.wait_for("/callback", 2)
    first, second = (json.loads(d.body) for d in callbacks)
    assert (first["status"], first["retried"]) == (503, 0)
    assert (second["status"], second["retried"], second["maxRetries"]) == (200, 1, 2)
    assert second["sourceMessageId"] == result.message_id
    assert base64.b64decode(second["sourceBody"]) == b"payload"
    assert base64.b64decode(second["body"]) == b"ok"
    assert callbacks[1].headers["x-tenant"] == "t1"
    RECEIVER.verify(
        signature=callbacks[1].headers["upstash-signature"],
        body=callbacks[1].body.decode(),
        url=sink.url + "/callback",
    )


async def test_a_failure_callback_fires_once_with_the_dead_letter_id(client, sink):
    sink.fail_next("/broken", 500, times=2, **{"Retry-After": "0"})
    await client.message.publish(
        url=sink.url + "/broken",
        body="x",
        retries=1,
        failure_callback=sink.url + "/failed",
    )
    (delivery,) = await sink.wait_for("/failed", 1)
    document = json.loads(delivery.body)
    assert document["status"] == 500 and document["retried"] == 1
    letter = await client.dlq.get(document["dlqId"])
    assert letter.message_id == document["sourceMessageId"]
    await asyncio.sleep(0.3)
    assert len(sink.to("/failed")) == 1


async def test_the_next_queued_message_waits_for_the_callback(client, sink):
    sink.delays["/slow-callback"] = 0.5
    for i in range(2):
        await client.message.enqueue(
            queue="with-callbacks",
            url=sink.url + "/step",
            body=str(i),
            callback=sink.url + "/slow-callback",
        )
    await sink.wait_for("/step", 2)
    (callback,) = sink.to("/slow-callback")[:1]
    second_step = sink.to("/step")[1]
    assert second_step.at >= callback.at + 0.45


# -- schedules ------------------------------------------------------------------------------------
def test_cron_ticks_follow_the_time_zone_prefix():
    start = 1_764_640_800_000  # 2025-12-02 02:00 UTC
    assert next_tick_ms("*/5 * * * *", start) == start + 5 * 60_000
    new_york_4am = 1_764_666_000_000  # 2025-12-02 09:00 UTC
    assert next_tick_ms("CRON_TZ=America/New_York 0 4 * * *", start) == new_york_4am


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("* * * *", "5 fields"),
        ("61 * * * *", "invalid Upstash-Cron"),
        ("CRON_TZ=Mars/Olympus 0 4 * * *", "CRON_TZ"),
    ],
)
async def test_invalid_schedules_are_refused_by_name(client, cron, message):
    with pytest.raises(QStashError, match=message):
        await client.schedule.create(destination="http://127.0.0.1:9/x", cron=cron)


async def test_a_schedule_fires_with_its_id_and_resumes_after_a_restart(qstash, client, sink):
    schedule_id = await client.schedule.create(
        destination=sink.url + "/tick",
        cron="0 0 1 1 *",
        body="tick",
        label="cdc-drain",
        schedule_id="cdc-drain",
    )
    assert schedule_id == "cdc-drain"
    await qstash.stop()
    # The server was down when a tick was due: it fires once on start, then follows the cron.
    database = sqlite3.connect(qstash.data_dir / "qstash.sqlite3")
    document = json.loads(database.execute("SELECT document FROM schedules").fetchone()[0])
    document["next_ms"] = int(time.time() * 1000) - 60_000
    database.execute("UPDATE schedules SET document = ?", (json.dumps(document),))
    database.commit()
    database.close()
    client = await qstash.start()
    (delivery,) = await sink.wait_for("/tick", 1)
    assert delivery.headers["upstash-schedule-id"] == "cdc-drain"
    RECEIVER.verify(
        signature=delivery.headers["upstash-signature"], body="tick", url=sink.url + "/tick"
    )

    async def recorded():
        schedule = await client.schedule.get("cdc-drain")
        assert schedule.last_schedule_states and "SUCCESS" in (
            s.value for s in schedule.last_schedule_states.values()
        )
        return schedule

    schedule = await eventually(recorded)
    assert schedule.next_schedule_time > time.time() * 1000 and schedule.label == "cdc-drain"
    await asyncio.sleep(0.3)
    assert len(sink.to("/tick")) == 1


async def test_a_paused_schedule_is_kept_paused_across_restarts(qstash, client):
    await client.schedule.create(
        destination="http://127.0.0.1:9/x", cron="* * * * *", schedule_id="s1"
    )
    await client.schedule.pause("s1")
    await qstash.stop()
    client = await qstash.start()
    assert (await client.schedule.get("s1")).paused
    await client.schedule.delete("s1")
    with pytest.raises(QStashError, match="404"):
        await client.schedule.get("s1")


async def test_schedules_never_store_the_callers_token(qstash, client):
    await client.schedule.create(destination="http://127.0.0.1:9/x", cron="* * * * *")
    await qstash.stop()
    raw = (qstash.data_dir / "qstash.sqlite3").read_bytes()
    assert DEV_QSTASH_TOKEN.encode() not in raw


# -- labels and message retention -----------------------------------------------------------------
async def test_labels_filter_logs_and_the_dlq(client, sink):
    sink.fail_next("/labelled", 500)
    failed = await client.message.publish(
        url=sink.url + "/labelled", body="x", retries=0, label="billing"
    )
    await client.message.publish(url=sink.url + "/other", body="y", label="other")

    async def dead():
        page = await client.dlq.list(filter={"label": "billing"})
        assert [m.message_id for m in page.messages] == [failed.message_id]

    await eventually(dead)
    assert (await client.dlq.list(filter={"label": "nope"})).messages == []

    async def logged():
        logs = (await client.log.list(filter={"label": "other"})).logs
        assert logs and all(entry.label == "other" for entry in logs)
        assert LogState.DELIVERED in {entry.state for entry in logs}

    await eventually(logged)


async def test_a_delivered_message_stays_readable_for_a_while(client, sink):
    result = await client.message.publish(url=sink.url + "/quick", body="x", label="kept")
    await sink.wait_for("/quick", 1)

    async def delivered():
        logs = (await client.log.list(filter={"message_id": result.message_id})).logs
        assert LogState.DELIVERED in {entry.state for entry in logs}

    await eventually(delivered)
    assert (await client.message.get(result.message_id)).label == "kept"
