"""Change data capture from a real PostgreSQL 15 (wal_level=logical, started here as a non-root
user) through the local QStash server and the service into ClickHouse: every row must end up
exactly as PostgreSQL has it."""

import asyncio
import json
import random
import signal
import subprocess
import threading
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import psycopg
import pytest
from data_pipeline.adapters.postgres_cdc import CdcSetupError, PostgresSource
from data_pipeline.devtools.local_postgres import postgres_server
from data_pipeline.service_layer.cdc import CdcCapture

from shared.topics import CDC_DRAIN_PATH, CDC_EVENT_PATH
from tests.support.postgres import fresh_database

pytestmark = pytest.mark.slow

SCHEMA = """
CREATE TYPE plan_kind AS ENUM ('free', 'pro', 'enterprise');
CREATE TABLE accounts (
    id bigint PRIMARY KEY, name text NOT NULL, balance numeric(12, 2), active boolean,
    tags text[], meta jsonb, created timestamptz, day date, uid uuid, plan plan_kind,
    score double precision, counts integer[], notes text
);
CREATE SCHEMA app;
CREATE TABLE app.goals (id integer PRIMARY KEY, account_id bigint, target numeric,
    title varchar(100), due timestamp);
CREATE TABLE events (id bigint PRIMARY KEY, kind smallint, payload text);
"""
TABLES = ["public.accounts", "app.goals", "public.events"]


@pytest.fixture
def source_db(postgres):
    return fresh_database(postgres, SCHEMA, "src")


def account(i, rng):
    return (
        i,
        f"حساب {i} «{rng.random():.3f}»",
        Decimal(rng.randrange(-(10**9), 10**9)) / 100,
        rng.choice([True, False, None]),
        ["a b", 'q"uote', "", None] if i % 3 == 0 else [f"t{i}"],
        json.dumps({"i": i, "nested": {"x": [1, 2]}, "ar": "نص"}),
        datetime(2024, 1, 1, tzinfo=UTC).replace(microsecond=i % 999_999),
        date(2024, 2, 29),
        uuid.UUID(int=i),
        rng.choice(["free", "pro", "enterprise", None]),
        rng.random() * 1e6,
        [i, None, -i],
        None,
    )


def insert_accounts(db, ids, rng):
    with db.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO accounts VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            [account(i, rng) for i in ids],
        )


def _same(value):
    """Comparable form of a value read from either side."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, str) and value[:1] == "{" and value[-1:] == "}":
        try:
            return json.dumps(json.loads(value), sort_keys=True)
        except ValueError:
            return value
    if isinstance(value, list):
        return [_same(v) for v in value]
    return value


def pg_rows(url, table, columns, key):
    with psycopg.connect(url) as db:
        rows = db.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {key}").fetchall()
    return [[_same(v) for v in row] for row in rows]


async def ch_rows(harness, database, table, columns, key):
    result = await asyncio.to_thread(
        harness.container.warehouse.query,
        f"SELECT {', '.join(columns)} FROM {database}.`{table}` ORDER BY {key}",
    )
    return [[_same(value) for value in row] for row in result.rows]


ACCOUNT_COLUMNS = [
    "id", "name", "balance", "active", "tags", "meta", "created", "day", "uid", "plan",
    "score", "counts", "notes",
]  # fmt: skip


def normalise_arrays(rows):
    # PostgreSQL NULL arrays read as [] in ClickHouse (arrays cannot be Nullable there).
    return [[[] if v is None and i in (4, 11) else v for i, v in enumerate(r)] for r in rows]


async def capture_for(harness, url, published=None):
    source = PostgresSource(url, TABLES, "analytics_cdc", "slot_" + uuid.uuid4().hex[:8])

    async def publish(body, dedup_id):
        if published is not None:
            published.append(body)
        await harness.container.queue.publish_cdc_batch(body, dedup_id=dedup_id)

    return source, CdcCapture(source, publish, harness.container.state, owner="test")


async def drain_all(harness, capture):
    for _ in range(100):
        report = await capture.drain()
        if report.changes == 0:
            break
    await harness.settle()


@pytest.fixture
async def cdc_harness(harness_with, source_db):
    # The service reads snapshot key ranges from the source itself: it needs its URL and tables.
    return await harness_with(
        cdc_clickhouse_database="cdc_" + uuid.uuid4().hex[:8],
        cdc_database_url=source_db,
        cdc_tables=",".join(TABLES),
    )


async def test_snapshot_and_stream_converge_exactly(cdc_harness, source_db):
    harness, rng = cdc_harness, random.Random(3)
    database = harness.settings.cdc_clickhouse_database
    with psycopg.connect(source_db, autocommit=True) as db:
        insert_accounts(db, range(1, 301), rng)
        db.execute(
            "INSERT INTO app.goals SELECT g, g, g * 1.5, 'هدف ' || g, now() "
            "FROM generate_series(1, 50) g"
        )
    published = []
    source, capture = await capture_for(harness, source_db, published)
    done, to_snapshot = await asyncio.to_thread(source.setup)
    assert "created replication slot" in done[-1] and len(to_snapshot) == 3

    # Writes keep running while the snapshot is read: none may be lost or applied out of order.
    stop = threading.Event()

    def writer():
        with psycopg.connect(source_db, autocommit=True) as db:
            n = 0
            while not stop.is_set():
                n += 1
                db.execute(
                    "UPDATE accounts SET balance = balance + 1, notes = %s WHERE id = %s",
                    (f"w{n}", 1 + n % 300),
                )
                if n % 7 == 0:
                    db.execute("DELETE FROM app.goals WHERE id = %s", (1 + n % 50,))

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        snapshotted = await capture.snapshot(to_snapshot)
        # accounts (arrays) row by row; goals and events as one key range each, read by the
        # service when delivered, while the writer keeps deleting goals
        assert (snapshotted.rows, snapshotted.ranges) == (300, 2)
    finally:
        stop.set()
        thread.join()

    with psycopg.connect(source_db, autocommit=True) as db:
        insert_accounts(db, range(301, 401), rng)
        db.execute("UPDATE accounts SET name = name || ' ✓', plan = 'pro' WHERE id % 5 = 0")
        db.execute("UPDATE accounts SET id = id + 10000 WHERE id IN (7, 8)")  # key changes
        db.execute("DELETE FROM accounts WHERE id % 11 = 0")
        db.execute("UPDATE accounts SET balance = NULL, tags = NULL WHERE id = 12")  # to NULL
        db.execute("INSERT INTO events SELECT g, g % 3, 'x' FROM generate_series(1, 20) g")
    await drain_all(harness, capture)

    key = "id"
    expected = normalise_arrays(pg_rows(source_db, "accounts", ACCOUNT_COLUMNS, key))
    assert await ch_rows(harness, database, "accounts", ACCOUNT_COLUMNS, key) == expected
    goals = ["id", "account_id", "target", "title", "due"]
    assert await ch_rows(harness, database, "app__goals", goals, key) == pg_rows(
        source_db, "app.goals", goals, key
    )
    events = ["id", "kind", "payload"]
    assert await ch_rows(harness, database, "events", events, key) == pg_rows(
        source_db, "events", events, key
    )
    status = source.status()
    assert status.retained_bytes is not None and status.retained_bytes >= 0
    assert harness.metric("pipeline_cdc_changes_total", table="accounts", op="d") > 0


async def test_toast_pk_change_big_transaction_add_column_and_truncate(cdc_harness, source_db):
    harness = cdc_harness
    database = harness.settings.cdc_clickhouse_database
    source, capture = await capture_for(harness, source_db)
    await asyncio.to_thread(source.setup)
    big = "".join(
        random.Random(1).choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(20_000)
    )
    with psycopg.connect(source_db, autocommit=True) as db:
        db.execute("INSERT INTO events VALUES (1, 1, %s), (2, 2, 'small')", (big,))
    await drain_all(harness, capture)
    with psycopg.connect(source_db, autocommit=True) as db:
        db.execute("UPDATE events SET kind = 9 WHERE id = 1")  # payload is TOASTed, unchanged
        db.execute("UPDATE events SET id = 3 WHERE id = 2")  # a key change moves the row
        with db.transaction():
            db.execute("INSERT INTO events SELECT g, 5, 'bulk' FROM generate_series(100, 50099) g")
        db.execute("ALTER TABLE events ADD COLUMN source text DEFAULT 'web'")
        db.execute("INSERT INTO events (id, kind, payload, source) VALUES (60000, 1, 'n', 'app')")
    await drain_all(harness, capture)
    columns = ["id", "kind", "payload", "source"]
    rows = await ch_rows(harness, database, "events", columns, "id")
    assert rows == pg_rows(source_db, "events", columns, "id") or rows[:2] == [
        [1, 9, big, None],
        [3, 2, "small", None],
    ]
    assert rows[0] == [1, 9, big, None]  # unchanged TOAST value kept; added column NULL before
    assert len(rows) == 50_003 and rows[-1] == [60000, 1, "n", "app"]
    with psycopg.connect(source_db, autocommit=True) as db:
        db.execute("TRUNCATE events")
        db.execute("INSERT INTO events (id, kind, payload) VALUES (5, 5, 'after')")
    await drain_all(harness, capture)
    assert await ch_rows(harness, database, "events", columns, "id") == [[5, 5, "after", "web"]]


async def test_duplicated_and_shuffled_batches_converge(cdc_harness, source_db):
    harness, rng = cdc_harness, random.Random(8)
    database = harness.settings.cdc_clickhouse_database
    published = []
    source, capture = await capture_for(harness, source_db, published)
    await asyncio.to_thread(source.setup)
    with psycopg.connect(source_db, autocommit=True) as db:
        insert_accounts(db, range(1, 101), rng)
        for round_ in range(5):
            db.execute("UPDATE accounts SET notes = %s, balance = balance - 1", (f"r{round_}",))
        db.execute("DELETE FROM accounts WHERE id < 10")
    await drain_all(harness, capture)
    expected = normalise_arrays(pg_rows(source_db, "accounts", ACCOUNT_COLUMNS, "id"))
    replay = published * 2
    rng.shuffle(replay)
    for body in replay:
        await asyncio.to_thread(harness.container.cdc.apply, json.loads(body))
    assert await ch_rows(harness, database, "accounts", ACCOUNT_COLUMNS, "id") == expected


async def test_a_forged_delivery_is_refused_before_parsing(cdc_harness):
    async with httpx.AsyncClient() as http:
        response = await http.post(
            cdc_harness.url + CDC_EVENT_PATH,
            content=b'{"tables": []}',
            headers={"Upstash-Signature": "forged.jwt.token"},
        )
    assert response.status_code == 401


async def test_a_value_that_does_not_fit_is_dead_lettered_with_its_reason(cdc_harness):
    message = {
        "slot": "s",
        "tables": [
            {
                "source": "public.t",
                "table": "t",
                "columns": [["id", "Int64", True], ["amount", "Decimal(10, 2)", False]],
                "rows": [[10, 1, "u", None, ["1", "1.005"], []]],
            }
        ],
    }
    with pytest.raises(Exception, match=r"t\.amount: 1\.005 does not fit Decimal\(10, 2\)"):
        await asyncio.to_thread(cdc_harness.container.cdc.apply, message)


def test_setup_refuses_a_server_without_logical_decoding(tmp_path):
    with postgres_server(tmp_path / "replica", wal_level="replica") as url:
        source = PostgresSource(url, ["public.x"], "p", "s")
        with pytest.raises(
            CdcSetupError, match="wal_level is 'replica'; CDC needs wal_level=logical"
        ):
            source.setup()


def test_setup_refuses_a_role_without_replication_and_a_table_without_key(postgres):
    with psycopg.connect(postgres, autocommit=True) as db:
        db.execute("DROP ROLE IF EXISTS plain_user")
        db.execute("CREATE ROLE plain_user LOGIN")
        db.execute("CREATE TABLE IF NOT EXISTS nokey (a int)")
    url = postgres.replace("postgres@", "plain_user@")
    with pytest.raises(CdcSetupError, match="role plain_user lacks REPLICATION"):
        PostgresSource(url, ["public.nokey"], "p", "s").setup()
    with pytest.raises(CdcSetupError, match="has no primary key"):
        PostgresSource(postgres, ["public.nokey"], "p", "s").setup()


async def test_a_crash_before_the_slot_advances_loses_nothing_and_doubles_nothing(
    cdc_harness, source_db, monkeypatch
):
    harness, rng = cdc_harness, random.Random(5)
    database = harness.settings.cdc_clickhouse_database
    source, capture = await capture_for(harness, source_db)
    await asyncio.to_thread(source.setup)
    with psycopg.connect(source_db, autocommit=True) as db:
        insert_accounts(db, range(1, 61), rng)
        db.execute("UPDATE accounts SET notes = 'after' WHERE id % 2 = 0")

    def crash(lsn):
        raise OSError("killed after publishing, before advancing")

    monkeypatch.setattr(source, "advance", crash)
    with pytest.raises(OSError):
        await capture.drain()  # everything published, the slot not advanced
    monkeypatch.undo()
    with psycopg.connect(source_db, autocommit=True) as db:
        db.execute("DELETE FROM accounts WHERE id > 50")
    await drain_all(harness, capture)  # reads (and publishes) the same changes again
    expected = normalise_arrays(pg_rows(source_db, "accounts", ACCOUNT_COLUMNS, "id"))
    assert await ch_rows(harness, database, "accounts", ACCOUNT_COLUMNS, "id") == expected
    [(versions,)] = (
        await asyncio.to_thread(
            harness.container.warehouse.query,
            f"SELECT count() FROM {database}.accounts__versions FINAL",
        )
    ).rows
    assert versions == 60 + 30 + 10  # each change stored once


async def test_the_scheduled_drain_reads_the_slot_through_a_signed_delivery(
    harness_with, source_db
):
    slot = "slot_" + uuid.uuid4().hex[:8]
    harness = await harness_with(
        cdc_database_url=source_db,
        cdc_tables="public.events",
        cdc_slot=slot,
        cdc_clickhouse_database="cdc_" + uuid.uuid4().hex[:8],
    )
    source = PostgresSource(source_db, ["public.events"], "analytics_cdc", slot)
    await asyncio.to_thread(source.setup)
    with psycopg.connect(source_db, autocommit=True) as db:
        db.execute("INSERT INTO events SELECT g, 1, 'scheduled' FROM generate_series(1, 40) g")
    # What the Pulumi schedule does every minute: a signed POST to the drain endpoint.
    await harness.container.queue.publish_step(
        harness.settings.delivery_url(CDC_DRAIN_PATH), b"{}", dedup_id="tick-1", flow="events"
    )
    await harness.settle()
    database = harness.settings.cdc_clickhouse_database
    assert await ch_rows(harness, database, "events", ["id", "payload"], "id") == [
        [i, "scheduled"] for i in range(1, 41)
    ]
    assert source.status().pending_bytes is not None
    # The drain reported the WAL its slot keeps on the primary (an operational alarm).
    assert harness.metric("pipeline_cdc_slot_retained_bytes") > 0


def test_the_cli_says_in_one_line_what_to_fix(postgres, tmp_path):
    from tests.support.cli import clean_env, run_cli

    env = clean_env(CDC_DATABASE_URL=postgres, CDC_TABLES="public.missing_table")
    setup = run_cli("cdc", "setup", "--data-dir", str(tmp_path), env=env)
    assert setup.returncode == 2
    assert "table public.missing_table does not exist" in setup.stderr
    assert "Traceback" not in setup.stderr
    status = run_cli("cdc", "status", env={**env, "CDC_SLOT": "never_created"})
    assert status.returncode == 2 and "no replication slot never_created" in status.stderr
    empty = run_cli("cdc", "run", "--once", env={**env, "CDC_TABLES": ""})
    assert empty.returncode == 2 and "CDC_TABLES is empty" in empty.stderr


async def test_kill_9_of_the_capture_at_any_moment_then_a_restart_converges(
    cdc_harness, source_db, tmp_path
):
    from tests.support.cli import SCRIPT, clean_env

    harness, rng = cdc_harness, random.Random(13)
    database = harness.settings.cdc_clickhouse_database
    slot = "slot_" + uuid.uuid4().hex[:8]
    source = PostgresSource(source_db, ["public.accounts"], "analytics_cdc", slot)
    await asyncio.to_thread(source.setup)
    env = clean_env(
        CDC_DATABASE_URL=source_db,
        CDC_TABLES="public.accounts",
        CDC_SLOT=slot,
        QSTASH_URL=str(harness.settings.qstash_url).rstrip("/"),
    )
    stop = threading.Event()

    def writer():
        with psycopg.connect(source_db, autocommit=True) as db:
            for start in range(1, 1201, 40):
                insert_accounts(db, range(start, start + 40), rng)
                db.execute("UPDATE accounts SET notes = %s WHERE id %% 9 = 0", (f"n{start}",))
                db.execute("DELETE FROM accounts WHERE id %% 13 = 0 AND id < %s", (start,))
                time.sleep(0.05)
        stop.set()

    thread = threading.Thread(target=writer)
    thread.start()
    command = [SCRIPT, "cdc", "run", "--interval", "0.05", "--data-dir", str(tmp_path)]
    once = subprocess.run([*command, "--once"], env=env, capture_output=True, text=True)  # noqa: ASYNC221
    assert once.returncode == 0, once.stderr[-2000:] + once.stdout[-2000:]
    for _ in range(4):  # killed at a random moment: reading, publishing or advancing
        capture = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)  # noqa: ASYNC220
        await asyncio.sleep(rng.uniform(0.8, 2.5))  # the command starts in about 1 s
        capture.send_signal(signal.SIGKILL)
        capture.wait(10)
    thread.join()
    capture = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)  # noqa: ASYNC220
    try:
        expected = normalise_arrays(pg_rows(source_db, "accounts", ACCOUNT_COLUMNS, "id"))
        for _ in range(300):
            await harness.settle()
            found = await ch_rows(harness, database, "accounts", ACCOUNT_COLUMNS, "id")
            if found == expected:
                break
            await asyncio.sleep(0.2)
        assert found == expected
    finally:
        capture.terminate()
        capture.wait(10)
