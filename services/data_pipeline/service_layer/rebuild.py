"""Rebuild a warehouse from the raw archive (docs/disaster-recovery.md).

The archive's objects are read in key order (merchant, then day), their records streamed
through the bulk importer in archive mode: the worker's transform and versions, each event with
its original hash, reception time and source. Loading is idempotent, so the target may be empty
or already hold some of it.

Resumable: a run is identified by its archive URL and filters; each object whose every event
has been written is appended to the run's checkpoint, and a run started again skips those. The
run's settlements (what it loaded, what repeated) live in its own state file next to the
checkpoint, never in the service's state store, so its counts are about this archive only.
"""

from __future__ import annotations

import bisect
import hashlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from data_pipeline.adapters.archive import ArchiveStore
from data_pipeline.adapters.state import StateStore
from data_pipeline.adapters.warehouse import Warehouse
from data_pipeline.errors import InvalidPayload
from data_pipeline.service_layer.archive import key_parts, object_lines
from data_pipeline.service_layer.import_batches import ImportReport
from data_pipeline.service_layer.importer import EventImporter


@dataclass(frozen=True)
class RebuildFailure:
    key: str
    line: int | None  # None: the whole object
    reason: str


@dataclass
class RebuildReport:
    objects: int = 0  # read in this run
    resumed: int = 0  # skipped: completed by an earlier run of the same rebuild
    events: int = 0
    loaded: int = 0
    ignored: int = 0  # events the warehouse does not model (archived all the same)
    duplicates: int = 0  # the same event in more than one object
    failures: list[RebuildFailure] = field(default_factory=list)


def run_id(url: str, since: date | None, merchant: int | None) -> str:
    """The same archive and filters resume the same run."""
    return hashlib.sha256(f"{url}|{since}|{merchant}".encode()).hexdigest()[:16]


def plan(archive: ArchiveStore, *, since: date | None, merchant: int | None) -> list[str]:
    """The archive objects a rebuild reads, in key order."""
    prefix = f"merchant={merchant}/" if merchant is not None else ""
    keys = []
    for key in archive.names(prefix):
        parts = key_parts(key)
        if parts is not None and (since is None or parts[1] >= since):
            keys.append(key)
    return keys


class ArchiveRebuild:
    def __init__(
        self,
        archive: ArchiveStore,
        warehouse: Warehouse,
        state: StateStore,
        checkpoint: Path,
        *,
        processes: int = 1,
        batch_events: int = 4000,
    ) -> None:
        self._archive = archive
        self._warehouse = warehouse
        self._state = state
        self._checkpoint = checkpoint
        self._processes = processes
        self._batch_events = batch_events

    def completed(self) -> set[str]:
        if not self._checkpoint.exists():
            return set()
        return {line for line in self._checkpoint.read_text().splitlines() if line}

    async def run(
        self,
        keys: list[str],
        *,
        progress: Callable[[int, int], None] | None = None,  # (objects done, events done)
    ) -> RebuildReport:
        report = RebuildReport()
        done = self.completed()
        todo = [key for key in keys if key not in done]
        report.resumed = len(keys) - len(todo)
        # Where each object's lines start in the stream the importer reads (1-based), to name
        # a failed line by its object and to know when an object is completely written.
        starts: list[int] = []
        ends: deque[tuple[int, str]] = deque()  # (its last line, key) of objects not yet done

        def lines() -> Iterator[bytes]:
            position = 0
            for key in todo:
                try:
                    content = object_lines(self._archive.get(key))
                except InvalidPayload as error:
                    report.failures.append(RebuildFailure(key, None, str(error)))
                    content = []
                report.objects += 1
                starts.append(position + 1)
                position += len(content)
                ends.append((position, key))
                yield from content

        written = 0
        checkpoint = self._checkpoint.open("a")

        def advance(count: int, _bytes: int) -> None:
            nonlocal written
            written += count
            # Every object whose last line is written is complete (the one after it may not be).
            while ends and ends[0][0] <= written:
                checkpoint.write(ends.popleft()[1] + "\n")
            checkpoint.flush()
            if progress is not None:
                progress(report.resumed + report.objects - len(ends), written)

        importer = EventImporter(
            self._warehouse,
            self._state,
            None,
            processes=self._processes,
            batch_events=self._batch_events,
            archived=True,
        )
        try:
            imported = await importer.run(lines(), progress=advance)
            while ends:  # objects with no lines left, complete now
                checkpoint.write(ends.popleft()[1] + "\n")
        finally:
            checkpoint.close()
        self._merge(report, imported, starts, todo)
        return report

    @staticmethod
    def _merge(
        report: RebuildReport, imported: ImportReport, starts: list[int], keys: list[str]
    ) -> None:
        report.events += imported.lines
        report.loaded += imported.loaded
        report.ignored += imported.ignored
        report.duplicates += imported.duplicates
        for failure in imported.failures:
            index = bisect.bisect_right(starts, failure.line) - 1
            line = failure.line - starts[index] + 1
            report.failures.append(RebuildFailure(keys[index], line, failure.reason))
