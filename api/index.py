"""Vercel entrypoint: the same FastAPI app as Lambda, configured from the environment.

Vercel installs pyproject.toml's (production) dependencies; the service's packages are put on
the path from the repository checkout it deploys.
"""

import gc
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "services"), str(ROOT)]

from data_pipeline.entrypoints.api.app import create_app  # noqa: E402

app = create_app()
gc.freeze()  # the start-up's objects out of the cyclic GC's sight, as on Lambda (lambda_handler.py)
