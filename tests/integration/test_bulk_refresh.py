"""A bulk import brings the current state of several batches up to date at once, settles an event
only once the read contract shows it, and refreshes any number of objects in statements that
ClickHouse accepts (it refuses a statement longer than `max_query_size`, 256 KiB by default)."""

import asyncio
import json
import random
import re
import threading

import pytest
from data_pipeline.adapters.clickhouse_current import (
    JOINED_ITEMS_FROM_KEYS,
    KEY_LISTS_BUDGET,
    ORDERS,
    PRODUCTS,
    SHARED_SNAPSHOT,
    keyed_refresh,
)
from data_pipeline.adapters.sqlite_state import SqliteStateStore
from data_pipeline.adapters.token_cipher import TokenCipher
from data_pipeline.devtools.salla_samples import demo_store, encode
from data_pipeline.errors import TransientError
from data_pipeline.service_layer.importer import EventImporter, start_pool

from tests.e2e.test_import_events import expected

MAX_QUERY_SIZE = 256 * 1024  # ClickHouse's default, on a server and in chDB
MERCHANT = 1305146709
# The order ids a refresh statement selects (clickhouse_current.keys_filter).
ORDER_IDS = re.compile(r"order_id IN \(SELECT arrayJoin\(CAST\('\[([\d,]+)\]'")


@pytest.mark.parametrize("shared_snapshot", [False, True], ids=["aggregated", "joined"])
def test_keys_past_one_statement_are_split_across_statements_that_cover_each_once(
    shared_snapshot,
):
    # Ids as long as a UInt64 gets, so that 30,000 keys need several statements.
    keys = [(10**18 + index % 3, 10**18 + index) for index in range(30_000)]
    statements = keyed_refresh(ORDERS, "analytics", keys, shared_snapshot=shared_snapshot)
    snapshots, tombstones = statements[0::2], statements[1::2]
    assert len(snapshots) == len(tombstones) >= 3
    assert all(len(statement.encode()) < MAX_QUERY_SIZE for statement in statements)
    covered = [
        int(order_id)
        for statement in snapshots
        for order_id in ORDER_IDS.search(statement).group(1).split(",")
    ]
    assert sorted(covered) == [order_id for _, order_id in keys]  # each once, none left out
    assert max(len(statement) for statement in statements) > KEY_LISTS_BUDGET * 0.9  # packed


def test_only_a_bulk_refresh_on_a_server_sharing_one_snapshot_joins_item_sets():
    def joined(keys, shared_snapshot, table=ORDERS):
        [snapshots, *_] = keyed_refresh(table, "db", keys, shared_snapshot=shared_snapshot)
        return "JOIN" in snapshots, snapshots.endswith(f"SETTINGS {SHARED_SNAPSHOT} = 1")

    bulk = [(MERCHANT, order_id) for order_id in range(1, JOINED_ITEMS_FROM_KEYS + 1)]
    assert joined(bulk, shared_snapshot=True) == (True, True)
    assert joined(bulk[:-1], shared_snapshot=True) == (False, False)  # a webhook batch's
    assert joined(bulk, shared_snapshot=False) == (False, False)  # a server before 25.6
    assert joined(bulk, shared_snapshot=True, table=PRODUCTS) == (False, False)  # no item sets


class RecordingWarehouse:
    """The real warehouse, with the order of writes and refreshes recorded, and writes failing
    from the `fail_at`-th on; with `refreshing=False`, refreshes are only collected in
    `deferred`, left to the test."""

    def __init__(self, warehouse, log, fail_at=None, *, refreshing=True):
        self._warehouse, self._log, self._fail_at = warehouse, log, fail_at
        self._refreshing = refreshing
        self.deferred: dict[str, set[tuple[int, int]]] = {}

    def __getattr__(self, name):
        return getattr(self._warehouse, name)

    def write_encoded(self, encoded, **options):
        writes = sum(entry == "write" for entry in self._log)
        if self._fail_at is not None and writes + 1 >= self._fail_at:
            raise TransientError("warehouse insert failed: connection reset (injected)")
        self._log.append("write")
        return self._warehouse.write_encoded(encoded, **options)

    def refresh(self, touched):
        self._log.append("refresh")
        if not self._refreshing:
            for table, keys in touched.items():
                self.deferred.setdefault(table, set()).update(keys)
            return None
        return self._warehouse.refresh(touched)


def test_a_refresh_of_more_objects_than_one_statement_holds_shows_them_all(warehouse, tmp_path):
    store = demo_store(seed=61, orders=25)
    db = warehouse.database
    deferring = RecordingWarehouse(warehouse, [], refreshing=False)
    importer = EventImporter(deferring, _state(tmp_path), _cipher())
    # Written without their refresh, then refreshed together with 40,000 keys no order has:
    # several statements (the same refresh as one statement was refused: max_query_size).
    _import(importer, store)
    assert warehouse.query(f"SELECT count() FROM {db}.orders").rows == [(0,)]
    strangers = {(MERCHANT, 10**18 + index) for index in range(40_000)}
    warehouse.refresh({"orders_current": deferring.deferred["orders_current"] | strangers})
    assert warehouse._shared_snapshot  # chDB shares one snapshot per query: item sets joined
    assert _truth_in(warehouse) == _truth_of(store)


def test_batches_are_refreshed_together_and_settled_only_once_the_contract_shows_them(
    warehouse, tmp_path
):
    store = demo_store(seed=62, orders=30)
    log: list[str] = []
    recording = RecordingWarehouse(warehouse, log)
    importer = EventImporter(
        recording, _state(tmp_path), _cipher(), batch_events=5, refresh_events=9
    )
    progress = _import(importer, store, log=log)

    writes, refreshes = log.count("write"), log.count("refresh")
    assert 1 < refreshes < writes  # several batches per refresh, more than one refresh
    # Every batch reported done was written before a refresh that came before the report.
    for position, entry in enumerate(log):
        if entry.startswith("done"):
            done = int(entry.split()[1])
            last_refresh = max(i for i, e in enumerate(log[:position]) if e == "refresh")
            assert 5 * log[:last_refresh].count("write") >= done  # five lines a batch
    assert progress == len(store.events)
    assert _truth_in(warehouse) == _truth_of(store)


def test_an_import_cut_off_by_a_failing_write_settles_what_it_wrote_and_resumes(
    warehouse, tmp_path
):
    store = demo_store(seed=63, orders=30)
    state = _state(tmp_path)
    log: list[str] = []
    failing = RecordingWarehouse(warehouse, log, fail_at=6)
    importer = EventImporter(failing, state, _cipher(), batch_events=5, refresh_events=12)
    try:
        _import(importer, store, log=log)
    except TransientError:
        pass
    else:
        raise AssertionError("the injected failure did not stop the import")
    written = 5 * log.count("write")  # events in the five batches written before the failure
    assert log[-1] == f"done {written}"  # refreshed and settled, though the import failed

    again = EventImporter(warehouse, state, _cipher(), batch_events=5)
    report = asyncio.run(again.run([encode(event) for event in store.events]))
    assert report.duplicates == written
    assert report.loaded + report.ignored == len(store.events) - written
    assert _truth_in(warehouse) == _truth_of(store)


def test_events_the_warehouse_does_not_model_are_settled_as_the_import_goes(warehouse, tmp_path):
    log: list[str] = []
    recording = RecordingWarehouse(warehouse, log)
    importer = EventImporter(
        recording, _state(tmp_path), _cipher(), batch_events=5, refresh_events=9
    )
    lines = [
        json.dumps({"event": "app.trial.started", "merchant": MERCHANT, "data": {"n": n}}).encode()
        for n in range(30)
    ]
    done = 0

    def progress(count, _bytes):
        nonlocal done
        done += count
        log.append(f"done {done}")

    report = asyncio.run(importer.run(lines, progress=progress))
    assert report.ignored == 30 and not report.failures
    # Archived (written) five at a time, settled two batches at a time, not all at the end.
    assert log == [
        entry for n in (10, 20, 30) for entry in ("write", "write", f"done {n - 5}", f"done {n}")
    ]
    assert "refresh" not in log  # nothing to refresh: they touch no object


class SlowSchema(RecordingWarehouse):
    """The real warehouse, whose schema check (`migrate`) takes until `release` is set, then
    fails with `failure` if one is given; `read_before` is how many lines the import had read
    by then."""

    def __init__(self, warehouse, read, failure=None):
        super().__init__(warehouse, [])
        self.release, self._read, self._failure = threading.Event(), read, failure
        self.read_before = None

    def migrate(self):
        assert self.release.wait(120), "the test never released the schema check"
        self.read_before = len(self._read)
        if self._failure is not None:
            raise self._failure
        return self._warehouse.migrate()


def _lines_read(store, read, release, after):
    """The store's events as an input that notes each line it hands out and, once `after`
    lines are out, lets the schema check finish."""
    for event in store.events:
        read.append(event)
        if len(read) == after:
            release.set()
        yield encode(event)
    release.set()


def _with_early_workers(warehouse, tmp_path):
    """An importer that migrates first, with two worker processes started before its run."""
    return EventImporter(
        warehouse,
        _state(tmp_path),
        _cipher(),
        batch_events=5,
        processes=2,
        migrate=True,
        workers=start_pool(2),
    )


def test_worker_processes_transform_batches_while_the_schema_is_checked(warehouse, tmp_path):
    store = demo_store(seed=64, orders=60)
    read: list = []
    slow = SlowSchema(warehouse, read)
    importer = _with_early_workers(slow, tmp_path)
    lines = _lines_read(store, read, slow.release, after=25)
    report = asyncio.run(importer.run(lines))
    # Five chunks were out to the workers before the schema was known (the one to write next
    # and two more per worker); the first write waits for the schema.
    assert slow.read_before == 25
    assert report.loaded + report.ignored == len(store.events) and not report.failures
    assert _truth_in(warehouse) == _truth_of(store)


def test_a_schema_check_that_fails_stops_the_workers_waiting_for_it_with_its_error(
    warehouse, tmp_path
):
    store = demo_store(seed=65, orders=30)
    read: list = []
    failure = TransientError("warehouse migration failed: disk full (injected)")
    slow = SlowSchema(warehouse, read, failure)
    importer = _with_early_workers(slow, tmp_path)
    outcome: list = []

    def run():
        try:
            asyncio.run(importer.run(_lines_read(store, read, slow.release, after=20)))
        except Exception as error:
            outcome.append(error)

    running = threading.Thread(target=run)
    running.start()
    running.join(120)
    assert not running.is_alive(), "the import hangs on workers waiting for an encoder"
    assert outcome == [failure]  # the schema's own error, not a worker's
    assert warehouse.query(f"SELECT count() FROM {warehouse.database}.raw_events").rows == [(0,)]


_KEY = TokenCipher.generate_key()


def _cipher():
    return TokenCipher(_KEY)


def _state(tmp_path):
    return SqliteStateStore(tmp_path / "state.sqlite3")


def _import(importer, store, *, log=None):
    """Run `importer` over the store's events (shuffled: any order converges); returns the
    lines it reported done."""
    events = [encode(event) for event in store.events]
    random.Random(5).shuffle(events)
    done = 0

    def progress(lines, _bytes):
        nonlocal done
        done += lines
        if log is not None:
            log.append(f"done {done}")

    asyncio.run(importer.run(events, progress=progress))
    return done


def _truth_of(store):
    return expected(store)[:4]  # orders, their total, lines, their total (not the archive)


def _truth_in(warehouse):
    db = warehouse.database
    [(orders, total)] = warehouse.query(f"SELECT count(), sum(total) FROM {db}.orders").rows
    [(lines, line_total)] = warehouse.query(
        f"SELECT count(), sum(line_total) FROM {db}.sales_facts"
    ).rows
    return orders, total, lines, line_total
