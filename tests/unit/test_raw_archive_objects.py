"""Raw archive objects (service_layer/archive.py): grouping, naming, the line format, and what a
rebuild does with lines that are not archive records."""

import gzip
import random
from datetime import UTC, datetime

import orjson
import pytest
from data_pipeline.adapters.warehouse import RawEvent
from data_pipeline.errors import InvalidPayload
from data_pipeline.service_layer.archive import (
    archive_objects,
    archived_event,
    key_parts,
    object_lines,
)

RECEIVED = datetime(2026, 12, 6, 23, 59, tzinfo=UTC)


def raw(merchant, digest, created=None, body=b'{"event":"order.created"}'):
    return RawEvent(
        merchant_id=merchant,
        body_sha256=digest * 64 if len(digest) == 1 else digest,
        event="order.created",
        event_created_at=created,
        received_at=RECEIVED,
        source="webhook",
        body=body,
    )


def test_one_object_per_merchant_and_event_day_each_event_once():
    events = [
        raw(1, "a", datetime(2026, 12, 5, 10, tzinfo=UTC)),
        raw(1, "b", datetime(2026, 12, 5, 23, tzinfo=UTC)),
        raw(1, "a", datetime(2026, 12, 5, 10, tzinfo=UTC)),  # the same event twice in a batch
        raw(1, "c"),  # no created_at: the day it was received
        raw(2, "d", datetime(2026, 12, 5, 10, tzinfo=UTC)),
    ]
    objects = archive_objects(events)
    parts = [key_parts(o.key) for o in objects]
    assert [(m, d.isoformat()) for m, d in parts] == [
        (1, "2026-12-05"),
        (1, "2026-12-06"),
        (2, "2026-12-05"),
    ]
    assert [o.hashes for o in objects] == [("a" * 64, "b" * 64), ("c" * 64,), ("d" * 64,)]
    lines = object_lines(objects[0].data)
    assert [archived_event(line).sha256 for line in lines] == ["a" * 64, "b" * 64]


def test_an_object_is_named_by_its_content_whatever_the_arrival_order():
    events = [raw(1, c, datetime(2026, 12, 5, tzinfo=UTC)) for c in "abcdef"]
    shuffled = random.Random(3).sample(events, len(events))
    assert archive_objects(events) == archive_objects(shuffled)  # same key, same bytes
    other = archive_objects(events[:5])
    assert other[0].key != archive_objects(events)[0].key


def test_a_record_round_trips_body_hash_reception_and_source():
    body = '{"event":"app.store.authorize","data":{"access_token":"[redacted]"}}'
    [archived] = archive_objects([raw(9, "e", None, body.encode())])
    [line] = object_lines(archived.data)
    event = archived_event(line)
    assert event.body == body.encode() and event.sha256 == "e" * 64
    assert event.received_at == RECEIVED and event.source == "webhook"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"not json", "not an archive record"),
        (b"[]", "not an archive record"),
        (orjson.dumps({"v": 2, "sha256": "a" * 64}), "unknown archive format"),
        (orjson.dumps({"v": 1, "sha256": "../x", "body": "{}"}), "not a SHA-256"),
        (
            orjson.dumps({"v": 1, "sha256": "a" * 64, "body": "{}", "received_at": "yesterday"}),
            "not an archive record",
        ),
    ],
)
def test_lines_that_are_not_archive_records_are_refused_with_a_reason(line, reason):
    with pytest.raises(InvalidPayload, match=reason):
        archived_event(line)


def test_an_object_that_is_not_gzip_is_refused():
    with pytest.raises(InvalidPayload, match="not gzip"):
        object_lines(b"plain text")
    assert object_lines(gzip.compress(b"")) == []


@pytest.mark.parametrize(
    "key",
    [
        "merchant=1/date=2026-12-05/" + "a" * 63 + ".jsonl.gz",
        "merchant=x/date=2026-12-05/" + "a" * 64 + ".jsonl.gz",
        "merchant=1/date=2026-12-05/" + "a" * 64 + ".jsonl",
        "merchant=1/date=2026-13-05/" + "a" * 64 + ".jsonl.gz",
        "../merchant=1/date=2026-12-05/" + "a" * 64 + ".jsonl.gz",
    ],
)
def test_keys_not_in_the_layout_are_not_archive_objects(key):
    assert key_parts(key) is None
