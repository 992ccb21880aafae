"""Request and answer types shared by the app-facing routers (sync jobs, RAG search)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import HTTPException
from pydantic import BaseModel, BeforeValidator, WithJsonSchema

# What the API accepts as a merchant id, stated in the OpenAPI document exactly as enforced
# (a fuzzer holds the two to each other): a positive integer, or its decimal digits.
# Fifteen digits: Salla's ids have ten, and larger JSON numbers lose precision in clients and
# validators that read numbers as doubles (2^53), which would make the bound ambiguous.
MAX_MERCHANT_ID = 10**15 - 1
MERCHANT_ID_PATTERN = r"^[1-9][0-9]{0,14}$"
MERCHANT_ID_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 1, "maximum": MAX_MERCHANT_ID},
        {"type": "string", "pattern": MERCHANT_ID_PATTERN},
    ],
    "description": "Salla merchant (store) id: a number or its digits.",
}


def parse_merchant_id(value: Any) -> int:
    """A Salla merchant id; a ValueError naming the field otherwise (FastAPI: a 422)."""
    if (isinstance(value, str) and re.fullmatch(MERCHANT_ID_PATTERN, value)) or (
        type(value) is float and value.is_integer()
    ):
        value = int(value)
    if type(value) is not int or not 0 < value <= MAX_MERCHANT_ID:
        raise ValueError(f"merchantId: {str(value)[:30]!r} is not a valid id")
    return value


MerchantId = Annotated[int, BeforeValidator(parse_merchant_id), WithJsonSchema(MERCHANT_ID_SCHEMA)]


class Problem(BaseModel):
    detail: str


def unprocessable(location: tuple[str, ...], message: str) -> HTTPException:
    """A 422 in FastAPI's own validation shape, so every 422 the API documents has one schema."""
    return HTTPException(
        422, detail=[{"loc": list(location), "msg": message, "type": "value_error"}]
    )


# Routes that read a JSON body: one that is not JSON at all is refused before validation.
NOT_JSON = {400: {"model": Problem, "description": "The body is not JSON"}}
JOB_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
