"""The batch driver's watchdog: what the driver started dies with it, even when the driver is SIGKILLed.

Without Ray: a fake driver starts a child, which starts a grandchild that outlives it (as the raylet's
agents outlive the raylet). tests/test_batch_ray.py checks the same with a real local Ray.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

psutil = pytest.importorskip("psutil")
pytestmark = pytest.mark.skipif(os.name != "posix", reason="the watchdog is for POSIX")

DRIVER = textwrap.dedent("""
    import subprocess, sys, time
    from qfsum.batch import reaper

    reaper.start()
    # a child that starts a long-lived grandchild, then waits: both look like Ray's helpers
    child = subprocess.Popen([sys.executable, "-c",
                              "import subprocess, sys, time; subprocess.Popen(['sleep', '600']); "
                              "print('started', flush=True); time.sleep(600)"], stdout=subprocess.PIPE)
    child.stdout.readline()
    reaper.note()
    print("noted", flush=True)
    time.sleep(600)
""")


def test_a_sigkilled_driver_takes_what_it_started_with_it():
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, start_new_session=True)
    started = []
    try:
        assert driver.stdout.readline() == b"noted\n"
        started = psutil.Process(driver.pid).children(recursive=True)
        assert {p.name() for p in started} >= {"sleep"} and len(started) == 3  # watchdog, child, grandchild
        os.kill(driver.pid, signal.SIGKILL)  # the driver only, as `kill -9 PID` does
        driver.wait(timeout=60)
        _, alive = psutil.wait_procs(started, timeout=30)  # a hang guard, not a timing
        assert not alive, [p.cmdline() for p in alive]
    finally:
        for p in started:
            if p.is_running():
                p.kill()
        driver.kill()
        driver.wait()
