"""Structured JSON logs. Values passed to log calls are ids and outcomes, never secrets or PII.

structlog renders each event to one JSON line and hands it to the standard library's logging, so
the host decides where it goes (stdout in Lambda and the dev stack, captured per test in pytest).
"""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

import structlog


def refuse_cold_start(function: str, message: str) -> NoReturn:
    """A function whose configuration is missing or malformed logs one line and fails its cold
    start, so it never answers a request half-configured."""
    logging.basicConfig(stream=sys.stdout, format="%(message)s")
    logging.getLogger(function).error(message)
    raise SystemExit(1)


def configure_logging(level: str = "INFO") -> None:
    numeric = logging.getLevelName(level)
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
    root.setLevel(numeric)
    # httpx logs every request (URLs, no bodies) at INFO; too chatty for a service's logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
