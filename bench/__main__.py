"""`python -m bench` (or `make bench`): run every harness and print its figures.

`python -m bench NAME ...` runs only the named ones. Timings are from this machine, which is
shared and noisy: compare ratios within one run, not absolute numbers across runs.
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Callable
from typing import Any

from bench import (
    ack,
    ack_busy,
    cdc,
    cold_start,
    domain_events,
    dr_drill,
    import_events,
    pipeline,
    rag,
    rag_quality,
    reads,
    soak,
    sync,
    transform_load,
)

HARNESSES: dict[str, tuple[Callable[[], Any], Callable[[Any], str]]] = {
    "ack": (ack.measure, ack.report),
    "ack_busy": (ack_busy.measure, ack_busy.report),
    "cold_start": (cold_start.measure, cold_start.report),
    "pipeline": (pipeline.measure, pipeline.report),
    "transform_load": (transform_load.measure, transform_load.report),
    "sync": (sync.measure, sync.report),
    "rag": (rag.measure, rag.report),
    "rag_quality": (rag_quality.measure, rag_quality.report),
    "reads": (reads.measure, reads.report),
    "import": (import_events.measure, import_events.report),
    "cdc": (cdc.measure, cdc.report),
    "events": (domain_events.measure, domain_events.report),
    "dr": (dr_drill.measure, dr_drill.report),
    "soak": (soak.measure, soak.report),
}


def main(names: list[str]) -> None:
    unknown = set(names) - set(HARNESSES)
    if unknown:
        raise SystemExit(
            f"unknown harness(es): {', '.join(sorted(unknown))}; choose from {', '.join(HARNESSES)}"
        )
    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}"
    )
    results = {}
    for name in names or list(HARNESSES):
        measure, report = HARNESSES[name]
        results[name] = measure()
        print(report(results[name]), flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
