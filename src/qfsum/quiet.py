"""Third-party noise off by default: library warnings, model-loading progress bars, Ray's log lines.

A normal run shows qfsum's own output and errors only. `qfsum -v` (or `set_verbose(True)` from
Python) leaves every library as it is. Environment variables the user set always win.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager

# Read when each library loads (also in child processes: Ray workers, data loaders).
QUIET_ENVIRONMENT = {
    "TOKENIZERS_PARALLELISM": "false",  # its fork warning
    "TRANSFORMERS_VERBOSITY": "error",  # transformers' logger
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # hub and transformers progress bars ("Loading weights")
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}
# Python loggers that warn about what the user did not ask about (named, so a later library set-up
# of their parents keeps these levels).
QUIET_LOGGERS = (
    "ray._private.authentication.authentication_token_setup",  # "Token authentication is enabled ..."
    "ray.data",
)

_verbose = False


def set_verbose(verbose: bool) -> None:
    """Show library warnings and progress bars (`-v`) or keep them off (the default)."""
    global _verbose
    _verbose = verbose


def is_verbose() -> bool:
    """Whether `set_verbose(True)` was called."""
    return _verbose


def quiet_libraries(environ: MutableMapping[str, str] = os.environ) -> None:
    """Turn library noise off for this process and its children, unless verbose."""
    if _verbose:
        return
    for name, value in QUIET_ENVIRONMENT.items():
        environ.setdefault(name, value)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    if "transformers" in sys.modules:  # loaded already: its environment was read
        _transformers_quiet()
    if not sys.warnoptions:  # `python -W ...` or PYTHONWARNINGS still shows them
        warnings.simplefilter("ignore")


def _transformers_quiet() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


@contextmanager
def loading() -> Iterator[None]:
    """Around model loading from the Python API: no "Loading weights" bars and no deprecation
    warnings from transformers/peft (unless verbose, or the user asked transformers for more)."""
    if _verbose or os.environ.get("TRANSFORMERS_VERBOSITY", "error") not in ("error", "critical"):
        yield
        return
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            with warnings.catch_warnings():  # hub bars stay off if HF_HUB_DISABLE_PROGRESS_BARS says so
                warnings.simplefilter("ignore")
                hf_logging.enable_progress_bar()


def hide_native_stderr() -> None:
    """For the rest of the process, drop what native code writes straight to file descriptor 2
    (Ray's core-worker lines, its helpers' output) while Python's own stderr (our messages, progress
    bars, errors, tracebacks) still reaches the terminal through a copy of the descriptor.

    Does nothing when verbose, or when `sys.stderr` is not descriptor 2 (tests that capture it)."""
    try:
        is_fd2 = sys.stderr is not None and sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        is_fd2 = False
    if _verbose or not is_fd2:
        return
    original = sys.stderr
    original.flush()
    copy = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    # never closed: loggers set up from now on (Ray's) keep writing to it until exit
    sys.stderr = os.fdopen(copy, "w", buffering=1, encoding=original.encoding, errors=original.errors)
