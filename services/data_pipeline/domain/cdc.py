"""Change data capture from PostgreSQL: column types to ClickHouse types, and PostgreSQL's text
output of a value to the value ClickHouse stores. Pure.

A value that does not fit its column is refused with the table, column and reason (the batch is
dead-lettered with it), never rounded or truncated: `numeric` without a declared precision maps
to `Decimal(38, 9)`, and a value with more than 9 decimals or 29 integer digits is refused.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_DOWN, Decimal, InvalidOperation, localcontext

from data_pipeline.errors import InvalidPayload

UNBOUNDED_NUMERIC = (38, 9)
# Timestamps travel as microseconds since the epoch through a float on the way into ClickHouse
# (clickhouse-connect): beyond 2**53 µs (before 1685, after 2255) the last digits would change.
TIMESTAMP_YEARS = (1700, 2254)
# Built-in type OIDs (pg_type.oid, stable across PostgreSQL versions) to ClickHouse types.
_SCALARS = {
    16: "Bool",
    20: "Int64",
    21: "Int16",
    23: "Int32",
    26: "UInt32",
    700: "Float32",
    701: "Float64",
    25: "String",
    1043: "String",
    1042: "String",
    19: "String",
    18: "String",
    114: "String",  # json: the JSON text
    3802: "String",  # jsonb: the JSON text, as PostgreSQL normalises it
    1184: "DateTime64(6, 'UTC')",
    1114: "DateTime64(6)",
    1082: "Date32",
    2950: "UUID",
}
_ARRAYS = {
    1000: 16,
    1005: 21,
    1007: 23,
    1016: 20,
    1021: 700,
    1022: 701,
    1009: 25,
    1015: 1043,
    1014: 1042,
    199: 114,
    3807: 3802,
    1185: 1184,
    1115: 1114,
    1182: 1082,
    2951: 2950,
    1231: 1700,
}
NUMERIC = 1700


class Unsupported(InvalidPayload):
    """A column whose type CDC does not map, or a value that does not fit its column."""


@dataclass(frozen=True, slots=True)
class SourceType:
    """What the capture knows about a column's type (enums come from the catalog)."""

    oid: int
    modifier: int = -1
    is_enum: bool = False
    element_oid: int | None = None  # for arrays of non-built-in element types
    element_is_enum: bool = False
    name: str = ""


def clickhouse_type(source: SourceType, *, where: str) -> str:
    """The column's ClickHouse type, without Nullable (the sink adds it where allowed)."""
    if source.is_enum:
        return "LowCardinality(String)"
    if source.oid == NUMERIC:
        return _decimal(source.modifier)
    if source.oid in _SCALARS:
        return _SCALARS[source.oid]
    element = _ARRAYS.get(source.oid, source.element_oid)
    if element is not None:
        if source.element_is_enum:
            return "Array(LowCardinality(Nullable(String)))"
        inner = _decimal(-1) if element == NUMERIC else _SCALARS.get(element)
        if inner is not None:
            return f"Array(Nullable({inner}))"
    raise Unsupported(f"{where}: type {source.name or source.oid} is not mapped to ClickHouse")


def _decimal(modifier: int) -> str:
    if modifier < 4:
        return f"Decimal({UNBOUNDED_NUMERIC[0]}, {UNBOUNDED_NUMERIC[1]})"
    precision, scale = ((modifier - 4) >> 16) & 0xFFFF, (modifier - 4) & 0xFFFF
    return f"Decimal({precision}, {scale})"


def convert(text: str | None, clickhouse: str, *, where: str) -> object:
    """PostgreSQL's text output of one value, as ClickHouse `clickhouse` stores it."""
    if text is None:
        return [] if clickhouse.startswith("Array(") else None
    try:
        return _convert(text, clickhouse, where)
    except Unsupported:
        raise
    except (ValueError, InvalidOperation, ArithmeticError) as error:
        raise Unsupported(f"{where}: {text[:40]!r} is not a {clickhouse} ({error})") from None


def _convert(text: str, clickhouse: str, where: str) -> object:
    if clickhouse.startswith("Array("):
        inner = clickhouse[len("Array(") : -1]
        if inner.startswith("Nullable("):
            inner = inner[len("Nullable(") : -1]
        elif inner.startswith("LowCardinality(Nullable("):
            inner = "String"
        return [None if e is None else _convert(e, inner, where) for e in parse_array(text)]
    if clickhouse.startswith(("Int", "UInt")):
        return int(text)
    if clickhouse.startswith("Float"):
        return float(text)  # accepts NaN, Infinity, -Infinity as PostgreSQL writes them
    if clickhouse == "Bool":  # the output function says t/f, a cast to text true/false
        if text not in ("t", "f", "true", "false"):
            raise ValueError("not a boolean")
        return text in ("t", "true")
    if clickhouse.startswith("Decimal("):
        return _fit_decimal(text, clickhouse, where)
    if clickhouse.startswith("DateTime64"):
        return _timestamp(text, where)
    if clickhouse == "Date32":
        if text in ("infinity", "-infinity") or text.endswith(" BC"):
            raise Unsupported(f"{where}: date {text!r} is outside what ClickHouse stores")
        return date.fromisoformat(text)
    if clickhouse == "UUID":
        return uuid.UUID(text)
    return text


def _fit_decimal(text: str, clickhouse: str, where: str) -> Decimal:
    precision, scale = (int(p) for p in clickhouse[len("Decimal(") : -1].split(","))
    if text in ("NaN", "Infinity", "-Infinity"):
        raise Unsupported(f"{where}: {text} does not fit {clickhouse}")
    value = Decimal(text)
    with localcontext() as context:
        # Decimal(76, s) at most: every step here exact, never the default 28-digit rounding
        # (which would make abs() of a 29-digit value round up past the limit).
        context.prec = 80
        exact = value.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_DOWN)
        fits = exact == value and abs(exact) < Decimal(10) ** (precision - scale)
    if not fits:
        raise Unsupported(f"{where}: {text[:40]} does not fit {clickhouse} (would need rounding)")
    return exact


def _timestamp(text: str, where: str) -> datetime:
    if text in ("infinity", "-infinity") or text.endswith(" BC"):
        raise Unsupported(f"{where}: timestamp {text!r} is outside what ClickHouse stores")
    # PostgreSQL (DateStyle ISO, TimeZone UTC in the capture session): "2024-01-02 03:04:05.6+00"
    moment = datetime.fromisoformat(text)
    if not math.isfinite(moment.timestamp()):
        raise ValueError("not finite")
    if not TIMESTAMP_YEARS[0] <= moment.year <= TIMESTAMP_YEARS[1]:
        raise Unsupported(f"{where}: timestamp {text!r} is outside what ClickHouse stores exactly")
    return moment


def parse_array(text: str) -> list[str | None]:
    """A one-dimensional PostgreSQL array literal: {1,2,NULL,"a \\"b\\"",""}."""
    if not (text.startswith("{") and text.endswith("}")):
        raise ValueError("not an array literal")
    body = text[1:-1]
    if not body:
        return []
    if body.startswith("{"):
        raise ValueError("multi-dimensional arrays are not supported")
    items: list[str | None] = []
    at = 0
    while at <= len(body):
        if at < len(body) and body[at] == '"':
            at += 1
            chars = []
            while body[at] != '"':
                if body[at] == "\\":
                    at += 1
                chars.append(body[at])
                at += 1
            items.append("".join(chars))
            at += 1
        else:
            end = body.find(",", at)
            end = len(body) if end < 0 else end
            raw = body[at:end]
            items.append(None if raw == "NULL" else raw)
            at = end
        at += 1  # the comma
    return items


def text_snapshot_supported(clickhouse: str) -> bool:
    """Whether ClickHouse converts this column from PostgreSQL's text output itself (a snapshot
    in COPY text): every mapped type but arrays, whose `{…}` literal it does not read."""
    return not clickhouse.startswith("Array(")


def table_name(schema: str, table: str) -> str:
    """The ClickHouse name of a captured table: `table` for public, `schema__table` otherwise."""
    return table if schema == "public" else f"{schema}__{table}"
