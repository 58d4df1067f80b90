"""`qfsum serve`: load the pipeline once, then serve it over HTTP."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

from typing import TYPE_CHECKING

from ..errors import QfsumError

if TYPE_CHECKING:  # fastapi and the models load only when a command runs, not when the parser is built
    from ..pipeline import Pipeline
    from .app import ServerConfig

API_KEY_ENV = "QFSUM_API_KEY"


def load_serving_pipeline(name: str, max_batch_size: int) -> "Pipeline":
    """Load a pipeline whose generative writer decodes a whole micro-batch in one generate() call."""
    from ..pipeline import Pipeline, load_config

    config = load_config(name)
    if config.writer.kind != "extractive":
        config.writer.batch_size = max(config.writer.batch_size, max_batch_size)
    return Pipeline(config)


def server_config(args: argparse.Namespace) -> "ServerConfig":
    """The ServerConfig the command-line flags and QFSUM_API_KEY describe."""
    from .app import ServerConfig

    for flag in ("max_batch_size", "max_queue"):
        if getattr(args, flag) < 1:
            raise QfsumError(f"--{flag.replace('_', '-')} must be >= 1")
    if args.max_wait_ms < 0 or args.deadline <= 0 or args.max_body_mb <= 0:
        raise QfsumError("--max-wait-ms must be >= 0, --deadline and --max-body-mb > 0")
    return ServerConfig(
        mode="naive" if args.naive else "batched",
        max_batch_size=args.max_batch_size,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        deadline_s=args.deadline,
        max_body_bytes=int(args.max_body_mb * 2**20),
        api_key=os.environ.get(API_KEY_ENV) or None,
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(args: argparse.Namespace) -> None:
    """`qfsum serve`: the body of the command."""
    from .app import create_app
    from .server import check_bindable, run

    config = server_config(args)
    if not 0 <= args.port <= 65535:
        raise QfsumError(f"--port must be 0-65535, got {args.port}")
    check_bindable(args.host, args.port)
    if not _is_loopback(args.host) and config.api_key is None:
        print(f"qfsum: warning: serving on {args.host} without {API_KEY_ENV}: anyone who can reach it may use it",
              file=sys.stderr)
    pipeline = load_serving_pipeline(args.pipeline, config.max_batch_size)
    mode = "naive, one request at a time" if config.mode == "naive" else f"micro-batches of up to {config.max_batch_size}"
    print(f"qfsum: serving '{pipeline.config.name}' on http://{args.host}:{args.port} ({mode})", file=sys.stderr,
          flush=True)
    run(create_app(pipeline, config), args.host, args.port, log_level=args.log_level)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of `qfsum serve` (and of the servers `qfsum bench serve` starts)."""
    p.add_argument("--pipeline", "-p", default="default", help="packaged pipeline name or saved directory")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-batch-size", type=int, default=16, help="queries per model call at most (default 16)")
    p.add_argument("--max-wait-ms", type=float, default=10.0, help="how long a batch waits to fill (default 10)")
    p.add_argument("--max-queue", type=int, default=256, help="queries waiting at most; then 429 (default 256)")
    p.add_argument("--deadline", type=float, default=60.0, help="seconds before a request gets 504 (default 60)")
    p.add_argument("--max-body-mb", type=float, default=8.0, help="largest request body in MiB; then 413 (default 8)")
    p.add_argument("--naive", action="store_true", help="no batching: one pipeline call per request (a baseline)")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
