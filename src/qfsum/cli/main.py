"""The `qfsum` command line: a thin shell around `Pipeline`, the evaluation runners, training,
serving and batch jobs, one module per command group.

User errors print one line on stderr and exit with code 2; no tracebacks.
"""

from __future__ import annotations

import argparse
import math
import os
import select
import sys

from .. import quiet, threads
from ..errors import QfsumError
from . import batch, bench, compare, evaluate, serve, summarize, train
from .help import HelpFormatter, finish_help

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C
# Lower bounds of numeric flags that the commands behind them do not check (a float flag is
# always refused as nan or inf). Each applies to every command with a flag of that name.
AT_LEAST_ONE = ("budget", "max_length", "workers", "max_new_tokens", "teacher_max_new_tokens", "max_prompt",
                "passage_tokens", "layers", "width", "heads", "state_size", "threads", "window_batch", "words")
AT_LEAST_ZERO = ("val_limit",)  # 0 means all
ABOVE_ZERO = ("sample_temperature", "memory_limit")


def build_parser() -> argparse.ArgumentParser:
    """The whole `qfsum` parser: each command group registers its subcommands."""
    parser = argparse.ArgumentParser(
        prog="qfsum", description="Query-focused summarization of long documents.", formatter_class=HelpFormatter,
        epilog="examples:\n  qfsum summarize report.txt -q \"What was decided?\"\n  qfsum COMMAND --help")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show library warnings, progress bars and log lines (default: off)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (summarize, evaluate, compare, train, bench, serve, batch):
        group.register(sub)
    finish_help(parser)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qfsum")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _check_numbers(args: argparse.Namespace) -> None:
    """Refuse what argparse's `type=int`/`type=float` lets through: nan, inf, and values below a bound."""
    for name, value in vars(args).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, float) and not math.isfinite(value):
            raise QfsumError(f"{flag} must be a finite number, got {value}")
        if abs(value) >= 2**63:  # torch and numpy take 64-bit integers; beyond, they overflow
            raise QfsumError(f"{flag} is too large: {value}")
        if (name in AT_LEAST_ONE and value < 1) or (name in AT_LEAST_ZERO and value < 0):
            raise QfsumError(f"{flag} must be >= {1 if name in AT_LEAST_ONE else 0}, got {value}")
        if name in ABOVE_ZERO and value <= 0:
            raise QfsumError(f"{flag} must be > 0, got {value}")


def _stdout_reader_gone() -> bool:
    """True when stdout is a pipe whose reader has exited (`qfsum ... | head -c1`)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no stdout, or not a file (tests capture it)
        return False


def _run(argv: list[str] | None) -> int:
    threads.prepare_environment()  # before anything loads torch: OpenMP reads it once
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in model cards
    try:
        _check_numbers(args)
        quiet.set_verbose(args.verbose)
        quiet.quiet_libraries()
        args.func(args)
        sys.stdout.flush()  # a closed pipe shows up here, inside main, not at interpreter exit
    except QfsumError as err:
        message = " ".join(str(err).splitlines())  # one line, whatever a library put in the message
        print(f"qfsum: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run `qfsum` on `argv` (default `sys.argv[1:]`) and return the exit code: 0, 2 for a user
    error (one line on stderr), 130 when interrupted. argparse exits by itself on bad usage."""
    try:
        return _run(argv)
    except KeyboardInterrupt:
        print("qfsum: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        if not _stdout_reader_gone():
            raise  # some other pipe: a bug, keep its traceback
        # The reader stopped early, as `head` does: point stdout at /dev/null so the
        # interpreter's last flush of the unwritten output has nowhere to fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
