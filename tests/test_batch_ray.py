"""`qfsum batch` on a local Ray: SIGKILLed half-way, restarted, every id exactly once, nothing recomputed.

Slow (starts Ray twice): about a minute on 2 cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

pytest.importorskip("ray.data")

from conftest import qfsum_script, write_jsonl  # noqa: E402
from qfsum.distributed.parts import PartStore  # noqa: E402
from test_batch import logged, many_records, output_ids, write_stub  # noqa: E402

pytestmark = pytest.mark.slow


def batch_command(data, out, spec) -> list[str]:
    return [qfsum_script(), "batch", "--input", str(data), "--output", str(out), "--pipeline", spec,
            "--workers", "1", "--block-size", "3", "--no-progress"]


def test_killed_ray_job_resumes_exactly_once_without_recomputing(tmp_path):
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
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the driver and the Ray processes it started
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
