"""Keep parsing libraries' warnings about a file's flaws off the user's terminal while it is read."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet(*names: str) -> Iterator[None]:
    """Raise these loggers to ERROR for the block ("Ignoring wrong pointing object", "discarding
    data"): a reader reports what matters as a QfsumError, and the rest is noise to the user."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
