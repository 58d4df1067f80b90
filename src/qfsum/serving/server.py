"""Running the app under uvicorn: in the foreground (`qfsum serve`) or in a thread (tests, benchmarks)."""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import uvicorn
from fastapi import FastAPI

from ..errors import QfsumError

SHUTDOWN_MARGIN_S = 5  # after the grace period, time to write the last answers before uvicorn closes connections


def check_bindable(host: str, port: int) -> None:
    """Fail in one line, before the models load, if the address cannot be listened on."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            probe.bind(infos[0][4])
    except OSError as err:
        raise QfsumError(f"cannot listen on {host}:{port} ({err.strerror or err})") from None


class Server(uvicorn.Server):
    """uvicorn's server that tells the app as soon as shutdown starts (SIGTERM, SIGINT), before uvicorn
    waits for open connections: queued requests get 503 at once and the running batch its grace period,
    so every open request is answered before uvicorn's own timeout closes connections."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        from .app import begin_shutdown

        begin_shutdown(self.config.app)
        super().handle_exit(sig, frame)


def _config(app: FastAPI, host: str, port: int, log_level: str, proxy_headers: bool) -> uvicorn.Config:
    grace_s = app.state.config.grace_s
    # X-Forwarded-For is trusted only when asked: otherwise any local client could pose as another address
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, proxy_headers=proxy_headers,
                          timeout_graceful_shutdown=math.ceil(grace_s) + SHUTDOWN_MARGIN_S)


def run(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
        proxy_headers: bool = False) -> None:
    """Serve until interrupted; on SIGTERM, answer open requests within the app's grace period."""
    Server(_config(app, host, port, log_level, proxy_headers)).run()


@contextmanager
def serve_in_thread(app: FastAPI, host: str = "127.0.0.1", startup_timeout_s: float = 60.0) -> Iterator[str]:
    """Serve `app` on a free loopback port in a background thread; yield its base URL.

    `app.state.server` is the uvicorn server: `app.state.server.handle_exit(signal.SIGTERM, None)`
    starts a shutdown as the signal would.
    """
    server = Server(_config(app, host, 0, "warning", False))
    app.state.server = server
    thread = threading.Thread(target=server.run, name="qfsum-uvicorn", daemon=True)
    thread.start()
    give_up = time.monotonic() + startup_timeout_s
    while not server.started:  # set by uvicorn once the socket listens and lifespan started
        if not thread.is_alive() or time.monotonic() > give_up:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
