"""`salla-pipeline import-events FILE`: bulk-load Salla envelopes (JSON Lines, `.gz`, `-`).

Into a stopped data dir (or a warehouse given by CLICKHOUSE_URL) directly; into a running
service (the local stack, which holds its chDB directory, or a deployment) with `--url`, in
chunks. Either way through the worker's transform, versions, raw archive and settlements
(service_layer/importer.py). Exit status 1 when any line failed; each is listed with its number.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import sys
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from data_pipeline.entrypoints.cli.console import console, fail
from data_pipeline.entrypoints.cli.service import DataDirOption, ServiceClient
from data_pipeline.errors import TransientError
from shared.topics import IMPORT_PATH

# Per request to a service: at most this many lines and, once they reach CHUNK_BYTES, no more.
# The smallest request a deployment takes decides the budget: Lambda's 6 MB invocation payload,
# which holds the body base64-encoded (4/3), and Vercel's 4.5 MB body. With the line that
# crosses the budget (at most 1 MiB + 1 byte: see _Lines) a request is at most 3 MiB raw,
# 4 MiB encoded; and about a thousand events of a few kilobytes, seconds of work, well inside
# a function's timeout.
CHUNK_LINES = 5000
CHUNK_BYTES = 2 * 2**20
REQUEST_ATTEMPTS = 6  # half a minute of a busy or unreachable service (1+2+4+8+16 s), then stop
MAX_LISTED_FAILURES = 20
# Inputs bigger than this (or of unknown size) start their worker processes at once; smaller
# ones only when a second batch shows up, if ever.
EARLY_WORKERS_BYTES = 16 * 2**20


def import_events(
    file: Annotated[str, typer.Argument(help="JSON Lines of Salla envelopes (.gz ok; - = stdin).")],
    url: Annotated[
        str | None,
        typer.Option(help="Import through this running service (e.g. the local stack's URL)."),
    ] = None,
    dsn: Annotated[
        str | None,
        typer.Option(envvar="CLICKHOUSE_URL", help="Warehouse DSN (default: the data dir's chDB)."),
    ] = None,
    database: Annotated[str, typer.Option(envvar="CLICKHOUSE_DATABASE")] = "analytics",
    data_dir: DataDirOption = Path(".data"),
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes that parse and transform (default: one per core); "
            "not used with --url.",
        ),
    ] = os.cpu_count() or 1,
    batch_events: Annotated[
        int, typer.Option(min=1, max=100_000, help="Events per batch (insert, refresh, settle).")
    ] = 4000,
    compiled: Annotated[
        bool | None,
        typer.Option(
            "--compiled/--no-compiled",
            help="Transform with the domain compiled by mypyc (`make compiled-domain`), or not "
            "(default: compiled when its build matches the source); not used with --url.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Load Salla events from a file as the worker would: re-importing is a no-op, a bad line is
    reported with its number and skipped, the exit status says whether any line failed."""
    if not url:  # before the domain is imported: see data_pipeline/compiled_domain.py
        console.print(_choose_domain(compiled), style="dim", highlight=False)
    from data_pipeline.domain.envelope import MAX_WEBHOOK_BYTES
    from data_pipeline.service_layer.import_batches import ImportReport

    stream, size = _open(file)
    lines = _Lines(stream, limit=MAX_WEBHOOK_BYTES)
    with stream, _progress() as progress:
        task = progress.add_task("importing", total=size, lines=0, rate="")
        done = {"lines": 0, "bytes": 0}

        def advance(lines: int, consumed: int) -> None:
            done["lines"] += lines
            done["bytes"] += consumed
            elapsed = progress.tasks[0].elapsed or 1e-9
            progress.update(
                task,
                completed=_position(stream, done["bytes"]),
                lines=done["lines"],
                rate=f"{done['lines'] / elapsed:,.0f} lines/s",
            )

        report = ImportReport()
        if url:
            _through_service(url, data_dir, lines, report, advance)
        else:
            importing = _Importing(processes, batch_events, size)
            _direct(dsn, database, data_dir, lines, report, advance, importing)
    console.print(
        f"{report.lines:,} lines: {report.loaded:,} loaded, {report.ignored:,} not modeled, "
        f"{report.duplicates:,} already there, {len(report.failures):,} failed "
        f"({report.line_items:,} line items)"
    )
    for failure in report.failures[:MAX_LISTED_FAILURES]:
        console.print(f"  line {failure.line}: {failure.reason}", markup=False)
    if len(report.failures) > MAX_LISTED_FAILURES:
        console.print(f"  … and {len(report.failures) - MAX_LISTED_FAILURES} more")
    if lines.unreadable:
        console.print(
            f"[bold red]The input breaks at line {lines.count + 1:,}[/]: {lines.unreadable}. "
            "The lines before it were imported; import the repaired file again (what is "
            "already there is skipped).",
            highlight=False,
        )
    if report.failures or lines.unreadable:
        raise typer.Exit(1)


def _choose_domain(compiled: bool | None) -> str:
    """Has this process (and so its workers) transform with the compiled domain unless told
    not to or it cannot be used (`--compiled` then fails); says which it is."""
    from data_pipeline.compiled_domain import use_compiled_domain

    if compiled is False:
        return "transform: the Python domain (--no-compiled)"
    reason = use_compiled_domain()
    if reason is None:
        return "transform: the compiled domain (mypyc)"
    if compiled:
        fail(f"--compiled: the compiled domain cannot be used: {reason}")
    return f"transform: the Python domain (compiled one: {reason})"


@dataclass(frozen=True)
class _Importing:
    processes: int
    batch_events: int
    size: int | None  # of the input, when known


def _open(file: str) -> tuple[IO[bytes], int | None]:
    """The lines' byte stream (gzip by its magic bytes) and the size to show progress against."""
    if file == "-":
        raw: IO[bytes] = io.BufferedReader(sys.stdin.buffer)  # type: ignore[arg-type]
        size = None
    else:
        path = Path(file)
        if not path.is_file():
            fail(f"{file}: no such file")
        raw = path.open("rb")
        size = path.stat().st_size
    if isinstance(raw, io.BufferedReader):
        head = raw.peek(6)[:6]
        if head.startswith(b"\x1f\x8b"):
            return _Gzip(raw), size
        for magic, what, tool in _OTHER_COMPRESSIONS:
            if head.startswith(magic):
                raw.close()
                fail(
                    f"{file} is {what}: import-events reads JSON Lines, plain or gzip; "
                    f"decompress it first (`{tool} {file} | salla-pipeline import-events -`)"
                )
    return raw, size


# Archives a file of events may arrive in that are not gzip: every line would fail as "not
# UTF-8", so the command says what the file is instead.
_OTHER_COMPRESSIONS = (
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "zstd -dc"),
    (b"BZh", "bzip2-compressed", "bzip2 -dc"),
    (b"\xfd7zXZ\x00", "xz-compressed", "xz -dc"),
    (b"PK\x03\x04", "a zip archive", "unzip -p"),
)


class _Lines:
    """The input's lines, numbered as they are read, for both import paths.

    A file that cannot be read to its end (a gzip file cut off by an interrupted download or
    copy, or corrupt) ends the input where it breaks instead of aborting the import: the whole
    lines before that point are imported, and the break is reported with its line number and
    what went wrong, the exit status 1; a re-import of the repaired file loads only the rest
    (everything before is already there). A UTF-8 byte order mark before the first line
    (some Windows tools write one) is dropped: JSON Lines has none, and it would cost line 1.
    No line is held whole beyond `limit` bytes (a file without newlines is one line): the
    first `limit + 1` bytes stand for it, which the importer reports as too long."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self.count = 0
        self.unreadable: str | None = None

    def __iter__(self) -> Iterator[bytes]:
        read, most = self._stream.readline, self._limit + 1
        try:
            line = read(most).removeprefix(b"\xef\xbb\xbf")
            while line:
                self.count += 1
                if len(line) == most and not line.endswith(b"\n"):
                    while (rest := read(2**20)) and not rest.endswith(b"\n"):
                        pass  # the rest of an overlong line, read and dropped
                yield line
                line = read(most)
        except EOFError:
            self.unreadable = "the input ends in the middle of its gzip stream (cut off?)"
        except (gzip.BadGzipFile, zlib.error) as error:
            self.unreadable = f"the gzip stream is corrupt here ({error})"
        except OSError as error:
            self.unreadable = f"the input could not be read past here ({error})"


class _Gzip(gzip.GzipFile):
    """A gzip stream that reports how far into the compressed file it is (for the bar)."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__(fileobj=raw, mode="rb")
        self.compressed = raw


def _position(stream: IO[bytes], fallback: float) -> float:
    if isinstance(stream, _Gzip):
        try:
            return float(stream.compressed.tell())
        except (OSError, ValueError):
            return fallback
    return fallback


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[lines]:,} lines · {task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _direct(
    dsn: str | None,
    database: str,
    data_dir: Path,
    lines: _Lines,
    report: Any,
    advance: Any,
    importing: _Importing,
) -> None:
    from data_pipeline.service_layer.importer import EventImporter, start_pool

    # The worker processes start first: they import while this process does (chDB, the
    # warehouse adapter), then transform the first chunks while the schema is checked.
    early = importing.size is None or importing.size > EARLY_WORKERS_BYTES
    workers = start_pool(importing.processes) if early and importing.processes > 1 else None
    try:
        from data_pipeline.adapters.clickhouse_warehouse import (
            ClickHouseWarehouse,
            WarehouseInUse,
        )

        data_dir = data_dir.resolve()
        warehouse = ClickHouseWarehouse(dsn or f"chdb://{data_dir / 'clickhouse'}", database)
        state = _state_store(data_dir)
        cipher = _cipher(data_dir, local=dsn is None)
    except BaseException:
        if workers is not None:
            workers.shutdown()
        raise
    importer = EventImporter(
        warehouse,
        state,
        cipher,
        processes=importing.processes,
        batch_events=importing.batch_events,
        migrate=True,  # a new data dir gets its schema; a current one is untouched
        workers=workers,
    )

    async def run() -> Any:
        try:
            return await importer.run(iter(lines), progress=advance)
        finally:
            await state.close()

    try:
        report.add(asyncio.run(run()))
    except WarehouseInUse as error:
        fail(f"{error}: import through the running stack (--url http://127.0.0.1:8000) or stop it")
    except TransientError as error:
        fail(
            f"{error}. What was imported before it stays; once that is fixed, run the same "
            "command again for the rest (what is already there is skipped)."
        )
    finally:
        importer.close()
        warehouse.close()


def _state_store(data_dir: Path) -> Any:
    if os.environ.get("REDIS_URL"):
        from data_pipeline.adapters.redis_state import RedisStateStore

        return RedisStateStore(os.environ["REDIS_URL"])
    from data_pipeline.adapters.sqlite_state import SqliteStateStore

    data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteStateStore(data_dir / "state.sqlite3")


def _cipher(data_dir: Path, *, local: bool) -> Any:
    """Merchant tokens are stored encrypted: with TOKEN_ENCRYPTION_KEY, or into a local data dir
    with that dir's key (created on first use, as `salla-pipeline dev` does). Into another
    warehouse without a key, token events are reported as failed lines; nothing else is affected."""
    from data_pipeline.adapters.token_cipher import TokenCipher

    key = os.environ.get("TOKEN_ENCRYPTION_KEY")
    if not key and local:
        from data_pipeline.devtools.local_secrets import local_secrets

        key = local_secrets(data_dir).token_encryption_key
    return TokenCipher(key) if key else None


def _through_service(url: str, data_dir: Path, lines: _Lines, report: Any, advance: Any) -> None:
    from data_pipeline.service_layer.import_batches import ImportFailure, ImportReport

    client = ServiceClient.connect(url, data_dir)
    offset = 0
    for chunk in _chunks(lines):
        try:
            # Sending a chunk again is safe: what it loaded the first time is "already there".
            _, answer = client.call(
                "POST",
                IMPORT_PATH,
                attempts=REQUEST_ATTEMPTS,
                content=b"".join(chunk),
                headers={"Content-Type": "application/x-ndjson"},
                timeout=300,
            )
        except typer.Exit:
            if offset:
                console.print(
                    f"Lines 1-{offset:,} were imported; once that is fixed, run the same "
                    "command again for the rest (what is already there is skipped).",
                    highlight=False,
                )
            raise
        part = ImportReport(
            lines=answer["lines"],
            loaded=answer["loaded"],
            ignored=answer["ignored"],
            duplicates=answer["duplicates"],
            line_items=answer["lineItems"],
            failures=[ImportFailure(f["line"], f["reason"]) for f in answer["failures"]],
        )
        report.add(part, line_offset=offset)
        offset += len(chunk)
        advance(len(chunk), sum(len(line) for line in chunk))


def _chunks(lines: Iterable[bytes]) -> Iterator[list[bytes]]:
    """Requests' worth of lines: CHUNK_LINES, or fewer once they reach CHUNK_BYTES (events
    carrying many items run to tens of kilobytes each)."""
    chunk: list[bytes] = []
    size = 0
    for line in lines:
        chunk.append(line if line.endswith(b"\n") else line + b"\n")
        size += len(chunk[-1])
        if len(chunk) >= CHUNK_LINES or size >= CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk
