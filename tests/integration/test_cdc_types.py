"""The CDC type mapping against a real PostgreSQL 15: every value PostgreSQL writes in its text
output converts to the value ClickHouse stores, or is refused with the column named (never
rounded). Hypothesis drives the values; PostgreSQL formats them."""

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal, localcontext

import psycopg
import pytest
from data_pipeline.devtools.local_postgres import postgres_server
from data_pipeline.domain.cdc import SourceType, Unsupported, clickhouse_type, convert, parse_array
from data_pipeline.domain.pgoutput import (
    UNCHANGED,
    Begin,
    Commit,
    Delete,
    Insert,
    Relation,
    Truncate,
    Update,
    decode,
)
from data_pipeline.errors import InvalidPayload
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pg(tmp_path_factory):
    with (
        postgres_server(tmp_path_factory.mktemp("pgtypes")) as url,
        psycopg.connect(url, autocommit=True) as db,
    ):
        db.execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO'")
        yield db


def mapped(db, pg_type):
    db.execute("DROP TABLE IF EXISTS probe")
    db.execute(f"CREATE TABLE probe (v {pg_type})")
    [(oid, modifier)] = db.execute(
        "SELECT atttypid, atttypmod FROM pg_attribute WHERE attrelid = 'probe'::regclass "
        "AND attname = 'v'"
    ).fetchall()
    return clickhouse_type(SourceType(oid, modifier), where="probe.v")


def text_of(db, value, pg_type):
    [(text,)] = db.execute(f"SELECT %s::{pg_type}::text", (value,)).fetchall()
    return text


FAST = settings(max_examples=60, deadline=None)
TEXT = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))


@FAST
@given(st.integers(-(2**63), 2**63 - 1))
def test_bigint_round_trips(pg, value):
    assert convert(text_of(pg, value, "bigint"), mapped(pg, "bigint"), where="t.c") == value


@FAST
@given(st.decimals(min_value=-(10**10) + 1, max_value=10**10 - 1, places=2, allow_nan=False))
def test_numeric_with_a_declared_scale_round_trips(pg, value):
    kind = mapped(pg, "numeric(12, 2)")
    assert kind == "Decimal(12, 2)"
    assert convert(text_of(pg, value, "numeric(12, 2)"), kind, where="t.c") == value


@FAST
@given(st.decimals(allow_nan=False, allow_infinity=False, places=None))
def test_unconstrained_numeric_fits_or_is_refused_never_rounded(pg, value):
    kind = mapped(pg, "numeric")
    text = text_of(pg, str(value), "numeric")
    try:
        stored = convert(text, kind, where="t.amount")
    except Unsupported as error:
        assert "t.amount" in str(error) and "would need rounding" in str(error)
        # Refused only when it truly does not fit: more than 9 decimals, or 10^29 or more.
        with localcontext() as exact:
            exact.prec = 100
            number = Decimal(text)
            needs_rounding = number != number.quantize(Decimal("1e-9"), rounding=ROUND_DOWN)
            assert needs_rounding or abs(number) >= Decimal(10) ** 29
    else:
        assert stored == Decimal(text)


@FAST
@given(TEXT)
def test_text_round_trips(pg, value):
    assert convert(text_of(pg, value, "text"), mapped(pg, "text"), where="t.c") == value


@FAST
@given(
    st.lists(
        st.one_of(st.none(), TEXT),
        max_size=6,
    )
)
def test_text_arrays_round_trip_with_nulls_quotes_and_commas(pg, value):
    [(text,)] = pg.execute("SELECT %s::text[]::text", (value,)).fetchall()
    assert convert(text, mapped(pg, "text[]"), where="t.c") == value


@FAST
@given(st.datetimes(timezones=st.just(UTC)))
def test_timestamptz_round_trips_or_is_refused_outside_the_exact_range(pg, value):
    text = text_of(pg, value, "timestamptz")
    if 1700 <= value.year <= 2254:
        assert convert(text, mapped(pg, "timestamptz"), where="t.c") == value
    else:  # beyond 2**53 microseconds a float on the way would change the last digits
        with pytest.raises(Unsupported, match=r"t\.c: timestamp .* outside what ClickHouse stores"):
            convert(text, mapped(pg, "timestamptz"), where="t.c")


@FAST
@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2299, 12, 31)))
def test_dates_round_trip(pg, value):
    assert convert(text_of(pg, value, "date"), mapped(pg, "date"), where="t.c") == value


@FAST
@given(
    st.dictionaries(
        TEXT.filter(lambda t: len(t) <= 5),
        st.one_of(
            st.integers(-1000, 1000), TEXT.filter(lambda t: len(t) <= 5), st.booleans(), st.none()
        ),
        max_size=4,
    )
)
def test_jsonb_is_kept_as_its_json_text(pg, value):
    stored = convert(text_of(pg, json.dumps(value), "jsonb"), mapped(pg, "jsonb"), where="t.c")
    assert json.loads(stored) == value


def test_the_rest_of_the_mapping(pg):
    assert convert(text_of(pg, True, "boolean"), mapped(pg, "boolean"), where="t.c") is True
    u = uuid.uuid4()
    assert convert(text_of(pg, u, "uuid"), mapped(pg, "uuid"), where="t.c") == u
    assert mapped(pg, "smallint") == "Int16" and mapped(pg, "integer") == "Int32"
    assert mapped(pg, "timestamp") == "DateTime64(6)"
    assert mapped(pg, "varchar(20)") == "String" and mapped(pg, "json") == "String"
    pg.execute("DROP TYPE IF EXISTS mood CASCADE; CREATE TYPE mood AS ENUM ('ok', 'sad')")
    pg.execute("DROP TABLE IF EXISTS probe; CREATE TABLE probe (v mood)")
    [(oid,)] = pg.execute("SELECT 'mood'::regtype::oid").fetchall()
    assert clickhouse_type(SourceType(oid, -1, is_enum=True), where="x") == "LowCardinality(String)"
    with pytest.raises(Unsupported, match=r"t\.c: timestamp 'infinity'"):
        convert("infinity", "DateTime64(6, 'UTC')", where="t.c")
    with pytest.raises(Unsupported, match=r"probe\.v: type point is not mapped"):
        clickhouse_type(SourceType(600, -1, name="point"), where="probe.v")
    assert parse_array("{}") == [] and parse_array('{NULL,"NULL"}') == [None, "NULL"]
    # 29 integer digits fit Decimal(38, 9) (found by Hypothesis: once refused by rounding).
    big = "99999999999999999999999999995"
    assert convert(big, "Decimal(38, 9)", where="t.c") == Decimal(big)
    with pytest.raises(Unsupported, match="would need rounding"):
        convert(big + "0", "Decimal(38, 9)", where="t.c")


def test_pgoutput_messages_decode(pg):
    """Real pgoutput bytes from a slot on this server."""
    pg.execute("DROP TABLE IF EXISTS items; CREATE TABLE items (id int PRIMARY KEY, body text)")
    pg.execute("DROP PUBLICATION IF EXISTS p_items; CREATE PUBLICATION p_items FOR TABLE items")
    pg.execute("SELECT pg_create_logical_replication_slot('s_items', 'pgoutput')")
    big = "z" * 9000 + "".join(str(i) for i in range(3000))
    pg.execute("INSERT INTO items VALUES (1, %s), (2, NULL)", (big,))
    pg.execute("UPDATE items SET id = 3 WHERE id = 2")
    pg.execute("ALTER TABLE items ALTER COLUMN body SET STORAGE EXTERNAL")
    pg.execute("UPDATE items SET id = id WHERE id = 1")
    pg.execute("DELETE FROM items WHERE id = 3")
    pg.execute("TRUNCATE items")
    rows = pg.execute(
        "SELECT data FROM pg_logical_slot_get_binary_changes('s_items', NULL, NULL, "
        "'proto_version', '1', 'publication_names', 'p_items')"
    ).fetchall()
    messages = [decode(bytes(data)) for (data,) in rows]
    kinds = [type(m).__name__ for m in messages]
    assert kinds.count("Begin") == kinds.count("Commit") == 5
    relation = next(m for m in messages if isinstance(m, Relation))
    assert (relation.schema, relation.name) == ("public", "items")
    assert [(c.name, c.is_key) for c in relation.columns] == [("id", True), ("body", False)]
    inserts = [m for m in messages if isinstance(m, Insert)]
    assert [m.new for m in inserts] == [("1", big), ("2", None)]
    updates = [m for m in messages if isinstance(m, Update)]
    assert updates[0].old == ("2", None) and updates[0].new == ("3", None)  # the key changed
    assert updates[1].new[1] in (big, UNCHANGED)
    assert isinstance(next(m for m in messages if isinstance(m, Delete)), Delete)
    assert isinstance(messages[-2], Truncate)
    begin = next(m for m in messages if isinstance(m, Begin))
    commit = next(m for m in messages if isinstance(m, Commit))
    assert commit.end_lsn > begin.final_lsn - 1 and begin.commit_time.tzinfo is UTC
    assert datetime.now(UTC) - begin.commit_time < timedelta(minutes=5)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b"I\x00\x00\x00\x01X", "without a new tuple"),
        (b"Z", "kind 'Z'"),
        (b"B\x00", "truncated"),
    ],
)
def test_malformed_pgoutput_is_a_clear_error(data, reason):
    with pytest.raises(InvalidPayload, match=reason):
        decode(data)
