"""The domain events this service publishes: their JSON Schemas, for the app core's consumers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from data_pipeline.entrypoints.api.deps import ContainerDep, ServiceAuth
from data_pipeline.entrypoints.api.schemas import Problem
from shared.domain_events import EVENT_NAMES, SCHEMA_VERSION, event_topic, event_type, schema

router = APIRouter(prefix="/api/events", tags=["domain events"], dependencies=[ServiceAuth])


class EventSchema(BaseModel):
    name: str = Field(description="Event name, e.g. order.created.")
    type: str = Field(description="CloudEvents `type`, e.g. sa.salla.order.created.v1.")
    topic: str = Field(description="The QStash topic (URL group) it is published to.")
    published: bool = Field(
        description="Whether this deployment publishes it (it has subscribers)."
    )
    jsonSchema: dict[str, Any] = Field(description="JSON Schema (2020-12) of the CloudEvent.")


class EventSchemas(BaseModel):
    schemaVersion: str
    events: list[EventSchema]


@router.get(
    "/schema",
    response_model=EventSchemas,
    summary="JSON Schemas of the domain events (CloudEvents 1.0, structured JSON)",
    responses={401: {"model": Problem, "description": "Missing or invalid service key"}},
)
async def event_schemas(container: ContainerDep) -> EventSchemas:
    """Every event the pipeline can publish, with its topic and whether it is published here."""
    settings = container.settings
    published = set(settings.domain_event_list)
    return EventSchemas(
        schemaVersion=SCHEMA_VERSION,
        events=[
            EventSchema(
                name=name,
                type=event_type(name),
                topic=settings.topic(event_topic(name)),
                published=name in published,
                jsonSchema=schema(name),
            )
            for name in EVENT_NAMES
        ],
    )
