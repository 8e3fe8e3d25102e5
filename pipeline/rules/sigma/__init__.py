"""Sigma rules (SigmaHQ's YAML as published), converted at load time into the project's rule model."""

from .load import SigmaLoad, Skipped, is_sigma, load_sigma

__all__ = ["SigmaLoad", "Skipped", "is_sigma", "load_sigma"]
