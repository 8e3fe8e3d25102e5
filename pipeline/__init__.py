"""Compliance and content-policy checking pipeline: sources → rules → cases → enforcement."""

__version__ = "0.1.0"
