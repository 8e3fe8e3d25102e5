"""Imports every command module so that each attaches its commands to the root group."""

from . import backtest, cases, enforce, generate, logs, quarantine, rules, scan, web  # noqa: F401
