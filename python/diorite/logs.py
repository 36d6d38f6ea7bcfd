"""Logging set-up shared by the CLI and the worker."""

from __future__ import annotations

import logging
import sys

LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "notset": logging.NOTSET,
}

logger = logging.getLogger("diorite")
app_logger = logging.getLogger("diorite.app")


def configure(level: str, enabled: bool) -> None:
    """Send diorite's records to stderr, one line each (tracebacks follow)."""
    logger.handlers.clear()
    if not enabled:
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
        logger.setLevel(logging.CRITICAL + 1)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            "[%(asctime)s] [%(process)d] %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"
        )
    )
    logger.addHandler(handler)
    logger.setLevel(LEVELS[level])
    logger.propagate = False
