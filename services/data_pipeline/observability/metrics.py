"""Prometheus metrics, one registry per application instance (tests build many apps)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

SETTLED_OUTCOMES = ("loaded", "duplicate", "ignored", "dead_lettered")


class PipelineMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.webhooks_received = Counter(
            "pipeline_webhooks_received", "Webhook requests by result.", ["result"], registry=r
        )
        self.webhooks_accepted = Counter(
            "pipeline_webhooks_accepted",
            "Webhooks durably handed to the queue (answered 200).",
            registry=r,
        )
        self.events_settled = Counter(
            "pipeline_events_settled", "Accepted events by final outcome.", ["outcome"], registry=r
        )
        self.events_recovered = Counter(
            "pipeline_events_recovered",
            "Dead-lettered events later loaded by a DLQ replay (already counted as settled).",
            registry=r,
        )
        self.redeliveries = Counter(
            "pipeline_redeliveries", "Queue redeliveries of a message already settled.", registry=r
        )
        self.queue_publish_failures = Counter(
            "pipeline_queue_publish_failures",
            "Publishes to QStash that failed.",
            ["topic"],
            registry=r,
        )
        self.deliveries_rejected = Counter(
            "pipeline_deliveries_rejected",
            "Queue deliveries refused before processing.",
            ["reason"],
            registry=r,
        )
        self.delivery_failures = Counter(
            "pipeline_delivery_failures",
            "Deliveries answered 5xx so QStash retries.",
            ["reason"],
            registry=r,
        )
        self.ack_seconds = Histogram(
            "pipeline_webhook_ack_seconds",
            "Webhook ack latency inside the service.",
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.freshness_seconds = Histogram(
            "pipeline_event_freshness_seconds",
            "Webhook accepted → loaded in the warehouse.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 15, 60, 300, 3600),
            registry=r,
        )
        self.flush_rows = Histogram(
            "pipeline_warehouse_flush_rows",
            "Rows per warehouse insert round.",
            buckets=(1, 5, 20, 100, 500, 2000, 10000, 50000),
            registry=r,
        )
        self.flush_seconds = Histogram(
            "pipeline_warehouse_flush_seconds", "Duration of a warehouse insert round.", registry=r
        )
        self.rag_documents = Counter(
            "pipeline_rag_documents",
            "Retrieval documents handled by the embed step, by outcome (unchanged = an "
            "embedding call saved by the content hash).",
            ["outcome"],
            registry=r,
        )
        self.cdc_changes = Counter(
            "pipeline_cdc_changes",
            "Captured PostgreSQL changes applied to ClickHouse, by table and operation "
            "(u upsert, d delete, t truncate; snapshot rows count as u).",
            ["table", "op"],
            registry=r,
        )
        self.cdc_lag_seconds = Gauge(
            "pipeline_cdc_lag_seconds",
            "Source commit to applied in ClickHouse, for the newest change applied.",
            registry=r,
        )
        self.cdc_slot_retained_bytes = Gauge(
            "pipeline_cdc_slot_retained_bytes",
            "WAL the replication slot keeps on the PostgreSQL primary (alarm: a stalled slot "
            "fills its disk).",
            registry=r,
        )
        self.archive_pending = Gauge(
            "pipeline_archive_pending_events",
            "Events loaded into the warehouse whose raw archive write failed, not yet archived "
            "by a retry (this instance).",
            registry=r,
        )
        self.archive_failures = Counter(
            "pipeline_archive_write_failures", "Raw archive writes that failed.", registry=r
        )
        self.archive_objects = Counter(
            "pipeline_archive_objects",
            "Raw archive objects by result (written, or already there).",
            ["result"],
            registry=r,
        )
        for outcome in SETTLED_OUTCOMES:
            self.events_settled.labels(outcome)

    def settle(self, outcome: str) -> None:
        self.events_settled.labels(outcome).inc()

    def observe_flush(self, rows: int, seconds: float) -> None:
        self.flush_rows.observe(rows)
        self.flush_seconds.observe(seconds)

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def settled_total(self) -> float:
        return sum(
            self.sample("pipeline_events_settled_total", outcome=o) for o in SETTLED_OUTCOMES
        )

    def accepted_total(self) -> float:
        return self.sample("pipeline_webhooks_accepted_total")

    def settlement(self) -> dict[str, Any]:
        """Accepted vs settled events of this process (equal once the system is quiet)."""
        outcomes = {
            outcome: self.sample("pipeline_events_settled_total", outcome=outcome)
            for outcome in SETTLED_OUTCOMES
        }
        return {
            "accepted": self.accepted_total(),
            "settled": sum(outcomes.values()),
            "outcomes": outcomes,
            "recovered": self.sample("pipeline_events_recovered_total"),
        }
