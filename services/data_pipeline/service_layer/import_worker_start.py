"""Where a bulk import's worker process starts: before anything imports the domain.

The pool's initializer lives here, apart from import_batches (which imports the domain), so that
a worker can take the compiled domain (data_pipeline/compiled_domain.py) for its whole life.
"""

from __future__ import annotations

from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

from data_pipeline.compiled_domain import use_compiled_domain


def start_import_worker(channel: Queue[Any] | None, compiled: Path | None) -> None:
    """A worker process's initializer: the domain it runs (`compiled`: the build its parent
    runs), then import_batches' own start."""
    if compiled is not None:
        reason = use_compiled_domain(compiled)
        if reason is not None:  # checked by the command before it started the pool
            raise RuntimeError(f"the compiled domain cannot be used: {reason}")
    from data_pipeline.service_layer.import_batches import start_worker

    start_worker(channel)
