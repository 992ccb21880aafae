"""The initial snapshot by key ranges: each range read with `COPY … TO STDOUT` by the service and
converted by ClickHouse itself must store exactly what the row-by-row path (`domain.cdc.convert`)
stores for the same rows, and refuse exactly what it refuses (with the column named), whatever
the ranges and chunks; the ranges cover every row once; a hostile range is refused."""

import itertools
import json
import math
import random
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from data_pipeline.adapters.clickhouse_cdc import CdcSink
from data_pipeline.adapters.postgres_cdc import PostgresSource
from data_pipeline.domain.cdc import Unsupported
from data_pipeline.errors import PermanentError
from data_pipeline.service_layer import cdc as capture_side
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

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
    "]REFUSED[",
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


def _loaded(source, sink, rows_per_range, monkeypatch, chunk_bytes=16_000):
    """The snapshot as the service loads it: every key range's message, read and loaded."""
    monkeypatch.setattr(capture_side, "LOAD_CHUNK_BYTES", chunk_bytes)
    with source.connect() as db:
        shape = source.shape(db, "public", "wide")
    loaded = 0
    for after, through in source.key_ranges(shape, rows_per_range):
        message = {"snapshot_range": {"source": "public.wide", "after": after, "through": through}}
        loaded += capture_side.load_snapshot_range(source, sink, json.loads(json.dumps(message)))
    return loaded


def _row_message(source):
    with source.connect() as db:
        shape = source.shape(db, "public", "wide")
    spec = capture_side._spec(shape)
    rows = [[0, 0, "u", None, list(v), []] for chunk in source.snapshot(shape, 500) for v in chunk]
    return {"slot": "slot", "tables": [{"table": "wide", "columns": spec.columns, "rows": rows}]}


def _stored(warehouse, database, table="wide"):
    rows = warehouse.query(f"SELECT * FROM {database}.{table} ORDER BY ALL").rows
    # NaN != NaN: compare floats by their repr, everything else as is
    return [
        tuple(repr(v) if isinstance(v, float) and math.isnan(v) else v for v in row) for row in rows
    ]


def _sink(warehouse, name):
    return CdcSink(warehouse, f"{name}_{uuid.uuid4().hex[:8]}")


def test_copy_text_stores_what_the_row_path_stores(source, warehouse, monkeypatch):
    rng = random.Random(20261206)
    _fill(source, [_row(i, rng) for i in range(1, 1501)])
    fast, slow = _sink(warehouse, "fast"), _sink(warehouse, "slow")
    # 16 ranges, each loaded in several chunks cut at row ends
    assert _loaded(source, fast, rows_per_range=97, monkeypatch=monkeypatch) == 1500
    slow.apply(_row_message(source))
    fast_rows, slow_rows = _stored(warehouse, fast.database), _stored(warehouse, slow.database)
    assert len(fast_rows) == 1500
    assert fast_rows == slow_rows
    # a redelivered range stores nothing new
    _loaded(source, fast, rows_per_range=300, monkeypatch=monkeypatch)
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
    source, warehouse, monkeypatch, column, value, reason
):
    with source.connect() as db:
        db.execute("INSERT INTO wide (id) VALUES (1), (2)")
        db.execute(f"UPDATE wide SET {column} = %s WHERE id = 2", (value,))
    sink = _sink(warehouse, "refuse")
    with pytest.raises(PermanentError, match=re.escape(reason)):
        _loaded(source, sink, rows_per_range=10, monkeypatch=monkeypatch)
    with pytest.raises(Unsupported):  # the row path agrees
        _sink(warehouse, "refuse").apply(_row_message(source))
    assert warehouse.query(f"SELECT count() FROM {sink.database}.wide").rows == [(0,)]


KEYED = """
CREATE TABLE keyed (region char(4), n integer, at timestamptz, body text,
                    PRIMARY KEY (region, n, at));
CREATE TABLE keyless (a integer, b text);
ALTER TABLE keyless REPLICA IDENTITY FULL;
"""


def test_key_ranges_read_every_row_exactly_once_on_a_composite_key(postgres, warehouse):
    url = fresh_database(postgres, KEYED, "keys")
    source = PostgresSource(url, ["public.keyed", "public.keyless"], "pub", "slot")
    with source.connect() as db:
        db.execute(
            "INSERT INTO keyed SELECT r, n, '2026-01-01'::timestamptz + n * interval '1.5 s', "
            "'row ' || n FROM unnest(ARRAY['ab', 'ab ', 'b\\c', 'zz']) r, "
            "generate_series(1, 60) n ON CONFLICT DO NOTHING"
        )
        db.execute("INSERT INTO keyless SELECT g % 7, 'x' FROM generate_series(1, 50) g")
        expected = db.execute("SELECT count(*) FROM keyed").fetchone()[0]
        keyed = source.shape(db, "public", "keyed")
        keyless = source.shape(db, "public", "keyless")
    ranges = list(source.key_ranges(keyed, 13))
    sizes = [
        sum(rows for _, rows in source.snapshot_text(keyed, 1000, after, through))
        for after, through in ranges
    ]
    assert sizes[:-1] == [13] * (len(ranges) - 1)  # in key order, not in the keys' text order
    assert len(ranges) == -(-expected // 13) + (expected % 13 == 0)
    assert ranges[0][0] is None and ranges[-1][1] is None
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))  # contiguous
    lines = [
        line
        for after, through in ranges
        for text, _ in source.snapshot_text(keyed, 1000, after, through)
        for line in text.decode().splitlines()
    ]
    assert len(lines) == len(set(lines)) == expected
    assert list(source.key_ranges(keyless, 13)) == [(None, None)]  # no index to walk
    [(text, rows)] = list(source.snapshot_text(keyless, 10**6))
    assert rows == 50 and text.count(b"\n") == 50


@pytest.mark.parametrize(
    ("range_", "reason"),
    [
        ("public.wide", "needs its source table"),
        ({"source": "public.other"}, "not a captured table"),
        ({"source": "pg_catalog.pg_authid"}, "not a captured table"),
        ({"source": "public.wide", "after": "1"}, "key values as text"),
        ({"source": "public.wide", "after": [1]}, "key values as text"),
        ({"source": "public.wide", "after": ["1", "2"]}, "key values as text"),
        ({"source": "public.wide", "through": ["seven"]}, "invalid input syntax"),
    ],
)
def test_a_hostile_range_is_refused_with_a_reason(source, warehouse, range_, reason):
    with pytest.raises(PermanentError, match=reason):
        capture_side.load_snapshot_range(
            source, _sink(warehouse, "bad"), {"snapshot_range": range_}
        )


def test_text_that_does_not_parse_is_permanent_not_retried(warehouse):
    sink = _sink(warehouse, "junk")
    with pytest.raises(PermanentError, match="unparsable snapshot text"):
        sink.load_text("t", [("id", "Int64", True)], b"seven\n")


PROPERTY = """
CREATE TABLE prop (id bigint PRIMARY KEY, body text, loose numeric, d double precision,
                   at timestamptz, day date);
"""


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))),
            st.one_of(  # mostly values that fit Decimal(38, 9), sometimes ones that don't
                *(st.decimals(-(10**28), 10**28, places=places) for places in (0, 2, 9)),
                st.decimals(allow_nan=False, allow_infinity=False).filter(
                    lambda d: abs(d.adjusted()) < 40
                ),
            ),
            st.floats(allow_nan=True, allow_infinity=True),
            st.datetimes(
                min_value=datetime(1, 1, 1),
                max_value=datetime(9999, 12, 31),
                timezones=st.just(UTC),
            ),
            st.dates(),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_any_values_load_the_same_through_text_or_are_refused_by_both(
    postgres, warehouse, monkeypatch, rows
):
    url = fresh_database(postgres, PROPERTY, "prop")
    source = PostgresSource(url, ["public.prop"], "pub", "slot")
    with source.connect() as db, db.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO prop VALUES (%s, %s, %s, %s, %s, %s)",
            [(i, *row) for i, row in enumerate(rows)],
        )
        shape = source.shape(db, "public", "prop")
    fast, slow = _sink(warehouse, "pfast"), _sink(warehouse, "pslow")
    spec = capture_side._spec(shape)
    message = {
        "tables": [
            {
                "table": "prop",
                "columns": spec.columns,
                "rows": [
                    [0, 0, "u", None, list(v), []]
                    for chunk in source.snapshot(shape, 100)
                    for v in chunk
                ],
            }
        ]
    }
    try:
        slow.apply(message)
        refused = None
    except Unsupported as error:
        refused = error
    range_ = {"snapshot_range": {"source": "public.prop", "after": None, "through": None}}
    event("refused by the row path" if refused else "loaded by the row path")
    if refused is not None:
        with pytest.raises(PermanentError):
            capture_side.load_snapshot_range(source, fast, range_)
        return
    capture_side.load_snapshot_range(source, fast, range_)
    assert _stored(warehouse, fast.database, "prop") == _stored(warehouse, slow.database, "prop")
