"""ASGI middleware: body limits (413, and 503 past a byte budget), a Host check, security headers,
per-request metrics."""

from __future__ import annotations

import json
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .metrics import Metrics

KNOWN_ROUTES = ("/v1/summarize", "/v1/summarize/stream", "/v1/document", "/info", "/healthz", "/readyz", "/metrics",
                "/openapi.json", "/", "/favicon.ico")
# the page runs its own script and style only, and may not be framed (clickjacking)
PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


async def _send_json(send: Send, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
    data = json.dumps(body).encode()
    extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            *extra]})
    await send({"type": "http.response.body", "body": data})


class BodyLimit:
    """Bound request bodies: 413 for one over `max_bytes`, 503 when all bodies in flight would hold more
    than `budget_bytes` (counted from Content-Length, else as chunks arrive, until the response ends).

    A body alone in flight is always admitted, so the budget delays large uploads but never locks one out.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, budget_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.budget_bytes = budget_bytes
        self.in_flight = 0  # bytes held by the bodies of requests not yet answered

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = {"detail": f"request body over the {self.max_bytes // 1024} KiB limit"}
        busy = {"detail": f"the server holds {self.budget_bytes // 2**20} MiB of request bodies already; retry shortly"}
        length = dict(scope["headers"]).get(b"content-length")
        declared = int(length) if length is not None and length.isdigit() else 0
        if declared > self.max_bytes:
            await _send_json(send, 413, too_large)
            return
        held = seen = 0
        refused = False

        def reserve(total: int) -> bool:
            """Hold `total` bytes for this request, if the budget allows."""
            nonlocal held
            if total > held:
                others = self.in_flight - held
                if others and others + total > self.budget_bytes:
                    return False
                self.in_flight += total - held
                held = total
            return True

        async def counting_receive() -> Message:
            nonlocal refused, seen
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > self.max_bytes or not reserve(seen):
                    # answer now and tell the app the client left, so it stops reading (frameworks
                    # catch raised errors)
                    refused = True
                    if seen > self.max_bytes:
                        await _send_json(send, 413, too_large)
                    else:
                        await _send_json(send, 503, busy, {"Retry-After": "1"})
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:  # after our 413 or 503, whatever the app answers is dropped
                await send(message)

        try:
            if not reserve(declared):
                await _send_json(send, 503, busy, {"Retry-After": "1"})
                return
            await self.app(scope, counting_receive, guarded_send)
        finally:
            self.in_flight -= held


class HostCheck:
    """421 for a Host header not in `allowed` (ports ignored): a page on another site that rebinds its
    DNS name to 127.0.0.1 cannot reach a keyless loopback server through the victim's browser."""

    def __init__(self, app: ASGIApp, allowed: tuple[str, ...]) -> None:
        self.app = app
        self.allowed = {h.lower() for h in allowed}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        host = dict(scope.get("headers", ())).get(b"host")
        if scope["type"] == "http" and host is not None and host_name(host.decode("latin-1")) not in self.allowed:
            await _send_json(send, 421, {"detail": "this server answers only to " + ", ".join(sorted(self.allowed))
                                         + " in the Host header (it guards against DNS rebinding)"})
            return
        await self.app(scope, receive, send)


def host_name(host: str) -> str:
    """A Host header without its port, lower-cased: "[::1]:8000" -> "[::1]", "LocalHost:80" -> "localhost"."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class SecurityHeaders:
    """nosniff and no framing on every response; a Content-Security-Policy on the page and its files."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                 (b"referrer-policy", b"no-referrer")]
        if scope["path"] == "/" or scope["path"].startswith("/static/"):
            extra.append((b"content-security-policy", PAGE_POLICY.encode()))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


class RecordMetrics:
    """Count every HTTP response by route and status, and time it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # known routes only as labels: arbitrary paths must not grow the metric without bound
        route = scope["path"] if scope["path"] in KNOWN_ROUTES else "other"
        status = 500
        started = time.perf_counter()

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)
