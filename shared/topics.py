"""Queue topic names and the service's HTTP paths, shared by the service and the infrastructure."""

from __future__ import annotations

# QStash URL groups ("topics"). URL groups and flow-control keys are account-level, so every
# deployment prefixes them (QSTASH_TOPIC_PREFIX, one per stack): `scoped(prefix, name)`.
RAW_EVENTS_TOPIC = "raw-events"
CDC_EVENTS_TOPIC = "cdc-events"
NOTIFICATIONS_TOPIC = "notifications"
ALL_TOPICS = (RAW_EVENTS_TOPIC, CDC_EVENTS_TOPIC, NOTIFICATIONS_TOPIC)

# QStash flow-control keys, one per kind of worker delivery, each with its own parallelism: a
# backfill or an embedding backlog can never take the worker slots real-time events need, and
# together they stay below the worker function's concurrency, so QStash never meets a throttle.
EVENTS_FLOW = "events"
SYNC_FLOW = "sync"
EMBED_FLOW = "embed"
ALL_FLOWS = (EVENTS_FLOW, SYNC_FLOW, EMBED_FLOW)


def scoped(prefix: str, name: str) -> str:
    """A deployment's own name for an account-level QStash resource."""
    return prefix + name


# Paths served by the data-pipeline service.
WEBHOOK_PATH = "/api/webhooks/salla"
PROCESS_EVENT_PATH = "/api/queue/process-event"
SYNC_STEP_PATH = "/api/queue/sync-step"
EMBED_PATH = "/api/queue/embed"
HEALTH_PATH = "/healthz"
MIGRATE_PATH = "/api/ops/migrate"
IMPORT_PATH = "/api/ops/import"
IMPORT_MAX_BYTES = 32 * 2**20  # one chunk of JSON Lines sent there (`import-events --url`)
CDC_EVENT_PATH = "/api/queue/cdc-event"
CDC_DRAIN_PATH = "/api/queue/cdc-drain"
# The schedule that drains the replication slot when the service cannot hold a connection open.
CDC_DRAIN_CRON = "* * * * *"

# Which service path each topic delivers to. Topics without an entry have no subscriber in this
# service (other services add their own endpoints to them).
TOPIC_DELIVERY_PATHS: dict[str, str] = {
    RAW_EVENTS_TOPIC: PROCESS_EVENT_PATH,
    CDC_EVENTS_TOPIC: CDC_EVENT_PATH,
}
