"""Run inside an extracted bundle, in a fresh interpreter, the way Lambda runs it.

    python -I -S bench/lambda_probe.py <bundle dir> [<runtime packages dir>] < events.json

`-I -S`: no user site, no site-packages, no PYTHON* variables: only the bundle and the standard
library are importable, as on Lambda. Reads a JSON list of Lambda events from stdin, imports
the handler (the cold start), invokes it with each event in turn on the same instance (the
first invocation is the cold one, the rest are warm), and prints one JSON document: the import
time, and per invocation its status code, body and duration.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    started = time.perf_counter()
    sys.path.insert(0, sys.argv[1])
    if len(sys.argv) > 2:  # the runtime's own packages (Lambda's /var/runtime: boto3), after it
        sys.path.append(sys.argv[2])
    events = json.load(sys.stdin)
    from data_pipeline.entrypoints.lambda_handler import handler

    imported = time.perf_counter()
    results = []
    for event in events:
        before = time.perf_counter()
        answer = handler(event, None)
        results.append(
            {
                "status": answer["statusCode"],
                "body": answer.get("body", ""),
                "seconds": time.perf_counter() - before,
            }
        )
    # stdout carries the answer; anything the service logged went there first, so mark it.
    print("PROBE " + json.dumps({"import_seconds": imported - started, "invocations": results}))


if __name__ == "__main__":
    main()
