"""Money and quantities: Decimal end to end.

Salla sends amounts as JSON numbers (`186`, `343.85`), as decimal strings (`"15.00"`), or wrapped
in `{"amount": ..., "currency": "SAR"}` — tax even nests one more level
(`{"percent": "15.00", "amount": {"amount": 34.5, ...}}`). Floats are converted through their
shortest repr, so `343.85` becomes Decimal("343.85"), never 343.8499999....
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from data_pipeline.errors import InvalidPayload

# The warehouse stores Decimal(18, 4): 14 integer digits and 4 fractional ones.
SCALE = Decimal("0.0001")
LIMIT = Decimal(10) ** 14
_CURRENCY_MAX = 8


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str | None


def parse_decimal(value: Any, *, field: str) -> Decimal | None:
    """A JSON number, decimal string or `{"amount": ...}` as a Decimal(18,4); None if absent."""
    if value is None:
        return None
    if isinstance(value, dict):
        if "amount" not in value:
            raise InvalidPayload(f"{field}: money object without 'amount'")
        return parse_decimal(value["amount"], field=field)
    if isinstance(value, bool):
        raise InvalidPayload(f"{field}: expected a number, got a boolean")
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise InvalidPayload(f"{field}: {value[:40]!r} is not a decimal number") from None
    else:
        raise InvalidPayload(f"{field}: expected a number, got {type(value).__name__}")
    if not number.is_finite():
        raise InvalidPayload(f"{field}: {value!r} is not a finite number")
    if abs(number) >= LIMIT:
        raise InvalidPayload(f"{field}: {value!r} is out of range")
    return number.quantize(SCALE, rounding=ROUND_HALF_EVEN)


def parse_money(value: Any, *, field: str, default_currency: str | None = None) -> Money | None:
    amount = parse_decimal(value, field=field)
    if amount is None:
        return None
    currency = default_currency
    if isinstance(value, dict) and value.get("currency") is not None:
        currency = parse_currency(value["currency"], field=f"{field}.currency")
    return Money(amount, currency)


def parse_currency(value: Any, *, field: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.isascii() or not value.strip().isalpha():
        raise InvalidPayload(f"{field}: {str(value)[:20]!r} is not a currency code")
    code = value.strip().upper()
    if len(code) > _CURRENCY_MAX:
        raise InvalidPayload(f"{field}: {code[:20]!r} is not a currency code")
    return code


def amount_or_zero(value: Any, *, field: str) -> Decimal:
    return parse_decimal(value, field=field) or Decimal(0).quantize(SCALE)
