"""Imports every command module so that each attaches its commands to the root group."""

from . import backtest, cases, generate, logs, rules, scan  # noqa: F401
