"""`qfsum batch` on a local Ray: SIGKILLed half-way (the driver alone, as `kill -9 PID` does), no Ray
process of it left; restarted, every id exactly once, nothing recomputed. A bad record is an error line.

Slow (starts Ray three times): about half a minute on 2 cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

pytest.importorskip("ray.data")
psutil = pytest.importorskip("psutil")

from conftest import qfsum_script, write_jsonl  # noqa: E402
from qfsum.batch.parts import PartStore  # noqa: E402
from test_batch import logged, many_records, output_ids, write_stub  # noqa: E402

pytestmark = pytest.mark.slow


def batch_command(data, out, spec) -> list[str]:
    return [qfsum_script(), "batch", "--input", str(data), "--output", str(out), "--pipeline", spec,
            "--executor", "ray", "--workers", "1", "--block-size", "3", "--no-progress"]


def kill_driver_and_check_nothing_of_it_is_left(driver: subprocess.Popen) -> None:
    """SIGKILL the driver only; every process it started (Ray's GCS, raylet, agents, workers and our
    watchdog) must be gone soon after."""
    started = psutil.Process(driver.pid).children(recursive=True)
    names = {p.name() for p in started}
    assert {"raylet", "gcs_server"} <= names and any("Agent" in n for n in names), names  # the agents too
    try:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=60)
        _, alive = psutil.wait_procs(started, timeout=30)  # a hang guard: Ray's agents alone hang ~60 s
        assert not alive, [p.name() for p in alive]
    finally:
        for p in started:
            if p.is_running():
                p.kill()


def test_killed_ray_job_leaves_no_process_and_resumes_exactly_once_without_recomputing(tmp_path):
    records = many_records(12)
    data = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    spec = write_stub(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(tmp_path), QFSUM_STUB_LOG=str(tmp_path / "computed.log"),
               HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", RAY_USAGE_STATS_ENABLED="0")
    store = PartStore(out)

    # run 1: the stub stalls once it has computed more than 6 ids, so the job cannot finish on its own
    first = subprocess.Popen(batch_command(data, out, spec), env=dict(env, QFSUM_STUB_STOP_AFTER="6"),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        give_up = time.monotonic() + 240
        while len(store.done()) < 6:  # wait for output, not for a duration
            assert first.poll() is None, first.stdout.read().decode()[-2000:]
            assert time.monotonic() < give_up, "no output from the first run"
            time.sleep(0.2)
        kill_driver_and_check_nothing_of_it_is_left(first)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    written = set(store.done())
    assert written == {f"r{i:03d}" for i in range(6)}
    assert not out.exists()
    computed_before = logged(tmp_path / "computed.log")

    # run 2: the same command, no stall
    second = subprocess.run(batch_command(data, out, spec), env=env, capture_output=True, timeout=300)
    assert second.returncode == 0, second.stderr.decode()[-2000:]
    assert "6 already done" in second.stdout.decode()
    assert output_ids(out) == [r["id"] for r in records]  # each id exactly once, in input order
    recomputed = logged(tmp_path / "computed.log")[len(computed_before):]
    assert not written & set(recomputed)  # what was written before the kill was not computed again
    assert all("summary" in json.loads(line) for line in out.read_text().splitlines())


def test_a_bad_record_on_ray_is_an_error_line_and_the_rest_are_answered(tmp_path):
    records = many_records(7)
    records[4]["query"] = "explode"  # the stub's RuntimeError, raised inside a Ray actor
    records[5]["query"] = "\udc00"  # a lone surrogate: an error line before any actor sees it
    data = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    spec = write_stub(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(tmp_path), QFSUM_STUB_LOG=str(tmp_path / "computed.log"),
               HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", RAY_USAGE_STATS_ENABLED="0")
    done = subprocess.run(batch_command(data, out, spec), env=env, capture_output=True, timeout=300)
    assert done.returncode == 1, done.stderr.decode()[-2000:]
    assert done.stdout.decode().rstrip().endswith("2 error lines")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == [r["id"] for r in records]
    assert lines[4] == {"id": "r004", "error": "RuntimeError: boom second line"}
    assert "lone UTF-16 surrogate" in lines[5]["error"]
    assert all("summary" in lines[i] for i in (0, 1, 2, 3, 6))
