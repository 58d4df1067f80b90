"""A watchdog that ends a batch driver's local Ray processes when the driver dies, even by SIGKILL.

Ray ties the GCS and the raylet to the driver that started them (PR_SET_PDEATHSIG), but the
raylet's own children, `ray::DashboardAgent` and `ray::RuntimeEnvAgent`, notice the raylet is gone
and then hang for about a minute on a call to the dead GCS. The watchdog is a small process in its
own session: it notes every process the driver starts (Ray's and their children) while the driver
lives, and kills whichever of them are left once the driver is gone, normally or not. It learns the
driver is gone from its stdin, a pipe whose write end only the driver holds: the kernel closes it
however the driver ends.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Iterable

POLL_S = 0.5  # how often the driver's process tree is noted unasked
KILL_WAIT_S = 10.0

_watchdog: subprocess.Popen | None = None  # held so that the pipe stays open while the driver lives


def start() -> None:
    """Start the watchdog for this process, once; call it before starting a local Ray (POSIX only)."""
    global _watchdog
    if _watchdog is not None or os.name != "posix":
        return
    _watchdog = subprocess.Popen([sys.executable, "-m", __name__, str(os.getpid())], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, start_new_session=True)
    _watchdog.stdout.readline()  # ready: what runs from now on is the watchdog's to end


def note() -> None:
    """Have the watchdog note this process's descendants now (say, once Ray has started); returns
    when it has, so that a kill right after this still finds them all."""
    if _watchdog is None:
        return
    _watchdog.stdin.write(b"\n")
    _watchdog.stdin.flush()
    _watchdog.stdout.readline()


def _psutil():
    try:
        import psutil
    except ImportError:  # Ray bundles psutil and puts it on sys.path when imported
        import ray  # noqa: F401
        import psutil
    return psutil


def watch(driver_pid: int, poll_s: float = POLL_S) -> None:
    """Note the driver's descendants every `poll_s` and when asked (a line on stdin, answered with a
    line on stdout) until stdin closes, then kill those still alive."""
    psutil = _psutil()
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    try:
        driver = psutil.Process(driver_pid)
        before = {p.pid for p in driver.children(recursive=True)}  # not Ray's: started before us
    except psutil.NoSuchProcess:
        return
    os.write(stdout, b"\n")
    tracked: dict[int, psutil.Process] = {}
    while True:
        readable, _, _ = select.select([stdin], [], [], poll_s)
        asked = os.read(stdin, 4096) if readable else b""
        if readable and not asked:
            break  # EOF: the driver is gone, however it ended
        try:
            tracked.update((p.pid, p) for p in driver.children(recursive=True) if p.pid not in before)
        except psutil.NoSuchProcess:
            break
        os.write(stdout, b"\n" * asked.count(b"\n"))
    _kill(psutil, tracked.values())


def _kill(psutil, processes: Iterable) -> None:
    alive = [p for p in processes if p.is_running()]  # is_running also checks the pid was not reused
    for p in list(alive):
        try:
            alive.extend(p.children(recursive=True))  # started after the last look
        except psutil.Error:
            pass
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=KILL_WAIT_S)


if __name__ == "__main__":
    watch(int(sys.argv[1]))
