"""Loguru setup: human-readable lines to the terminal, JSON lines to <state_dir>/pipeline.log."""

from __future__ import annotations

import sys
from pathlib import Path

from loguru import logger


def setup_logging(level: str = "INFO", state_dir: Path | None = None) -> None:
    logger.remove()
    logger.add(sys.stderr, level=level, format="<level>{level: <8}</level> {message}")
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
        logger.add(state_dir / "pipeline.log", level="DEBUG", serialize=True, rotation="50 MB")
