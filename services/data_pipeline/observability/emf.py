"""CloudWatch Embedded Metric Format from the same metric definitions as /metrics.

A Prometheus counter in one Lambda instance means little (instances come and go, and nothing
scrapes them); what Lambda users read is CloudWatch. After each invocation the handler calls
`flush()`, which writes one EMF line per metric family that changed since the last flush to
stdout (the function's log group): counters as their increase, histograms as the Values/Counts
of the observations made since (EMF's histogram form), with the labels as dimensions plus the
deployment (the stack) and the function's role. CloudWatch extracts them into metrics with no
agent and no API call.
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import orjson
from prometheus_client import CollectorRegistry

NAMESPACE = "SallaPipeline"
MAX_DIMENSIONS = 30  # EMF's limit per dimension set


class EmfExporter:
    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        deployment: str,
        role: str,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._registry = registry
        self._fixed = {"Deployment": deployment, "Role": role}
        self._stream = stream
        self._clock = clock
        self._last: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def flush(self) -> list[dict[str, Any]]:
        """Write (and return) one EMF document per metric family with new observations."""
        documents = []
        for family in self._registry.collect():
            if family.type == "counter":
                documents += self._counter(family)
            elif family.type == "histogram":
                documents += self._histogram(family)
        stream = self._stream or sys.stdout
        for document in documents:
            stream.write(orjson.dumps(document).decode() + "\n")
        stream.flush()
        return documents

    def _delta(self, name: str, labels: dict[str, str], value: float) -> float:
        key = (name, tuple(sorted(labels.items())))
        previous = self._last.get(key, 0.0)
        self._last[key] = value
        return value - previous

    def _counter(self, family: Any) -> list[dict[str, Any]]:
        documents = []
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue  # `_created` timestamps
            increase = self._delta(sample.name, sample.labels, sample.value)
            if increase > 0:
                documents.append(self._document(sample.name, sample.labels, increase, "Count"))
        return documents

    def _histogram(self, family: Any) -> list[dict[str, Any]]:
        groups: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                labels = {k: v for k, v in sample.labels.items() if k != "le"}
                bound = float(sample.labels["le"])
                increase = self._delta(sample.name, sample.labels, sample.value)
                groups.setdefault(tuple(sorted(labels.items())), []).append((bound, increase))
        documents = []
        for labels, buckets in groups.items():
            values: list[float] = []
            counts: list[float] = []
            below, last_finite = 0.0, 0.0
            for bound, cumulative in sorted(buckets):
                count = cumulative - below  # buckets are cumulative
                below = cumulative
                if bound != float("inf"):
                    last_finite = bound
                if count > 0:
                    # The bucket's upper bound stands for its observations (+Inf: the last
                    # finite bound): the resolution the Prometheus buckets give.
                    values.append(last_finite)
                    counts.append(count)
            if counts:
                unit = "Seconds" if family.name.endswith("_seconds") else "None"
                metric = {"Values": values, "Counts": counts}
                documents.append(self._document(family.name, dict(labels), metric, unit))
        return documents

    def _document(self, name: str, labels: dict[str, str], value: Any, unit: str) -> dict[str, Any]:
        dimensions = [*self._fixed, *labels][:MAX_DIMENSIONS]
        return {
            "_aws": {
                "Timestamp": int(self._clock() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": NAMESPACE,
                        "Dimensions": [dimensions],
                        "Metrics": [{"Name": name, "Unit": unit}],
                    }
                ],
            },
            **self._fixed,
            **labels,
            name: value,
        }
