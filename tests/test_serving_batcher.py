"""The micro-batcher on its own: batching, batch size cap, bounded queue, deadlines, error isolation.

The stub pipeline blocks on an event, so what queues up while it is busy is decided by the test,
not by timing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

pytest.importorskip("prometheus_client")

from qfsum.document import Document  # noqa: E402
from qfsum.errors import QfsumError  # noqa: E402
from qfsum.pipeline import Summary  # noqa: E402
from qfsum.serving.batcher import DeadlineExceeded, MicroBatcher, NaiveRunner, QueueFull  # noqa: E402
from qfsum.serving.metrics import Metrics  # noqa: E402

DOC = Document("text", [], "d")
LONG = 30.0  # a deadline no test reaches


class GatedRun:
    """A run_batch stub: the first call waits for `gate`; records every batch it sees."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.batches: list[list[str]] = []
        self.entered = threading.Event()

    def __call__(self, pairs: Sequence[tuple[Document, str]]) -> list[Summary]:
        self.entered.set()
        self.gate.wait(timeout=60)
        queries = [q for _, q in pairs]
        self.batches.append(queries)
        if "bad" in queries:
            raise QfsumError("bad query")
        if "bug" in queries:
            raise RuntimeError("a bug")
        return [Summary(q, q.upper(), [], {"total_ms": 1.0}) for q in queries]


async def _until(condition, limit: float = 30.0) -> None:
    """Poll a condition (bounded): the tests wait for a state, not for a duration."""
    for _ in range(int(limit / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


async def _blocked_batcher(run: GatedRun, **kwargs) -> tuple[MicroBatcher, asyncio.Task]:
    """A started batcher whose worker is busy with a first one-query batch (held by the gate)."""
    batcher = MicroBatcher(run, **{"max_wait_s": 0.0, **kwargs})
    await batcher.start()
    first = asyncio.create_task(batcher.submit([(DOC, "first")], LONG))
    await _until(run.entered.is_set)
    return batcher, first


def test_requests_queued_while_busy_share_one_batch():
    async def main():
        run = GatedRun()
        metrics = Metrics()
        batcher, first = await _blocked_batcher(run, max_batch_size=8, metrics=metrics)
        waiting = [asyncio.create_task(batcher.submit([(DOC, f"q{i}")], LONG)) for i in range(5)]
        await _until(lambda: batcher.queue_depth == 5)
        assert metrics.registry.get_sample_value("qfsum_queue_depth") == 5
        run.gate.set()
        results = await asyncio.gather(first, *waiting)
        await batcher.stop()
        return run, results, metrics

    run, results, metrics = asyncio.run(main())
    assert run.batches == [["first"], ["q0", "q1", "q2", "q3", "q4"]]
    assert [r[0].batch_size for r in results] == [1, 5, 5, 5, 5, 5]
    assert [r[0].summary.text for r in results[1:]] == ["Q0", "Q1", "Q2", "Q3", "Q4"]  # each gets its own answer
    assert metrics.registry.get_sample_value("qfsum_batch_size_sum") == 6


def test_batches_never_exceed_the_max_size_and_keep_order():
    async def main():
        run = GatedRun()
        batcher, first = await _blocked_batcher(run, max_batch_size=4)
        request = asyncio.create_task(batcher.submit([(DOC, f"q{i}") for i in range(10)], LONG))
        await _until(lambda: batcher.queue_depth == 10)
        run.gate.set()
        await first
        results = await request
        await batcher.stop()
        return run, results

    run, results = asyncio.run(main())
    assert [len(b) for b in run.batches] == [1, 4, 4, 2]
    assert [r.summary.query for r in results] == [f"q{i}" for i in range(10)]


def test_a_full_queue_refuses_the_whole_request_with_retry_after():
    async def main():
        run = GatedRun()
        batcher, first = await _blocked_batcher(run, max_batch_size=2, max_queue=3)
        kept = asyncio.create_task(batcher.submit([(DOC, "a"), (DOC, "b")], LONG))
        await _until(lambda: batcher.queue_depth == 2)
        with pytest.raises(QueueFull) as refused:
            await batcher.submit([(DOC, "c"), (DOC, "d")], LONG)  # 2 + 2 > 3: none of it is queued
        assert batcher.queue_depth == 2
        run.gate.set()
        await asyncio.gather(first, kept)
        await batcher.stop()
        return run, refused.value

    run, refused = asyncio.run(main())
    assert refused.retry_after >= 1
    assert ["c"] not in run.batches and all("c" not in b for b in run.batches)


def test_a_request_past_its_deadline_fails_and_is_never_computed():
    async def main():
        run = GatedRun()
        batcher, first = await _blocked_batcher(run)
        with pytest.raises(DeadlineExceeded):
            await batcher.submit([(DOC, "late")], 0.01)  # the worker is held: it cannot be answered
        run.gate.set()
        await first
        after = await batcher.submit([(DOC, "next")], LONG)
        await batcher.stop()
        return run, after

    run, after = asyncio.run(main())
    assert run.batches == [["first"], ["next"]]  # "late" was dropped from the queue, not computed
    assert after[0].summary.text == "NEXT"


def test_one_rejected_query_does_not_fail_its_batch_mates():
    async def main():
        run = GatedRun()
        batcher, first = await _blocked_batcher(run, max_batch_size=8)
        good = asyncio.create_task(batcher.submit([(DOC, "good")], LONG))
        bad = asyncio.create_task(batcher.submit([(DOC, "bad")], LONG))
        await _until(lambda: batcher.queue_depth == 2)
        run.gate.set()
        await first
        answer = await good
        with pytest.raises(QfsumError, match="bad query"):
            await bad
        await batcher.stop()
        return run, answer

    run, answer = asyncio.run(main())
    assert answer[0].summary.text == "GOOD"
    assert ["good", "bad"] in run.batches and ["good"] in run.batches  # retried one by one after the failure


def test_an_unexpected_error_reaches_the_request_and_the_batcher_survives():
    async def main():
        run = GatedRun()
        run.gate.set()
        batcher = MicroBatcher(run)
        await batcher.start()
        with pytest.raises(RuntimeError, match="a bug"):
            await batcher.submit([(DOC, "bug")], LONG)
        answer = await batcher.submit([(DOC, "fine")], LONG)
        await batcher.stop()
        return answer

    assert asyncio.run(main())[0].summary.text == "FINE"


def test_naive_runner_calls_the_pipeline_once_per_request():
    async def main():
        run = GatedRun()
        run.gate.set()
        runner = NaiveRunner(run)
        await runner.start()
        results = await asyncio.gather(*(runner.submit([(DOC, f"q{i}"), (DOC, f"r{i}")], LONG) for i in range(3)))
        await runner.stop()
        return run, results

    run, results = asyncio.run(main())
    assert sorted(run.batches) == [["q0", "r0"], ["q1", "r1"], ["q2", "r2"]]
    assert all(r.batch_size == 2 for request in results for r in request)


@pytest.mark.parametrize("kwargs", [{"max_batch_size": 0}, {"max_queue": 0}, {"max_wait_s": -1}])
def test_bad_batcher_settings_are_refused(kwargs):
    with pytest.raises(QfsumError):
        MicroBatcher(GatedRun(), **kwargs)


def test_a_request_that_would_wait_past_its_deadline_is_refused_at_once():
    async def main():
        run = GatedRun()
        run.gate.set()
        batcher = MicroBatcher(run, max_batch_size=2)
        await batcher.start()
        await batcher.submit([(DOC, "warm")], LONG)
        batcher._seconds_by_size = {1: 5.0, 2: 10.0}  # as measured on a slow model: two queries per 10 s
        assert batcher.expected_wait(3) == 15.0  # a full batch, then a batch of one
        with pytest.raises(QueueFull) as refused:
            await batcher.submit([(DOC, "a"), (DOC, "b"), (DOC, "c")], 12.0)
        answers = await batcher.submit([(DOC, "d")], 12.0)  # one batch of one: 5 s fits in 12 s
        await batcher.stop()
        return run, refused.value, answers

    run, refused, answers = asyncio.run(main())
    assert refused.retry_after >= 1
    assert all("a" not in b for b in run.batches)
    assert answers[0].summary.text == "D"


def test_unmeasured_batch_sizes_are_priced_from_the_nearest_measured_one():
    batcher = MicroBatcher(GatedRun(), max_batch_size=16)
    assert batcher.batch_seconds(4) is None and batcher.expected_wait(64) == 0.0  # nothing measured yet
    batcher._seconds_by_size = {1: 4.0, 8: 10.0}
    assert batcher.batch_seconds(8) == 10.0  # measured
    assert batcher.batch_seconds(3) == 10.0  # the smallest larger size measured: an upper bound
    assert batcher.batch_seconds(16) == 20.0  # past the largest, scaled up linearly
    assert batcher.expected_wait(40) == 2 * 20.0 + 10.0  # two full batches and one of 8


def test_a_warm_up_request_does_not_let_a_crowd_in_that_full_batches_cannot_serve():
    """The 504s seen under load: after a one-query warm-up, 64 queries must not all be admitted."""

    async def main():
        run = GatedRun()
        batcher, first = await _blocked_batcher(run, max_batch_size=16)
        batcher._seconds_by_size = {1: 4.0}  # the warm-up: one query in 4 s
        # 4 s left of the first batch + a batch of n priced n x 4 s (nothing larger measured): 14 fit in 60 s
        admitted = [asyncio.create_task(batcher.submit([(DOC, f"q{i}")], 60.0)) for i in range(14)]
        await _until(lambda: batcher.queue_depth == 14)
        with pytest.raises(QueueFull):
            await batcher.submit([(DOC, "late")], 60.0)
        run.gate.set()
        answers = await asyncio.gather(first, *admitted)
        await batcher.stop()
        return answers

    assert len(asyncio.run(main())) == 15


def test_the_wait_for_company_is_a_small_share_of_the_measured_batch_time():
    batcher = MicroBatcher(GatedRun(), max_batch_size=16, max_wait_s=0.01)
    assert batcher.wait_limit() == 0.01  # nothing measured: the configured wait
    batcher._seconds_by_size = {1: 0.003}  # a 3 ms pipeline: wait 0.3 ms, not 10
    assert batcher.wait_limit() == pytest.approx(0.0003)
    batcher._seconds_by_size = {1: 4.0}  # a 4 s model: the configured 10 ms
    assert batcher.wait_limit() == 0.01
