"""Queue topic names and the service's HTTP paths, shared by the service and the infrastructure."""

from __future__ import annotations

# QStash URL groups ("topics").
RAW_EVENTS_TOPIC = "raw-events"
CDC_EVENTS_TOPIC = "cdc-events"
NOTIFICATIONS_TOPIC = "notifications"
ALL_TOPICS = (RAW_EVENTS_TOPIC, CDC_EVENTS_TOPIC, NOTIFICATIONS_TOPIC)

# Paths served by the data-pipeline service.
WEBHOOK_PATH = "/api/webhooks/salla"
PROCESS_EVENT_PATH = "/api/queue/process-event"
SYNC_STEP_PATH = "/api/queue/sync-step"
EMBED_PATH = "/api/queue/embed"
HEALTH_PATH = "/healthz"

# Which service path each topic delivers to. Topics without an entry have no subscriber in this
# service (other services add their own endpoints to them).
TOPIC_DELIVERY_PATHS: dict[str, str] = {RAW_EVENTS_TOPIC: PROCESS_EVENT_PATH}
