"""The `salla-pipeline` command line (its commands: `main.py`).

`run` loads the commands when it is called, not when this package is imported: worker processes
a command spawns (a bulk import's) import the script that started the command again, and need
none of the command line, its web app or its SDKs (~0.4 s of imports per worker)."""


def run() -> None:
    from data_pipeline.entrypoints.cli.main import app

    app()
