"""Money and quantities: Decimal end to end.

Salla sends amounts as JSON numbers (`186`, `343.85`), as decimal strings (`"15.00"`), or wrapped
in `{"amount": ..., "currency": "SAR"}` — tax even nests one more level
(`{"percent": "15.00", "amount": {"amount": 34.5, ...}}`). Floats are converted through their
shortest repr, so `343.85` becomes Decimal("343.85"), never 343.8499999....
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache
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
    """A JSON number, decimal string or `{"amount": ...}` as a Decimal(18,4); None if absent.

    Money objects nest at most twice (tax: {"percent", "amount": {"amount", "currency"}}).
    Dispatches on exact types: this runs ~17 times per order on the worker's hot path.
    """
    kind = type(value)
    if kind is dict:
        value = _amount_of(value, field)
        kind = type(value)
    if kind is int or kind is float:
        try:
            number = _NUMBERS[value]
        except KeyError:
            number = _from_number(value)
        if number is None:
            raise InvalidPayload(f"{field}: {value!r} is not a finite number in range")
        return number
    if value is None:
        return None
    if kind is bool:
        raise InvalidPayload(f"{field}: expected a number, got a boolean")
    if kind is str:
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


def _amount_of(money: dict[str, Any], field: str) -> Any:
    for _ in range(2):
        if "amount" not in money:
            raise InvalidPayload(f"{field}: money object without 'amount'")
        value = money["amount"]
        if type(value) is not dict:
            return value
        money = value
    return money


# JSON numbers as Decimal(18,4), remembered: amounts repeat a lot (prices, shipping, tax). A
# plain dict, emptied when full, not an LRU cache: an LRU cache relinks its list on every hit,
# and 8,192 entries were too few for a store's line totals (1.5 % fewer instructions per event
# once the old cache was full; docs/benchmarks.md). Keys are compared by value: 1 and 1.0 are
# one key, as they are one amount.
_NUMBERS: dict[int | float, Decimal | None] = {}
_NUMBERS_KEPT = 65_536


def _from_number(value: float) -> Decimal | None:
    exact = Decimal(value) if type(value) is int else Decimal(repr(value))
    in_range = exact.is_finite() and abs(exact) < LIMIT
    number = exact.quantize(SCALE, rounding=ROUND_HALF_EVEN) if in_range else None
    if len(_NUMBERS) >= _NUMBERS_KEPT:
        _NUMBERS.clear()
    _NUMBERS[value] = number
    return number


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
    code = _currency_code(value) if type(value) is str else None
    if code is None:
        raise InvalidPayload(f"{field}: {str(value)[:20]!r} is not a currency code")
    return code


@lru_cache(maxsize=256)
def _currency_code(value: str) -> str | None:
    code = value.strip().upper()
    if not code.isascii() or not code.isalpha() or len(code) > _CURRENCY_MAX:
        return None
    return code


ZERO = Decimal(0).quantize(SCALE)


def amount_or_zero(value: Any, *, field: str) -> Decimal:
    parsed = parse_decimal(value, field=field)
    return ZERO if parsed is None else parsed
