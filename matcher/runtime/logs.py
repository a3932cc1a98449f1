"""Logging for the command line, the jobs and the benchmarks: one format, quiet dependencies.

On a terminal the lines go through the progress display's console
(:func:`matcher.runtime.progress.console`), so they print above its bars."""

from __future__ import annotations

import logging

from matcher.runtime.progress import console, mode

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
NOISY = ("py4j", "splink")


class ConsoleHandler(logging.Handler):
    """Log records as plain text through the shared rich console."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            console().print(self.format(record), markup=False, highlight=False, emoji=False, soft_wrap=True)
        except Exception:  # noqa: BLE001 - as logging.StreamHandler: report, never raise
            self.handleError(record)


def configure_logging(level: str | int = "INFO") -> None:
    """Log at ``level``; py4j and Splink only from WARNING up (their INFO lines are per query)."""
    handlers = [ConsoleHandler()] if mode() == "bar" else None
    logging.basicConfig(level=level, format=FORMAT, handlers=handlers)
    numeric = logging.getLevelName(level) if isinstance(level, str) else level
    for name in NOISY:
        logging.getLogger(name).setLevel(max(logging.WARNING, numeric))
