"""Retrieval documents for the app's assistant: what is embedded, and how results are ranked.

Pure: warehouse rows in, documents out; candidates in, ranking out. Personal data never enters a
document: order summaries carry items, quantities, status, city and totals, never the customer,
and any e-mail address or phone number in merchant-written text is masked before embedding.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

UNHASHED_METADATA = frozenset({"updated_at"})
MAX_TEXT_CHARS = 2000  # embedding input and metadata stay small (Pinecone: 40 KB metadata)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# International numbers (+… or 00…) and Saudi mobiles (05XXXXXXXX, 9665XXXXXXXX, 5XXXXXXXX).
_PHONE = re.compile(
    r"(?<![\w+])(?:(?:\+|00)\d(?:[\s-]?\d){7,13}|(?:966|0)?5\d(?:[\s-]?\d){7})(?!\w)"
)
_DIACRITICS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")  # + tatweel
_LETTER_FOLDS = str.maketrans(
    {"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ى": "ي", "ة": "ه", "ؤ": "و", "ئ": "ي"}
)
_ARABIC_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩", "0123456789")
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)

# Hybrid ranking: cosine similarity blended with a lexical score; an exact name (or SKU) match
# gives the full lexical weight, so a product's own name ranks it above near-identical variants.
VECTOR_WEIGHT = 0.7
LEXICAL_WEIGHT = 0.3


@dataclass(frozen=True, slots=True)
class Document:
    doc_id: str  # "product:<id>" | "order:<id>": stable, so a change replaces the vector
    entity: str
    text: str
    metadata: dict[str, Any]
    content_hash: str

    def stored_metadata(self) -> dict[str, Any]:
        return {**self.metadata, "text": self.text, "content_hash": self.content_hash}


@dataclass(frozen=True, slots=True)
class Match:
    doc_id: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)


def scrub(text: str) -> str:
    """Mask e-mail addresses and phone numbers in merchant-written text (names, descriptions,
    categories, item names): the structured fields around them are ours."""
    return _PHONE.sub("[phone]", _EMAIL.sub("[email]", text))


def normalize(text: str) -> str:
    """Fold case, Arabic diacritics and letter variants, digits and spacing for matching."""
    folded = unicodedata.normalize("NFKC", text).translate(_ARABIC_DIGITS).casefold()
    folded = _DIACRITICS.sub("", folded).translate(_LETTER_FOLDS)
    return " ".join(_TOKEN.findall(folded))


def _money(value: Any) -> str:
    return f"{Decimal(str(value)):.2f}" if value is not None else ""


def _number(value: Any) -> float | None:
    return float(value) if value is not None else None


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value or "")


def _finish(doc_id: str, entity: str, parts: Sequence[str], metadata: dict[str, Any]) -> Document:
    text = " · ".join(p for p in parts if p)[:MAX_TEXT_CHARS]
    clean = {k: v for k, v in metadata.items() if v not in (None, "", [])}
    # The hash covers what is embedded and filtered on, not bookkeeping: a product touched
    # without a visible change (stock, say) keeps its hash and is not embedded again.
    hashed = {k: v for k, v in clean.items() if k not in UNHASHED_METADATA}
    canonical = json.dumps([text, hashed], sort_keys=True, ensure_ascii=False, default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:32]
    return Document(doc_id, entity, text, clean, digest)


def product_document(row: Mapping[str, Any]) -> Document:
    """A product as the assistant should know it: name, SKU, category, price, status, text."""
    product_id = str(row["product_id"])
    name = scrub(str(row.get("name") or ""))
    category = scrub(str(row.get("category") or ""))
    price = _money(row.get("price"))
    sale = _money(row.get("sale_price")) if row.get("sale_price") else ""
    currency = str(row.get("currency") or "SAR")
    description = scrub(" ".join(str(row.get("description") or "").split())[:1200])
    parts = [
        f"Product: {name}" if name else f"Product {product_id}",
        f"SKU {row['sku']}" if row.get("sku") else "",
        f"category: {category}" if category else "",
        f"price {price} {currency}" if price else "",
        f"sale price {sale} {currency}" if sale and sale != "0.00" else "",
        f"status: {row['status']}" if row.get("status") else "",
        description,
    ]
    metadata = {
        "entity": "product",
        "product_id": product_id,
        "name": name,
        "name_key": normalize(name),
        "sku": row.get("sku"),
        "sku_key": normalize(str(row.get("sku") or "")),
        "price": _number(row.get("price")),
        "currency": currency,
        "status": row.get("status"),
        "category": category,
        "updated_at": _iso(row.get("updated_at")),
    }
    return _finish(f"product:{product_id}", "product", parts, metadata)


def order_document(row: Mapping[str, Any], items: Sequence[Mapping[str, Any]]) -> Document:
    """An order summary: items, quantities, status, city and totals; never who bought it."""
    order_id = str(row["order_id"])
    currency = str(row.get("currency") or "SAR")
    created = row.get("created_at")
    lines = [
        f"{_quantity(i.get('quantity'))} × {scrub(str(i.get('name') or 'item'))}"
        + (f" [{i['sku']}]" if i.get("sku") else "")
        for i in items
    ]
    status = str(row.get("status") or "")
    status_name = str(row.get("status_name") or "")
    parts = [
        f"Order {row.get('reference_id') or order_id}",
        f"status: {status_name} ({status})"
        if status_name and status_name != status
        else (f"status: {status}" if status else ""),
        f"date {created.date().isoformat()}" if isinstance(created, datetime) else "",
        f"city: {row['city']}" if row.get("city") else "",
        f"total {_money(row.get('total'))} {currency}" if row.get("total") is not None else "",
        f"payment: {row['payment_method']}" if row.get("payment_method") else "",
        "items: " + "; ".join(lines) if lines else "",
    ]
    metadata = {
        "entity": "order",
        "order_id": order_id,
        "reference_id": str(row.get("reference_id") or ""),
        "status": status,
        "total": _number(row.get("total")),
        "currency": currency,
        "city": row.get("city"),
        "created_at": _iso(created),
        "created_date": created.date().isoformat() if isinstance(created, datetime) else None,
        "item_count": sum(_quantity(i.get("quantity")) for i in items),
        "product_ids": sorted({str(i["product_id"]) for i in items if i.get("product_id")}),
        "skus": sorted({str(i["sku"]) for i in items if i.get("sku")}),
    }
    return _finish(f"order:{order_id}", "order", parts, metadata)


def _quantity(value: Any) -> int:
    try:
        return int(Decimal(str(value)))
    except (ArithmeticError, ValueError):
        return 1


def lexical_score(query_key: str, metadata: Mapping[str, Any]) -> float:
    """1.0 for the exact name or SKU; otherwise the share of query words the name and text
    contain (names count fully, other text half)."""
    if not query_key:
        return 0.0
    if query_key in (metadata.get("name_key"), metadata.get("sku_key")):
        return 1.0
    words = query_key.split()
    name = set(str(metadata.get("name_key") or "").split())
    text = set(normalize(str(metadata.get("text") or "")).split())
    score = sum(1.0 if w in name else 0.5 if w in text else 0.0 for w in words) / len(words)
    return 0.9 * score  # a partial match never equals an exact one


def hybrid_rank(query: str, candidates: Sequence[Match], top_k: int) -> list[Match]:
    """Blend vector similarity with lexical evidence; one entry per document, best first."""
    key = normalize(query)
    best: dict[str, tuple[bool, Match]] = {}
    for candidate in candidates:
        lexical = lexical_score(key, candidate.metadata)
        score = VECTOR_WEIGHT * candidate.score + LEXICAL_WEIGHT * lexical
        current = best.get(candidate.doc_id)
        if current is None or score > current[1].score:
            match = Match(candidate.doc_id, round(score, 6), candidate.metadata)
            best[candidate.doc_id] = (lexical == 1.0, match)
    # Exact name/SKU matches form the first tier whatever the vectors say: a product's own
    # name must find it even where the embedding ranks unrelated or look-alike items closer.
    ranked = sorted(best.values(), key=lambda pair: (not pair[0], -pair[1].score, pair[1].doc_id))
    return [match for _, match in ranked[:top_k]]


# -- metadata filters -------------------------------------------------------------------------
FILTER_FIELDS = {
    "entity": str,
    "status": str,
    "sku": str,
    "category": str,
    "currency": str,
    "city": str,
    "product_id": str,
    "order_id": str,
    "created_date": str,
    "price": float,
    "total": float,
    "item_count": float,
}
_EQUALITY = ("$eq", "$ne")
_ORDERING = ("$gt", "$gte", "$lt", "$lte")  # numeric fields only
_LISTS = ("$in", "$nin")
_COMPARISONS = {*_EQUALITY, *_ORDERING, *_LISTS}


class FilterError(ValueError):
    """A search filter outside the supported subset of Pinecone's filter language."""


def validate_filter(spec: Any) -> dict[str, dict[str, Any]]:
    """Pinecone's metadata filter subset both stores support: {field: value} or
    {field: {$op: value}} on known fields, ANDed. Returns the normalised {field: {op: value}}."""
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise FilterError("filter must be an object")
    normalised: dict[str, dict[str, Any]] = {}
    for name, condition in spec.items():
        kind = FILTER_FIELDS.get(name)
        if kind is None:
            raise FilterError(f"filter field {name!r} is not one of {sorted(FILTER_FIELDS)}")
        operations = condition if isinstance(condition, dict) else {"$eq": condition}
        if not operations:
            raise FilterError(f"filter on {name!r} is empty")
        for operator, value in operations.items():
            if operator not in _COMPARISONS:
                raise FilterError(f"filter operator {operator!r} is not supported")
            values = value if operator in _LISTS else [value]
            if operator in _LISTS and not (isinstance(value, list) and value):
                raise FilterError(f"{operator} on {name!r} needs a non-empty list")
            for item in values:
                numeric = isinstance(item, int | float) and not isinstance(item, bool)
                if (kind is float and not numeric) or (kind is str and not isinstance(item, str)):
                    raise FilterError(f"filter on {name!r} needs {kind.__name__} values")
                if kind is str and operator in _ORDERING:
                    raise FilterError(f"{operator} needs a numeric field, not {name!r}")
        normalised[name] = dict(operations)
    return normalised


def filter_json_schema() -> dict[str, Any]:
    """The grammar `validate_filter` accepts, as JSON Schema (the API documents it)."""
    fields = {}
    for name, kind in FILTER_FIELDS.items():
        scalar = {"type": "number"} if kind is float else {"type": "string"}
        operators = (*_EQUALITY, *_ORDERING) if kind is float else _EQUALITY
        condition = {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": {
                **{operator: scalar for operator in operators},
                **{op: {"type": "array", "minItems": 1, "items": scalar} for op in _LISTS},
            },
        }
        fields[name] = {"anyOf": [scalar, condition]}
    return {
        "anyOf": [
            {"type": "object", "properties": fields, "additionalProperties": False},
            {"type": "null"},
        ]
    }
