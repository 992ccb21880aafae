"""QStash's timing rules: delays, retry backoff, retry-delay expressions, Retry-After.

Sources (see ../shared/reference/qstash.md §1.3, §2.2, §2.3):
- `Upstash-Delay`: `<n><unit>` with units s m h d, combinable (`1d10h30m`).
- Default backoff before the n-th retry (n = 1, 2, ...): min(86400, e^(2.5·n)) seconds.
- `Upstash-Retry-Delay`: an expression in milliseconds over `retried` (0 before the first retry)
  with pow sqrt abs exp floor ceil round min max.
- A failed response's Retry-After / X-RateLimit-Reset(-Requests/-Tokens) sets the next retry:
  seconds, an RFC 1123 date or a Go duration (`6m5s`); over one day falls back to the backoff.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

MAX_RETRY_WAIT_SECONDS = 86400.0
_DELAY_PART = re.compile(r"(\d+)([dhms])")
_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DELAY_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
RETRY_AFTER_HEADERS = (
    "retry-after",
    "x-ratelimit-reset",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
)


class InvalidTiming(ValueError):
    pass


def parse_delay(value: str) -> float:
    """`Upstash-Delay` in seconds."""
    text = value.strip()
    if text.isdigit():
        return float(text)
    parts = _DELAY_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise InvalidTiming(f"invalid Upstash-Delay {value!r}")
    return float(sum(int(n) * _DELAY_UNITS[u] for n, u in parts))


def default_backoff(retry_number: int) -> float:
    """Seconds to wait before retry number `retry_number` (1 for the first retry)."""
    return min(MAX_RETRY_WAIT_SECONDS, math.exp(2.5 * retry_number))


_FUNCTIONS: dict[str, Callable[..., float]] = {
    "pow": math.pow,
    "sqrt": math.sqrt,
    "abs": abs,
    "exp": math.exp,
    "floor": math.floor,
    "ceil": math.ceil,
    "round": round,
    "min": min,
    "max": max,
}
_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


def compile_retry_delay(expression: str) -> Callable[[int], float]:
    """Validate an `Upstash-Retry-Delay` expression; return retried → milliseconds."""
    if len(expression) > 200:
        raise InvalidTiming("Upstash-Retry-Delay is too long")
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        raise InvalidTiming(f"invalid Upstash-Retry-Delay {expression!r}") from None
    _check(tree.body, expression)

    def evaluate(retried: int) -> float:
        try:
            value = float(_eval(tree.body, retried))
        except (ArithmeticError, ValueError, OverflowError):
            return MAX_RETRY_WAIT_SECONDS * 1000
        return min(max(value, 0.0), MAX_RETRY_WAIT_SECONDS * 1000)

    evaluate(0)
    return evaluate


def _check(node: ast.AST, expression: str) -> None:
    allowed = (
        ast.BinOp,
        ast.UnaryOp,
        ast.Constant,
        ast.Name,
        ast.Call,
        ast.USub,
        ast.UAdd,
        ast.Load,
        *_BINARY,
    )
    for child in ast.walk(node):
        if not isinstance(child, allowed):
            raise InvalidTiming(f"invalid Upstash-Retry-Delay {expression!r}")
        if isinstance(child, ast.Name) and child.id not in ("retried", *_FUNCTIONS):
            raise InvalidTiming(f"unknown name {child.id!r} in Upstash-Retry-Delay")
        if isinstance(child, ast.Call) and not (
            isinstance(child.func, ast.Name) and child.func.id in _FUNCTIONS and not child.keywords
        ):
            raise InvalidTiming(f"invalid call in Upstash-Retry-Delay {expression!r}")
        if isinstance(child, ast.Constant) and not isinstance(child.value, int | float):
            raise InvalidTiming(f"invalid constant in Upstash-Retry-Delay {expression!r}")


def _eval(node: ast.AST, retried: int) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return retried
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, retried)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, retried), _eval(node.right, retried)
        if isinstance(node.op, ast.Pow) and abs(right) > 64:
            raise OverflowError
        return _BINARY[type(node.op)](left, right)
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    return _FUNCTIONS[node.func.id](*(_eval(arg, retried) for arg in node.args))


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The wait a failed response asks for, or None to use the backoff."""
    now = time.time() if now is None else now
    for name in RETRY_AFTER_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        wait = _parse_wait(value.strip(), name, now)
        if wait is not None:
            return wait if wait <= MAX_RETRY_WAIT_SECONDS else None
    return None


def _parse_wait(value: str, header: str, now: float) -> float | None:
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None:
        # X-RateLimit-Reset is commonly an epoch timestamp; Retry-After is a number of seconds.
        if header == "x-ratelimit-reset" and number > 1_000_000_000:
            return max(0.0, number - now)
        return max(0.0, number)
    parts = _GO_PART.findall(value)
    if parts and "".join(n + u for n, u in parts) == value:
        return sum(float(n) * _GO_UNITS[u] for n, u in parts)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None
