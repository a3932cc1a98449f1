"""Logging for the command line, the jobs and the benchmarks: one format, quiet dependencies."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
NOISY = ("py4j", "splink")


def configure_logging(level: str | int = "INFO") -> None:
    """Log at ``level``; py4j and Splink only from WARNING up (their INFO lines are per query)."""
    logging.basicConfig(level=level, format=FORMAT)
    numeric = logging.getLevelName(level) if isinstance(level, str) else level
    for name in NOISY:
        logging.getLogger(name).setLevel(max(logging.WARNING, numeric))
