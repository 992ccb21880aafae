"""Property: whatever the interleaving of an order's versions, duplicates, deletions, cleared
fields and batch boundaries, the read contract shows what a plain reducer over the same
versions says: per field, the newest version that carried it (a value, or a clearing); the
newest version decides deletion. Real transform, real chDB warehouse."""

from __future__ import annotations

import copy
import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from data_pipeline.devtools.salla_samples import encode, js_date, sample_envelope
from data_pipeline.domain.envelope import parse_envelope
from data_pipeline.domain.events import transform
from data_pipeline.domain.model import OrderVersion
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_clickhouse_warehouse import batch_of

AT = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
MERCHANT = 1305146709  # the sample envelopes' merchant
ABSENT = "absent"
FIELDS = ("status", "total", "coupon_code", "discount", "payment_method")
_ids = itertools.count(880_000_001)

states = st.fixed_dictionaries(
    {
        "second": st.integers(0, 4),  # few seconds: same-second versions are common
        "deleted": st.sampled_from([False, False, False, True]),
        "status": st.sampled_from(["under_review", "in_progress", "completed", "canceled"]),
        "coupon": st.sampled_from(["RMD10", "NEW5", None, ABSENT]),  # None: taken off
        "total": st.sampled_from(["100.00", "250.50", "99.99"]),
        "method": st.sampled_from(["mada", None, ABSENT]),  # None: unset
    }
)


def order_event(order_id: int, state: dict) -> dict:
    moment = AT + timedelta(seconds=state["second"])
    if state["deleted"]:
        return {
            "event": "order.deleted",
            "merchant": MERCHANT,
            "created_at": js_date(moment),
            "data": {"id": order_id},
        }
    event = copy.deepcopy(sample_envelope("order.created"))
    event["event"] = "order.updated"
    event["created_at"] = js_date(moment)
    data = event["data"]
    data["id"] = order_id
    data["status"] = {"id": 1, "name": state["status"], "slug": state["status"]}
    data["amounts"]["total"] = {"amount": float(state["total"]), "currency": "SAR"}
    if state["coupon"] is ABSENT:
        del data["amounts"]["discounts"]
    elif state["coupon"] is None:
        data["amounts"]["discounts"] = []
    else:
        data["amounts"]["discounts"] = [
            {"title": "x", "type": "special", "code": state["coupon"], "discount": "5.00"}
        ]
    if state["method"] is ABSENT:
        del data["payment_method"]
    else:
        data["payment_method"] = state["method"]
    return event


def reduce(versions: list[OrderVersion]) -> dict | None:
    """The contract's rule, stated plainly over the domain's versions."""
    ordered = sorted(versions, key=lambda v: (v.version, v.body_key))
    if ordered[-1].is_deleted:
        return None
    state = {}
    for field in FIELDS:
        carried = [v for v in ordered if getattr(v, field) is not None or field in v.cleared]
        state[field] = getattr(carried[-1], field) if carried else None
    return state


@settings(
    max_examples=35,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    history=st.lists(states, min_size=1, max_size=6),
    arrival=st.randoms(use_true_random=False),
    duplicates=st.integers(0, 3),
    batches=st.integers(1, 3),
)
def test_any_interleaving_converges_to_the_reducer(
    warehouse, history, arrival, duplicates, batches
):
    order_id = next(_ids)
    events = [order_event(order_id, state) for state in history]
    if all(e["event"] == "order.deleted" for e in events):
        events.insert(0, order_event(order_id, {**history[0], "deleted": False}))
    versions = [
        entity
        for event in events
        for entity in transform(parse_envelope(encode(event))).entities
        if isinstance(entity, OrderVersion)
    ]
    expected = reduce(versions)
    deliveries = events + [arrival.choice(events) for _ in range(duplicates)]
    arrival.shuffle(deliveries)
    size = -(-len(deliveries) // batches)
    for start in range(0, len(deliveries), size):
        warehouse.write(batch_of(deliveries[start : start + size]))
    rows = warehouse.query(
        f"SELECT {', '.join(FIELDS)} FROM {warehouse.database}.orders "
        "WHERE merchant_id = {m:UInt64} AND order_id = {o:UInt64}",
        {"m": MERCHANT, "o": order_id},
    ).rows
    if expected is None:
        assert rows == []
    else:
        assert rows == [tuple(expected[f] for f in FIELDS)]
    assert expected is None or expected["total"] in {Decimal(s["total"]) for s in history}


def _colliding_bodies(order_id: int) -> tuple[bytes, bytes]:
    """Two distinct bodies of one order, second, kind and status whose versions are equal:
    about one pair in 800,000 collides, so a thousand or two candidates find one."""
    seen: dict[int, bytes] = {}
    state = {"second": 0, "deleted": False, "status": "in_progress", "coupon": ABSENT}
    for cents in range(10_000, 60_000):
        event = order_event(order_id, {**state, "total": f"{cents / 100:.2f}", "method": "mada"})
        body = encode(event)
        version = transform(parse_envelope(body)).entities[0].version
        if version in seen:
            return seen[version], body
        seen[version] = body
    raise AssertionError("no two bodies shared a version")


def test_two_distinct_bodies_sharing_a_version_are_both_kept_and_one_wins_everywhere(
    warehouse,
):
    """Without the body key both rows have one storage key: they collapse, and which state
    survives depends on arrival order and merges. With it both are kept, and the contract
    shows the state of the greater (version, body key), whatever the order of arrival."""
    order_id = next(_ids)
    first, second = _colliding_bodies(order_id)
    versions = [transform(parse_envelope(b)).entities[0] for b in (first, second)]
    assert versions[0].version == versions[1].version
    assert versions[0].body_key != versions[1].body_key
    winner = max(versions, key=lambda v: v.body_key)
    for arrival in ([first, second, first], [second, first, second]):
        warehouse.write(batch_of([json.loads(body) for body in arrival[:1]]))
        warehouse.write(batch_of([json.loads(body) for body in arrival[1:]]))
        [(total, count)] = warehouse.query(
            f"SELECT total, (SELECT count() FROM {warehouse.database}.order_versions "
            "WHERE merchant_id = {m:UInt64} AND order_id = {o:UInt64}) "
            f"FROM {warehouse.database}.orders "
            "WHERE merchant_id = {m:UInt64} AND order_id = {o:UInt64}",
            {"m": MERCHANT, "o": order_id},
        ).rows
        assert total == winner.total
        assert count >= 2  # both bodies stored (copies collapse in merges, distinct never)
        warehouse.execute(f"OPTIMIZE TABLE {warehouse.database}.order_versions FINAL")
        [(distinct,)] = warehouse.query(
            f"SELECT count() FROM {warehouse.database}.order_versions "
            "WHERE merchant_id = {m:UInt64} AND order_id = {o:UInt64}",
            {"m": MERCHANT, "o": order_id},
        ).rows
        assert distinct == 2
