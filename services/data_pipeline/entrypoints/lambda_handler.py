"""AWS Lambda entrypoint: the FastAPI app behind API Gateway (HTTP API) through Mangum.

Built once per cold start. Missing or malformed configuration is reported as one log line and
the cold start fails, so the function never answers a request half-configured.
"""

from __future__ import annotations

import logging
import sys

from mangum import Mangum

from data_pipeline.entrypoints.api.app import create_app
from shared.contract import ConfigurationError, load_settings


def _build() -> Mangum:
    try:
        settings = load_settings()
    except ConfigurationError as error:
        logging.basicConfig(stream=sys.stdout, format="%(message)s")
        logging.getLogger("lambda").error(str(error))
        raise SystemExit(1) from None
    # lifespan off: Lambda freezes the process between invocations; nothing to open or close.
    return Mangum(create_app(settings=settings), lifespan="off")


handler = _build()
