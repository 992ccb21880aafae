"""`salla-pipeline import-events`, run as a user runs it: into a stopped data dir, from a gzip
file and from stdin, and through a running local stack; with duplicates, any order and broken
lines. The contract must end up exactly the simulated store's truth."""

import gzip
import json
import random
import re
import socket
import subprocess
import sys
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from data_pipeline.devtools.salla_samples import demo_store, encode

from tests.e2e.test_cli import sql, stop
from tests.support.cli import SCRIPT, clean_env, run_cli, start_cli, wait_healthy
from tests.support.redis_server import free_port

pytestmark = pytest.mark.slow


def lines_of(events):
    return [encode(event) + b"\n" for event in events]


_CONTRACT = """
import json, sys
import clickhouse_connect
client = clickhouse_connect.get_client(dsn="chdb://" + sys.argv[1])
[(orders, total)] = client.query("SELECT count(), sum(total) FROM analytics.orders").result_rows
[(lines, line_total)] = client.query(
    "SELECT count(), sum(line_total) FROM analytics.sales_facts").result_rows
[(archived,)] = client.query("SELECT count() FROM analytics.raw_events FINAL").result_rows
print(json.dumps([orders, str(total), lines, str(line_total), archived]))
"""


def contract(data_dir):
    """Read in a child process: chDB opens one data path per process, and this test process
    already holds the shared test engine's."""
    finished = subprocess.run(
        [sys.executable, "-c", _CONTRACT, str((data_dir / "clickhouse").resolve())],
        capture_output=True,
        text=True,
        check=True,
        env=clean_env(),
    )
    orders, total, lines, line_total, archived = json.loads(finished.stdout.splitlines()[-1])
    return orders, Decimal(total), lines, Decimal(line_total), archived


def expected(store, rejected=0):
    """`rejected`: envelopes that failed to transform, archived all the same (for a replay)."""
    truth = store.truth
    return (
        len(truth.live_orders()),
        truth.order_total_sum(),
        truth.line_count(),
        truth.line_total_sum(),
        len({encode(e) for e in store.events}) + rejected,
    )


# In this process, and in two worker processes with batches small enough that duplicates, broken
# lines and an order's versions land in different batches prepared concurrently.
@pytest.mark.parametrize(
    "how",
    [["--processes", "1"], ["--processes", "2", "--batch-events", "7"]],
    ids=["in-process", "worker-processes"],
)
def test_a_file_with_duplicates_disorder_and_broken_lines_loads_exactly_the_rest(tmp_path, how):
    store = demo_store(seed=31, orders=30)
    events = store.events + random.Random(1).sample(store.events, 15)
    random.Random(2).shuffle(events)
    lines = lines_of(events)
    lines.insert(4, b'{"event": "order.created", "merchant": 1, "data": \n')  # cut off JSON
    lines.insert(9, b"\n")  # blank: skipped, not an event
    broken = next(json.loads(line) for line in lines[20:] if b'"order.created"' in line[:40])
    broken["data"]["amounts"] = {"total": "not money"}
    lines.insert(20, json.dumps(broken).encode() + b"\n")
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(lines))

    first = run_cli("import-events", str(path), "--data-dir", str(tmp_path / "data"), *how)
    assert first.returncode == 1, first.stdout + first.stderr  # some lines failed
    output = first.stdout
    assert "line 5:" in output and "line 21:" in output and "2 failed" in output
    assert contract(tmp_path / "data") == expected(store, rejected=1)

    # Again: nothing new (every event is already there), the same two lines still fail.
    again = run_cli("import-events", str(path), "--data-dir", str(tmp_path / "data"), *how)
    assert "0 loaded" in again.stdout and again.returncode == 1
    # Every line that loads is a redelivery now: all but the blank, the cut-off and the broken one.
    assert f"{len(lines) - 3:,} already there" in again.stdout
    assert "line 5:" in again.stdout and "line 21:" in again.stdout
    assert contract(tmp_path / "data") == expected(store, rejected=1)


def test_a_clean_gzip_file_and_stdin_import_with_a_zero_exit(tmp_path):
    store = demo_store(seed=32, orders=20)
    events = store.events
    half = len(events) // 2
    gz = tmp_path / "first-half.jsonl.gz"
    gz.write_bytes(gzip.compress(b"".join(lines_of(events[:half]))))
    data = str(tmp_path / "data")
    from_file = run_cli("import-events", str(gz), "--data-dir", data)
    assert from_file.returncode == 0, from_file.stdout + from_file.stderr
    piped = subprocess.run(
        [SCRIPT, "import-events", "-", "--data-dir", data],
        input=b"".join(lines_of(events[half:])),
        env=clean_env(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert piped.returncode == 0, piped.stdout + piped.stderr
    assert contract(tmp_path / "data") == expected(store)


def test_a_cut_off_gzip_stream_imports_what_it_holds_and_the_repaired_file_the_rest(tmp_path):
    """An interrupted download or copy: the whole lines before the cut are imported, the cut is
    named (line number, what went wrong) with exit status 1, and nothing is lost: importing the
    complete file afterwards brings the contract to the store's truth."""
    store = demo_store(seed=34, orders=30)
    whole = gzip.compress(b"".join(lines_of(store.events)))
    data = str(tmp_path / "data")
    cut = subprocess.run(
        [SCRIPT, "import-events", "-", "--data-dir", data, "--processes", "1"],
        input=whole[: len(whole) * 3 // 5],
        env=clean_env(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    output = " ".join(cut.stdout.decode().split())  # rich wraps long lines
    assert cut.returncode == 1, output + cut.stderr.decode()
    assert "Traceback" not in output + cut.stderr.decode()
    match = re.search(r"The input breaks at line ([\d,]+): the input ends in the middle", output)
    assert match, output
    loaded = int(re.search(r"([\d,]+) loaded", output).group(1).replace(",", ""))
    assert 0 < loaded < len(store.events)
    assert int(match.group(1).replace(",", "")) > loaded  # past every line it could read

    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(whole)
    repaired = run_cli("import-events", str(path), "--data-dir", data, "--processes", "1")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert f"{loaded:,} already there" in " ".join(repaired.stdout.split())
    assert contract(tmp_path / "data") == expected(store)


def test_a_corrupt_gzip_file_is_reported_not_a_traceback(tmp_path):
    store = demo_store(seed=35, orders=10)
    whole = bytearray(gzip.compress(b"".join(lines_of(store.events))))
    whole[-8:-4] = bytes(b ^ 0xFF for b in whole[-8:-4])  # the trailer's CRC-32
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(bytes(whole))
    result = run_cli("import-events", str(path), "--data-dir", str(tmp_path / "data"))
    output = " ".join(result.stdout.split())
    assert result.returncode == 1 and "Traceback" not in output + result.stderr
    assert "the gzip stream is corrupt here (CRC check failed" in output, output


def test_hostile_lines_are_each_named_and_a_byte_order_mark_costs_nothing(tmp_path):
    """A file written by a Windows tool (UTF-8 byte order mark, CRLF) with lines that are JSON
    but not an envelope, not UTF-8, or numbers JSON cannot hold: each is listed by number, the
    exit status is 1, and every real event loads (the first one too, behind the mark)."""
    store = demo_store(seed=36, orders=10)
    hostile = [
        b"[1, 2]",
        b"null",
        b'"text"',
        b"1e999",
        b"\xff\xfe\xfd",
        b'{"event": "order.created", "merchant": 1, "data": {"id": "\xff"}}',
        b'{"event": "order.created", "merchant": 1, "data": {"id": NaN}}',
        b"{}",
    ]
    good = [line.rstrip(b"\n") for line in lines_of(store.events)]
    lines = [good[0], *hostile, *good[1:]]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(lines) + b"\r\n")
    result = run_cli("import-events", str(path), "--data-dir", str(tmp_path / "data"))
    output = result.stdout
    assert result.returncode == 1, output + result.stderr
    assert f"{len(hostile)} failed" in output
    for number in range(2, 2 + len(hostile)):
        assert f"line {number}:" in output
    assert "line 1:" not in output
    assert contract(tmp_path / "data") == expected(store)


@pytest.mark.parametrize(
    ("head", "named"),
    [
        (b"\x28\xb5\x2f\xfd", "zstd-compressed"),
        (b"BZh91AY&SY", "bzip2-compressed"),
        (b"\xfd7zXZ\x00\x00", "xz-compressed"),
        (b"PK\x03\x04\x14\x00", "a zip archive"),
    ],
)
def test_an_archive_that_is_not_gzip_is_named_before_anything_is_touched(tmp_path, head, named):
    # Read as lines, every one would fail as "not UTF-8": the command says what the file is.
    path = tmp_path / "events.jsonl.compressed"
    path.write_bytes(head + bytes(range(256)) * 4)
    result = run_cli("import-events", str(path), "--data-dir", str(tmp_path / "data"))
    assert result.returncode != 0
    assert f"is {named}: import-events reads JSON Lines, plain or gzip" in " ".join(
        (result.stdout + result.stderr).split()
    )
    assert not (tmp_path / "data").exists()


class _FlakyService:
    """A stand-in for `POST /api/ops/import` over real HTTP that answers from a plan: "drop"
    (the connection closes unanswered), a retryable status, or "ok" (a report of the chunk)."""

    def __init__(self, plan):
        self.plan, self.bodies = list(plan), []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                service.bodies.append(body)
                step = service.plan.pop(0) if service.plan else "ok"
                if step == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if step == "ok":
                    lines = body.count(b"\n")
                    answer = {"lines": lines, "loaded": lines, "ignored": 0, "duplicates": 0}
                    payload = json.dumps({**answer, "lineItems": 0, "failures": []}).encode()
                    self.send_response(200)
                else:
                    payload = json.dumps({"detail": "warehouse unavailable"}).encode()
                    self.send_response(step)
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def import_file(self, path):
        """The command run against this service, which stops afterwards."""
        env = clean_env(PIPELINE_API_KEY="a-test-key")
        try:
            return run_cli("import-events", str(path), "--url", self.url, env=env)
        finally:
            self.server.shutdown()


def test_import_through_a_service_sends_a_chunk_again_while_it_is_busy_or_drops_it(tmp_path):
    service = _FlakyService(["drop", 503, 502, 429, "ok"])
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(b'{"n": %d}\n' % n for n in range(10)))
    result = service.import_file(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "10 loaded" in result.stdout
    assert result.stderr.count("trying again") == 4
    for why in ("no answer (RemoteProtocolError)", "answered 503", "answered 502", "answered 429"):
        assert f"the service {why}; trying again" in result.stderr
    assert len(service.bodies) == 5 and len(set(service.bodies)) == 1  # the same chunk


def test_import_through_a_service_that_stays_down_says_how_far_it_got(tmp_path):
    # The first request is answered, then the service stays unavailable: after six attempts
    # at the second, the command stops and names the lines already imported.
    service = _FlakyService(["ok", *[503] * 10])
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(b'{"n": %d}\n' % n for n in range(5003)))
    result = service.import_file(path)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 1, output
    assert "503: warehouse unavailable" in output
    assert "Lines 1-5,000 were imported" in output
    assert len(service.bodies) == 1 + 6


def test_a_missing_file_fails_in_one_line(tmp_path):
    result = run_cli("import-events", str(tmp_path / "nope.jsonl"), "--data-dir", str(tmp_path))
    assert result.returncode != 0 and "no such file" in result.stdout + result.stderr


_HOLD = """
import sys
import clickhouse_connect
client = clickhouse_connect.get_client(dsn="chdb://" + sys.argv[1])  # open while it lives
client.query("SELECT 1")
print("holding", flush=True)
sys.stdin.read()  # until the test closes it
"""


def test_a_data_dir_open_in_another_process_is_named_as_such(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(lines_of(demo_store(seed=33, orders=4).events)))
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str((tmp_path / "clickhouse").resolve())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        imported = run_cli("import-events", str(path), "--data-dir", str(tmp_path))
        migrated = run_cli("migrate", "--data-dir", str(tmp_path))
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    said = " ".join((imported.stdout + imported.stderr).split())
    assert imported.returncode == 2
    assert "is in use by another process" in said and "--url http://127.0.0.1:8000" in said
    assert "in use by another process" in migrated.stdout + migrated.stderr
    assert migrated.returncode == 2
    # Released, the same command imports the file.
    again = run_cli("import-events", str(path), "--data-dir", str(tmp_path))
    assert again.returncode == 0 and " 0 failed" in again.stdout


def test_an_unreachable_warehouse_server_is_not_blamed_on_a_local_stack(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(lines_of(demo_store(seed=34, orders=4).events)))
    env = clean_env(CLICKHOUSE_URL=f"http://default:secret@127.0.0.1:{free_port()}/")
    result = run_cli("import-events", str(path), "--data-dir", str(tmp_path), env=env)
    said = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2 and "warehouse connect failed" in said
    assert "in use" not in said and "--url" not in said
    assert "run the same command again" in said
    assert "secret" not in said  # the DSN's password is not echoed


def test_import_through_a_running_local_stack(tmp_path):
    port, qport = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    args = ("dev", "--port", str(port), "--qstash-port", str(qport), "--data-dir", str(tmp_path))
    process = start_cli(*args, "--salla-port", str(free_port()), env=clean_env(RAG_ENABLED="false"))
    try:
        wait_healthy(base, process)
        store = demo_store(seed=33, orders=25)
        path = tmp_path / "events.jsonl"
        lines = lines_of(store.events)
        lines.insert(3, b"null\n")  # line 4: named by the service, the rest still loads
        path.write_bytes(b"".join(lines))
        # Without --url the stack's chDB directory is locked: a clear pointer to --url.
        locked = run_cli("import-events", str(path), "--data-dir", str(tmp_path))
        assert locked.returncode != 0 and "--url" in locked.stdout + locked.stderr
        result = run_cli("import-events", str(path), "--url", base, "--data-dir", str(tmp_path))
        assert result.returncode == 1, result.stdout + result.stderr
        assert "1 failed" in result.stdout
        assert "line 4: body must be a JSON object" in result.stdout
        api_key = json.loads((tmp_path / "local-secrets.json").read_text())["api_key"]
        [[orders, total]] = sql(base, api_key, "SELECT count(), sum(total) FROM analytics.orders")
        truth = store.truth
        assert (orders, Decimal(str(total))) == (len(truth.live_orders()), truth.order_total_sum())

        # Events of tens of kilobytes (orders with many items run to that): 38 MiB in 160
        # lines, over the service's 32 MiB per request, so the chunks are cut by size too.
        big = demo_store(seed=38, orders=25, merchant_id=777001)
        padded = [{**e, "data": {**e["data"], "padding": "x" * 240_000}} for e in big.events]
        path.write_bytes(b"".join(lines_of(padded)))
        assert path.stat().st_size > 32 * 2**20
        result = run_cli("import-events", str(path), "--url", base, "--data-dir", str(tmp_path))
        assert result.returncode == 0, result.stdout + result.stderr
        [[orders, total]] = sql(
            base,
            api_key,
            "SELECT count(), sum(total) FROM analytics.orders WHERE merchant_id = 777001",
        )
        truth = big.truth
        assert (orders, Decimal(str(total))) == (len(truth.live_orders()), truth.order_total_sum())
    finally:
        code, output = stop(process)
    assert code == 0, output
