"""Local-stack helpers, mounted only when PIPELINE_ENVIRONMENT is local or test.

chDB locks its data directory, so while the dev stack runs, other readers (the demo, the CLI)
query the warehouse through this read-only endpoint instead of opening the engine themselves.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from data_pipeline.adapters.clickhouse_warehouse import QueryRejected
from data_pipeline.entrypoints.api.deps import ContainerDep, ServiceAuth
from data_pipeline.entrypoints.api.schemas import Problem
from data_pipeline.errors import TransientError

router = APIRouter(
    prefix="/api/dev",
    tags=["local development"],
    dependencies=[ServiceAuth],
    responses={401: {"model": Problem, "description": "Missing or wrong PIPELINE_API_KEY"}},
)


class SqlQuery(BaseModel):
    sql: str = Field(min_length=1, max_length=20_000)
    parameters: dict[str, Any] = {}


class SqlResult(BaseModel):
    columns: list[str]
    rows: list[list[Any]]


class Settlement(BaseModel):
    accepted: float
    settled: float
    outcomes: dict[str, float]
    recovered: float


@router.post(
    "/sql",
    response_model=SqlResult,
    responses={
        400: {"model": Problem, "description": "Not JSON, or a query the warehouse refused"},
        503: {"model": Problem, "description": "Warehouse unavailable"},
    },
)
async def query_warehouse(query: SqlQuery, container: ContainerDep) -> SqlResult:
    """Run a read-only SQL query against the local warehouse."""
    try:
        result = await run_in_threadpool(container.warehouse.query, query.sql, query.parameters)
    except QueryRejected as error:
        raise HTTPException(400, detail=str(error)) from None
    except TransientError as error:
        raise HTTPException(503, detail=str(error)) from None
    return SqlResult(
        columns=list(result.columns), rows=[[_json(v) for v in row] for row in result.rows]
    )


@router.get("/settlement", response_model=Settlement)
async def settlement(container: ContainerDep) -> Settlement:
    """Accepted vs settled event counts of this instance (equal once the system is quiet)."""
    return Settlement(**container.metrics.settlement())


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
