"""Worker deliveries run under QStash flow control, one key per kind of work, against the local
QStash-compatible server (which enforces flow control as Upstash documents it).

In production this is what keeps QStash below the worker function's reserved concurrency (so it
never meets a throttle and burns retries), and what keeps a backfill from taking the slots of
real-time events; intake has its own function and concurrency (tests/infra/test_stack.py).
"""

import asyncio

from data_pipeline.devtools.salla_samples import demo_store, encode

from shared.topics import SYNC_FLOW, SYNC_STEP_PATH


async def test_event_deliveries_never_exceed_their_flow_parallelism(harness_with):
    harness = await harness_with(qstash_flow_parallelism_events=2)
    store = demo_store(seed=5, orders=12)
    gate_seen = {"most": 0, "waited": 0}

    async def watch():
        while True:
            gate = harness.dispatcher.gates.get("events")
            if gate is not None:
                gate_seen["most"] = max(gate_seen["most"], gate.in_flight)
                gate_seen["waited"] = max(gate_seen["waited"], len(gate.waitlist))
            await asyncio.sleep(0.002)

    watcher = asyncio.create_task(watch())
    try:
        answers = await asyncio.gather(*(harness.send(encode(e)) for e in store.events))
        assert {answer.status_code for answer in answers} == {200}
        await harness.settle(timeout=60)
    finally:
        watcher.cancel()
    assert gate_seen["most"] == 2  # at the limit, never over it
    assert gate_seen["waited"] > 0  # the rest waited their turn in QStash, not in a throttle
    info = await harness.container.queue.client.flow_control.get("events")
    assert info.parallelism_max == 2 and info.parallelism_count == 0


async def test_a_stalled_backfill_cannot_hold_up_real_time_events(harness_with):
    harness = await harness_with(qstash_flow_parallelism_sync=1)
    queue = harness.container.queue
    # A backfill whose lane is full (paused here): its steps wait in QStash ...
    await queue.publish_step(
        harness.settings.delivery_url(SYNC_STEP_PATH), b"{}", dedup_id="s-1", flow=SYNC_FLOW
    )
    await queue.client.flow_control.pause("sync")
    await queue.publish_step(
        harness.settings.delivery_url(SYNC_STEP_PATH), b"{}", dedup_id="s-2", flow=SYNC_FLOW
    )
    # ... while webhooks keep being acknowledged and loaded through their own lane.
    store = demo_store(seed=6, orders=4)
    for event in store.events:
        assert (await harness.send(encode(event))).status_code == 200
    await harness.settle_events(timeout=60)
    waiting = await queue.client.flow_control.get("sync")
    assert waiting.is_paused and waiting.wait_list_size == 1
