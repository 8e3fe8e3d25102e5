"""`python -m pipeline.cli` runs the `compliance` command."""

from . import run

run()
