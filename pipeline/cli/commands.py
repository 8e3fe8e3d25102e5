"""Imports every command module so that each attaches its commands to the root group (the CLI
itself imports each only when its command runs: ``COMMANDS`` in the package)."""

from . import backtest, cases, enforce, generate, logs, quarantine, rules, scan, web  # noqa: F401
