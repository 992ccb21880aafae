"""The `salla-pipeline` command line (its commands: `main.py`).

`run` loads the commands when it is called, not when this package is imported: worker processes
a command spawns (a bulk import's) import the script that started the command again, and need
none of the command line, its web app or its SDKs (~0.4 s of imports per worker)."""

import os


def run() -> None:
    # chDB imports numpy, whose OpenBLAS starts a thread per core that spins at start-up:
    # 0.05-0.3 s of CPU taken from chDB's own start (measured), for linear algebra nothing
    # here does. Set before anything imports numpy; an explicit setting wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from data_pipeline.entrypoints.cli.main import app

    app()
