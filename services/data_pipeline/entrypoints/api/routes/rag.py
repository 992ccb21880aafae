"""Retrieval for the app's AI assistant: hybrid search over a merchant's products and orders."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

from data_pipeline.domain.rag import FILTER_FIELDS, FilterError, filter_json_schema
from data_pipeline.entrypoints.api.deps import ContainerDep, ServiceAuth
from data_pipeline.entrypoints.api.schemas import NOT_JSON, MerchantId, Problem, unprocessable
from data_pipeline.errors import TransientError

router = APIRouter(prefix="/api/rag", tags=["retrieval"], dependencies=[ServiceAuth])


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    merchantId: MerchantId = Field(
        description="Salla merchant (store) id.", examples=["1305146709"]
    )
    query: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=500, pattern=r"\S"),
    ] = Field(description="Free text, Arabic or English.", examples=["قهوة عربية"])
    topK: int = Field(5, ge=1, le=50, description="How many matches to return.")
    filter: Annotated[dict[str, Any] | None, WithJsonSchema(filter_json_schema())] = Field(
        None,
        description="Metadata filter in Pinecone's syntax, ANDed: {field: value} or "
        "{field: {$eq|$ne|$gt|$gte|$lt|$lte|$in|$nin: value}} on "
        + ", ".join(sorted(FILTER_FIELDS)),
        examples=[{"entity": "product", "price": {"$lte": 100}}],
    )


class SearchMatch(BaseModel):
    id: str = Field(description='"product:<id>" or "order:<id>"')
    score: float = Field(
        description="Hybrid score: 0.7 × cosine similarity + 0.3 × lexical; exact name or SKU "
        "matches are listed first."
    )
    metadata: dict[str, Any]


class SearchResult(BaseModel):
    matches: list[SearchMatch]


@router.post(
    "/search",
    response_model=SearchResult,
    summary="Search a merchant's products and orders",
    responses={
        401: {"model": Problem, "description": "Missing or invalid PIPELINE_API_KEY"},
        **NOT_JSON,
        503: {"model": Problem, "description": "RAG disabled, or embeddings/vectors unavailable"},
    },
)
async def search(body: SearchRequest, container: ContainerDep, response: Response) -> SearchResult:
    """Best matches first. A query equal to a product's name or SKU (any case, Arabic
    diacritics and letter variants folded) ranks that product first."""
    if container.rag is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="RAG is not enabled")
    try:
        matches = await container.rag.search.search(
            body.merchantId, body.query, body.topK, body.filter
        )
    except FilterError as error:
        raise unprocessable(("body", "filter"), str(error)) from None
    except TransientError as error:
        headers = {"Retry-After": str(max(1, int(error.retry_after or 5)))}
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(error)[:300], headers=headers
        ) from None
    return SearchResult(
        matches=[SearchMatch(id=m.doc_id, score=m.score, metadata=m.metadata) for m in matches]
    )
