"""The warehouse's batch encoding (adapters/clickhouse_batches.py): what a server is sent is the
same Native bytes chDB gets, lz4-framed, as clickhouse-connect's own inserts are."""

from datetime import UTC, datetime

import lz4.frame
import pytest
from data_pipeline.adapters.clickhouse_batches import WRITTEN_COLUMNS, BatchEncoder
from data_pipeline.adapters.warehouse import LoadBatch, RawEvent
from data_pipeline.errors import TransientError

TYPES = {
    "raw_events": (
        "UInt64",
        "FixedString(64)",
        "LowCardinality(String)",
        "Nullable(DateTime64(3, 'UTC'))",
        "DateTime64(3, 'UTC')",
        "LowCardinality(String)",
        "String",
    )
}


def batch():
    event = RawEvent(
        7, "a" * 64, "order.created", None, datetime(2026, 12, 6, tzinfo=UTC), "w", "{}"
    )
    return LoadBatch(raw_events=[event])


def test_columns_match_the_types_given():
    assert len(WRITTEN_COLUMNS["raw_events"]) == len(TYPES["raw_events"])


def test_a_server_gets_the_same_native_bytes_lz4_framed():
    plain = BatchEncoder("analytics", TYPES, None).encode(batch())
    framed = BatchEncoder("analytics", TYPES, "lz4").encode(batch())
    columns, native = plain.inserts["raw_events"]
    assert columns == WRITTEN_COLUMNS["raw_events"]
    assert lz4.frame.decompress(framed.inserts["raw_events"][1]) == native
    assert not native.startswith(b"INSERT")  # the statement is the client's, not the data's
    assert plain.touched == {}  # raw events change no current state


def test_a_value_its_column_cannot_hold_fails_the_encoding():
    bad = LoadBatch(raw_events=[RawEvent(-1, "a" * 64, "x", None, datetime.now(UTC), "w", "{}")])
    with pytest.raises(TransientError, match=r"raw_events failed: .*merchant_id"):
        BatchEncoder("analytics", TYPES, None).encode(bad)
