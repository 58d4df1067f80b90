"""How many threads torch's CPU kernels use, chosen once per process (or once per worker).

torch's default is one thread per logical CPU it sees, whatever else runs on the machine. On a
busy 2-core machine that made one `qfsum summarize` call 8x slower than with one thread, and
OpenMP's busy-waiting between kernels took decoding from 7 to 1.1 tokens/s. So qfsum:

- sets `OMP_WAIT_POLICY=PASSIVE` (idle OpenMP threads sleep instead of spinning) before torch
  loads, unless the user set it (`prepare_environment`);
- uses physical cores, not hyper-threads, within the CPUs this process may run on and its cgroup
  quota, split between the workers that share the machine (`choose_threads`);
- leaves an explicit `OMP_NUM_THREADS` alone when no thread count is asked for.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

from .errors import QfsumError

WAIT_POLICY = "OMP_WAIT_POLICY"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # read by torch's OpenMP and MKL when they load
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "QUOTA PERIOD" or "max PERIOD"
AUTO = "auto"
MAX_THREADS = 1024  # beyond, a typo: torch would try to start them all


def prepare_environment(environ: MutableMapping[str, str] = os.environ) -> None:
    """Keep idle OpenMP threads from spinning: takes effect only if called before torch loads
    (OpenMP reads it once); a value the user set wins."""
    environ.setdefault(WAIT_POLICY, "PASSIVE")


def choose_threads(allowed_cpus: int, physical_cores: int | None = None, logical_cpus: int | None = None,
                   cpu_quota: float | None = None, workers: int = 1) -> int:
    """Threads for each of `workers` processes sharing a machine (pure; `default_threads` measures).

    allowed_cpus: logical CPUs this process may run on (its affinity mask).
    physical_cores, logical_cpus: the machine's, when known; with hyper-threading (more logical
        CPUs than cores) only one thread per core is counted, as two threads on one core mostly
        share its arithmetic units.
    cpu_quota: the cgroup's CPU limit in CPUs (a container), if any.
    """
    cores = max(allowed_cpus, 1)
    if physical_cores and logical_cpus and logical_cpus > physical_cores:
        cores = max(1, cores * physical_cores // logical_cpus)
    if cpu_quota is not None and cpu_quota > 0:
        cores = min(cores, max(1, math.floor(cpu_quota)))
    return max(1, cores // max(workers, 1))


def parse_cgroup_cpu_max(text: str) -> float | None:
    """CPUs allowed by a cgroup v2 `cpu.max` line ("200000 100000" -> 2.0; "max 100000" -> None)."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def allowed_cpus() -> int:
    """Logical CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _machine_cores() -> tuple[int | None, int | None]:
    """(physical cores, logical CPUs) of the machine; (None, None) without psutil."""
    try:
        import psutil
    except ImportError:
        return None, None
    return psutil.cpu_count(logical=False), psutil.cpu_count(logical=True)


def _cgroup_quota() -> float | None:
    try:
        return parse_cgroup_cpu_max(CGROUP_CPU_MAX.read_text())
    except OSError:
        return None


def default_threads(workers: int = 1) -> int:
    """The thread count `choose_threads` gives this machine, for each of `workers` workers."""
    physical, logical = _machine_cores()
    return choose_threads(allowed_cpus(), physical, logical, _cgroup_quota(), workers)


def parse_threads(value: str | int | None) -> int | None:
    """`--threads`: a whole number >= 1, or `auto`/None (the default choice)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == AUTO):
        return None
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_THREADS:
        raise QfsumError(f"--threads must be a whole number from 1 to {MAX_THREADS} or '{AUTO}', got '{value}'")
    return int(text)


def set_threads(threads: int | None = None, workers: int = 1,
                environ: MutableMapping[str, str] = os.environ) -> int:
    """Use `threads` threads (None: the user's OMP_NUM_THREADS if set, else `default_threads(workers)`)
    in torch, now if it is loaded and in any torch loaded later (also in child processes);
    return the count chosen."""
    if threads is None:
        from_env = environ.get("OMP_NUM_THREADS", "").strip()
        threads = int(from_env) if from_env.isdigit() and int(from_env) >= 1 else default_threads(workers)
    for name in THREAD_VARS:
        environ[name] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads"):
        torch.set_num_threads(threads)
    return threads


def add_threads_argument(p: argparse.ArgumentParser, workers_note: str = "") -> None:
    """The `--threads` flag of the commands that run models."""
    p.add_argument("--threads", default=AUTO, metavar="N",
                   help="torch CPU threads: a number, or auto = physical cores available to this process"
                        f"{workers_note}, or OMP_NUM_THREADS if set")
