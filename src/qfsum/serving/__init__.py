"""HTTP service: `qfsum serve` (FastAPI app with micro-batching, metrics, a web page).

>>> from qfsum.serving import ServerConfig, create_app  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServerConfig", "create_app"]


def __getattr__(name: str) -> Any:
    # lazy: `qfsum --help` must not import FastAPI
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(name)
