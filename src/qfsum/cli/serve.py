"""`qfsum serve`: load the pipeline once, then serve it over HTTP."""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import sys
from typing import TYPE_CHECKING, Any

from ..errors import QfsumError
from ..threads import add_threads_argument, parse_threads, set_threads

if TYPE_CHECKING:  # fastapi and the models load only when a command runs, not when the parser is built
    from ..pipeline import Pipeline
    from ..serving.app import ServerConfig

API_KEY_ENV = "QFSUM_API_KEY"


def load_serving_pipeline(name: str, max_batch_size: int) -> "Pipeline":
    """Load a pipeline whose generative writer decodes a whole micro-batch in one generate() call."""
    from ..pipeline import Pipeline, load_config

    config = load_config(name)
    if config.writer.kind != "extractive":
        config.writer.batch_size = max(config.writer.batch_size, max_batch_size)
    return Pipeline(config)


def server_config(args: argparse.Namespace) -> "ServerConfig":
    """The ServerConfig the command-line flags and QFSUM_API_KEY describe (one-line errors for bad values)."""
    from ..serving.app import ServerConfig
    from ..serving.middleware import LOOPBACK_HOSTS, host_name

    for flag in ("max_batch_size", "max_queue", "max_document_chars", "max_segments"):
        _require(args, flag, getattr(args, flag) >= 1, ">= 1")
    _require(args, "max_wait_ms", math.isfinite(args.max_wait_ms) and args.max_wait_ms >= 0, "a finite number >= 0")
    for flag in ("deadline", "max_body_mb", "max_inflight_mb", "grace_s"):
        value = getattr(args, flag)
        _require(args, flag, math.isfinite(value) and value > 0, "a finite number > 0")
    if args.max_inflight_mb < args.max_body_mb:
        raise QfsumError("--max-inflight-mb must be at least --max-body-mb")
    api_key = os.environ.get(API_KEY_ENV) or None
    return ServerConfig(
        mode="naive" if args.naive else "batched",
        max_batch_size=args.max_batch_size,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        deadline_s=args.deadline,
        max_body_bytes=int(args.max_body_mb * 2**20),
        max_inflight_bytes=int(args.max_inflight_mb * 2**20),
        max_document_chars=args.max_document_chars,
        max_segments=args.max_segments,
        grace_s=args.grace_s,
        api_key=api_key,
        # keyless on loopback: only local names, so a rebinding web page cannot use the browser to reach it
        allowed_hosts=(*LOOPBACK_HOSTS, host_name(args.host)) if _is_loopback(args.host) and api_key is None else None,
    )


def _require(args: argparse.Namespace, flag: str, ok: bool, what: str) -> None:
    if not ok:
        raise QfsumError(f"--{flag.replace('_', '-')} must be {what}, got {getattr(args, flag)}")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(args: argparse.Namespace) -> None:
    """`qfsum serve`: the body of the command."""
    from ..serving.app import create_app
    from ..serving.server import check_bindable, run

    config = server_config(args)
    threads = parse_threads(args.threads)
    if not 0 <= args.port <= 65535:
        raise QfsumError(f"--port must be 0-65535, got {args.port}")
    check_bindable(args.host, args.port)
    if not _is_loopback(args.host) and config.api_key is None:
        print(f"qfsum: warning: serving on {args.host} without {API_KEY_ENV}: anyone who can reach it may use it",
              file=sys.stderr)
    # one model thread runs every batch (batcher.ModelThread): it gets the machine's cores
    threads = set_threads(threads)
    pipeline = load_serving_pipeline(args.pipeline, config.max_batch_size)
    mode = "naive, one request at a time" if config.mode == "naive" else f"micro-batches of up to {config.max_batch_size}"
    print(f"qfsum: serving '{pipeline.config.name}' on http://{args.host}:{args.port} ({mode}, {threads} torch threads)",
          file=sys.stderr, flush=True)
    run(create_app(pipeline, config), args.host, args.port, log_level=args.log_level, proxy_headers=args.proxy_headers)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of `qfsum serve` (and of the servers `qfsum bench serve` starts)."""
    p.add_argument("--pipeline", "-p", default="default", help="packaged pipeline name or saved directory")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (0: any free port)")
    p.add_argument("--max-batch-size", type=int, default=16, help="queries per model call at most (default 16)")
    p.add_argument("--max-wait-ms", type=float, default=10.0, help="how long a batch waits to fill (default 10)")
    p.add_argument("--max-queue", type=int, default=256, help="queries waiting at most; then 429 (default 256)")
    p.add_argument("--deadline", type=float, default=60.0, help="seconds before a request gets 504 (default 60)")
    p.add_argument("--max-body-mb", type=float, default=8.0, help="largest request body in MiB; then 413 (default 8)")
    p.add_argument("--max-inflight-mb", type=float, default=64.0,
                   help="request bodies held at once in MiB, in all; then 503 (default 64)")
    p.add_argument("--max-document-chars", type=int, default=1_000_000,
                   help="largest document in characters; then 413 (default 1000000)")
    p.add_argument("--max-segments", type=int, default=20_000,
                   help="most units (paragraphs, turns, segments) in one document; then 413 (default 20000)")
    p.add_argument("--grace-s", type=float, default=10.0,
                   help="on SIGTERM, seconds the running batch may take to finish; queued requests get 503 (default 10)")
    p.add_argument("--proxy-headers", action="store_true",
                   help="trust X-Forwarded-For/-Proto (only behind a reverse proxy on this machine)")
    p.add_argument("--naive", action="store_true", help="no batching: one pipeline call per request (a baseline)")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"),
                   help="uvicorn's log level (access lines at info)")


def register(sub: Any) -> None:
    """Add `serve` to the top-level subparsers."""
    p = sub.add_parser("serve", help="HTTP API and web page (micro-batched; loopback by default)")
    add_arguments(p)
    add_threads_argument(p)
    p.set_defaults(func=serve)
