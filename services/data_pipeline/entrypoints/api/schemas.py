"""Request and answer types shared by the app-facing routers (sync jobs, RAG search)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator

from data_pipeline.domain.envelope import parse_id
from data_pipeline.errors import InvalidPayload


def parse_merchant_id(value: Any) -> int:
    """A Salla merchant id (a number or a string of digits) as the domain parses ids; a
    ValueError naming the field otherwise, which FastAPI turns into a 422."""
    try:
        return parse_id(value, field="merchantId")
    except InvalidPayload as error:
        raise ValueError(str(error)) from None


MerchantId = Annotated[int, BeforeValidator(parse_merchant_id)]


class Problem(BaseModel):
    detail: str
