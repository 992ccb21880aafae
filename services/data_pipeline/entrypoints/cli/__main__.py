"""`python -m data_pipeline.entrypoints.cli`: the command line, as `salla-pipeline`. A spawned
worker process skips a `__main__` module rather than importing it again (see `run`)."""

from data_pipeline.entrypoints.cli import run

run()
