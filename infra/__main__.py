"""Pulumi program entry point (Pulumi.yaml: `main: infra/`); the stack is in infra/program.py."""

from infra.program import run

run()
