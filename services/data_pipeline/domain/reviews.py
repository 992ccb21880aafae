"""Product ratings (`review.added`).

Shape from Salla's review event docs (docs.salla.dev/1726833m0, summarised in SallaApp's
partners agent kit; fixture tests/fixtures/salla/review.added.json): `type`, `rating` (a digit
string), `content`, and the nested `customer`, `product` and `order`. The customer object is
read only to recognise their name and contacts in the text: a review whose text carries any of
them, or any e-mail address or phone number, is stored without its text.

The example has no review id, so one is derived when absent: one rating per (order, product,
type), which is how Salla asks for ratings (per product of a completed order).
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from data_pipeline.domain.dates import parse_optional_datetime
from data_pipeline.domain.envelope import parse_optional_id
from data_pipeline.domain.fields import obj, text, with_cleared
from data_pipeline.domain.model import ReviewVersion
from data_pipeline.errors import InvalidPayload

REVIEW_EVENTS: frozenset[str] = frozenset({"review.added"})
_EMAIL = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")
_PHONE = re.compile(r"(?:\+?\d[\s\-().]*){7,}")
_MIN_NAME = 3  # shorter name parts ("Al") would match ordinary words


def review_version(
    review: dict[str, Any],
    *,
    merchant_id: int,
    version: int,
    event_time: datetime,
    body_key: int = 0,
) -> ReviewVersion:
    product = obj(review.get("product"), field="review.product")
    order = obj(review.get("order"), field="review.order")
    customer = obj(review.get("customer"), field="review.customer")
    product_id = parse_optional_id(
        product.get("id", review.get("product_id")), field="review.product.id"
    )
    order_id = parse_optional_id(order.get("id", review.get("order_id")), field="review.order.id")
    review_type = text(review.get("type"), field="review.type", limit=32)
    content = text(review.get("content"), field="review.content", limit=4000)
    withheld = content is not None and _personal(content, customer)
    version_ = ReviewVersion(
        merchant_id=merchant_id,
        review_id=_review_id(review, order_id, product_id, review_type),
        version=version,
        body_key=body_key,
        event_time=event_time,
        review_type=review_type,
        product_id=product_id,
        order_id=order_id,
        rating=_rating(review.get("rating")),
        content=None if withheld else content,
        content_withheld=withheld if content is not None else None,
        created_at=parse_optional_datetime(review.get("created_at"), field="review.created_at")
        or event_time,
    )
    # Text removed, or withheld from this version: the older text must not show instead.
    return with_cleared(version_, {"content": "content" in review})


def _review_id(
    review: dict[str, Any], order_id: int | None, product_id: int | None, kind: str | None
) -> int:
    own = parse_optional_id(review.get("id"), field="review.id")
    if own is not None:
        return own
    if order_id is None and product_id is None:
        raise InvalidPayload("review has no id, order or product to identify it")
    key = f"{order_id}:{product_id}:{kind}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 1 or 1


def _rating(value: Any) -> int | None:
    rating = text(value, field="review.rating", limit=8)
    if rating is None:
        return None
    try:
        number = float(rating)
    except ValueError:
        raise InvalidPayload(f"review.rating: {rating!r} is not a number") from None
    if not 0 <= number <= 5:
        raise InvalidPayload(f"review.rating: {rating!r} is outside 0-5")
    return round(number)


def _personal(content: str, customer: dict[str, Any]) -> bool:
    """Does the text name the reviewer or carry a contact? Errs towards withholding."""
    if _EMAIL.search(content) or _PHONE.search(content):
        return True
    folded = content.casefold()
    for key in ("name", "first_name", "last_name", "email", "mobile"):
        value = customer.get(key)
        if value is None or isinstance(value, dict | list):
            continue
        for part in str(value).split():
            if len(part) >= _MIN_NAME and part.casefold() in folded:
                return True
    return False
