"""The initial snapshot's fast path: PostgreSQL's `COPY … TO STDOUT` text converted by ClickHouse
itself must store exactly what the row-by-row path (`domain.cdc.convert`) stores for the same
rows, and refuse exactly what it refuses (with the column named), whatever the chunking."""

import json
import math
import random
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from data_pipeline.adapters.clickhouse_cdc import CdcSink
from data_pipeline.adapters.postgres_cdc import PostgresSource
from data_pipeline.domain.cdc import Unsupported, clickhouse_type, table_name
from data_pipeline.errors import PermanentError
from data_pipeline.service_layer import cdc as capture_side

from tests.support.postgres import fresh_database

pytestmark = pytest.mark.slow

SCHEMA = """
CREATE TYPE mood AS ENUM ('calm', 'tab\tbed', 'új');
CREATE TABLE wide (
    id bigint PRIMARY KEY, small smallint, mid integer, ident oid, r real, d double precision,
    flag boolean, body text, short varchar(20), fixed char(4), money numeric(12, 2),
    loose numeric, tiny numeric(3, 3), at timestamptz, local timestamp, day date, uid uuid,
    doc json, docb jsonb, feeling mood
);
"""
NASTY_TEXT = [
    "",
    "tab\there",
    "line\nbreak\r\nand\\back\\\\slash",
    "\\N",
    "'quoted' \"double\"",
    "control \x01\x02\x07\x08\x0b\x0c\x1b end",
    "عربي «مرحبا» 🙂",
    "]CDC_REFUSED[",
]


def _row(i, rng):
    def maybe(value):
        return None if rng.random() < 0.15 else value

    base = datetime(2025, 3, 1, tzinfo=UTC)
    return (
        i,
        maybe(rng.randrange(-(2**15), 2**15)),
        maybe(rng.randrange(-(2**31), 2**31)),
        maybe(rng.randrange(0, 2**32)),
        maybe(rng.choice([1.1, -0.0, float("nan"), float("inf"), 3.4e38, rng.random()])),
        maybe(rng.choice([1e-300, float("-inf"), float("nan"), 2.5e300, rng.random() * 1e9])),
        maybe(rng.choice([True, False])),
        maybe(rng.choice(NASTY_TEXT) + str(i)),
        maybe(rng.choice(["a", "x\ty", "ü" * 20])),
        maybe(rng.choice(["ab", "abcd", "\\"])),
        maybe(Decimal(rng.randrange(-(10**12) + 1, 10**12)) / 100),
        maybe(rng.choice(["0", "-0.000000001", "12345678901234567890123456789.5", "1.500000"])),
        maybe(rng.choice(["0.999", "-0.001", "0"])),
        maybe(base + timedelta(microseconds=rng.randrange(-(10**15), 10**15))),
        maybe(datetime(1890, 5, 6, 7, 8, 9, rng.randrange(10**6))),
        maybe(rng.choice([date(2024, 2, 29), date(1850, 1, 1), date(2350, 12, 31)])),
        maybe(uuid.UUID(int=rng.getrandbits(128))),
        maybe(json.dumps({"t": rng.choice(NASTY_TEXT), "n": [1, 2.5]})),
        maybe(json.dumps({"b": rng.choice(NASTY_TEXT)})),
        maybe(rng.choice(["calm", "tab\tbed", "új"])),
    )


@pytest.fixture
def source(postgres):
    return PostgresSource(fresh_database(postgres, SCHEMA, "snap"), ["public.wide"], "pub", "slot")


def _fill(source, rows):
    with source.connect() as db, db.cursor() as cursor:
        cursor.executemany(f"INSERT INTO wide VALUES ({', '.join(['%s'] * 20)})", rows)


def _spec(source):
    with source.connect() as db:
        shape = source.shape(db, "public", "wide")
    columns = [
        [c, clickhouse_type(t, where=f"public.wide.{c}"), c in shape.key]
        for c, t in zip(shape.columns, shape.types, strict=True)
    ]
    return shape, columns


def _text_messages(source, chunk_bytes):
    shape, columns = _spec(source)
    spec = capture_side._TableBatch("public.wide", table_name("public", "wide"), columns)
    bodies = []
    for text, rows in source.snapshot_text(shape, chunk_bytes):
        capture_side._publish_snapshot_text("slot", spec, text, rows, lambda b, _: bodies.append(b))
    return [json.loads(body) for body in bodies]


def _row_message(source):
    shape, columns = _spec(source)
    rows = [[0, 0, "u", None, list(v), []] for chunk in source.snapshot(shape, 500) for v in chunk]
    return {"slot": "slot", "tables": [{"table": "wide", "columns": columns, "rows": rows}]}


def _stored(warehouse, database):
    rows = warehouse.query(f"SELECT * FROM {database}.wide ORDER BY id").rows
    # NaN != NaN: compare floats by their repr, everything else as is
    return [
        tuple(repr(v) if isinstance(v, float) and math.isnan(v) else v for v in row) for row in rows
    ]


def test_copy_text_stores_what_the_row_path_stores(source, warehouse):
    rng = random.Random(20261206)
    _fill(source, [_row(i, rng) for i in range(1, 1501)])
    messages = _text_messages(source, chunk_bytes=16_000)  # many chunks, cut at row ends
    assert len(messages) > 10
    suffix = uuid.uuid4().hex[:8]
    fast, slow = CdcSink(warehouse, f"fast_{suffix}"), CdcSink(warehouse, f"slow_{suffix}")
    loaded = sum(fast.apply(message).counts[("wide", "u")] for message in messages)
    slow.apply(_row_message(source))
    assert loaded == 1500
    fast_rows, slow_rows = _stored(warehouse, fast.database), _stored(warehouse, slow.database)
    assert len(fast_rows) == 1500
    assert fast_rows == slow_rows
    # a redelivered chunk stores nothing new
    fast.apply(messages[3])
    assert _stored(warehouse, fast.database) == fast_rows


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("loose", "1.0000000001", "wide.loose: a value does not fit Decimal(38, 9)"),
        ("loose", "123456789012345678901234567890", "wide.loose: a value does not fit"),
        ("loose", "NaN", "wide.loose: a value does not fit"),
        ("at", "infinity", "wide.at: a timestamp is outside what ClickHouse stores"),
        ("local", "-infinity", "wide.local: a timestamp is outside"),
        ("day", "0044-03-15 BC", "wide.day: a date is outside what ClickHouse stores"),
    ],
)
def test_a_value_the_row_path_refuses_is_refused_with_its_column(
    source, warehouse, column, value, reason
):
    with source.connect() as db:
        db.execute("INSERT INTO wide (id) VALUES (1), (2)")
        db.execute(f"UPDATE wide SET {column} = %s WHERE id = 2", (value,))
    sink = CdcSink(warehouse, f"refuse_{uuid.uuid4().hex[:8]}")
    [message] = _text_messages(source, chunk_bytes=1_000_000)
    with pytest.raises(PermanentError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        sink.apply(message)
    with pytest.raises(Unsupported):  # the row path agrees
        CdcSink(warehouse, f"refuse_{uuid.uuid4().hex[:8]}").apply(_row_message(source))
    assert warehouse.query(f"SELECT count() FROM {sink.database}.wide").rows == [(0,)]


def test_a_chunk_over_the_message_limit_is_split_at_row_ends(source, monkeypatch):
    with source.connect() as db:  # rows of control characters: JSON writes each as \\u00XX
        db.execute(
            "INSERT INTO wide (id, body) SELECT i, repeat(E'\\x01', 300) FROM "
            "generate_series(1, 40) i"
        )
    monkeypatch.setattr(capture_side, "MAX_MESSAGE_BYTES", 5_000)
    messages = _text_messages(source, chunk_bytes=1_000_000)
    assert len(messages) >= 8
    for message in messages:
        assert len(json.dumps(message, separators=(",", ":"))) <= 5_000
        chunk = message["snapshot"]
        assert chunk["text"].endswith("\n") and chunk["text"].count("\n") == chunk["rows"]
    ids = [
        int(line.split("\t")[0]) for m in messages for line in m["snapshot"]["text"].splitlines()
    ]
    assert sorted(ids) == list(range(1, 41))


@pytest.mark.parametrize(
    "chunk",
    [
        "not an object",
        {"table": "wide", "columns": [["id", "Int64", True]], "rows": 1, "text": "1"},
        {"table": "wide", "columns": [["id", "Int64", True]], "rows": -1, "text": ""},
        {"table": "wide", "columns": [["id", "Int64", True]], "text": "1\n"},
        {"table": "wide", "columns": [], "rows": 1, "text": "1\n"},
        {"table": "wi`de", "columns": [["id", "Int64", True]], "rows": 1, "text": "1\n"},
    ],
)
def test_a_malformed_snapshot_chunk_is_refused_before_any_insert(warehouse, chunk):
    sink = CdcSink(warehouse, f"bad_{uuid.uuid4().hex[:8]}")
    with pytest.raises(PermanentError):
        sink.apply({"slot": "slot", "snapshot": chunk})


def test_text_that_does_not_parse_is_permanent_not_retried(warehouse):
    sink = CdcSink(warehouse, f"junk_{uuid.uuid4().hex[:8]}")
    chunk = {"table": "t", "columns": [["id", "Int64", True]], "rows": 1, "text": "seven\n"}
    with pytest.raises(PermanentError, match="unparsable snapshot text"):
        sink.apply({"slot": "slot", "snapshot": chunk})
