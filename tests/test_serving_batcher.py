"""The micro-batcher on its own: batching, batch size cap, bounded queue, deadlines, error isolation,
admission pricing (recovering estimates, document cost, cold start), cancellation and draining.

The stub pipeline blocks on an event, so what queues up while it is busy is decided by the test,
not by timing.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Sequence

import pytest

pytest.importorskip("prometheus_client")

from qfsum.document import Document  # noqa: E402
from qfsum.errors import QfsumError  # noqa: E402
from qfsum.pipeline import Summary  # noqa: E402
from qfsum.serving.batcher import (  # noqa: E402
    CostModel,
    DeadlineExceeded,
    MicroBatcher,
    NaiveRunner,
    PipelineFailed,
    QueueFull,
    ShuttingDown,
    TooMuchWork,
    as_settled,
)
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


def test_an_unexpected_error_fails_only_its_own_request_and_the_batcher_survives():
    """A TypeError deep in a tokenizer (the lone-surrogate case) must not give its batch-mates a 500."""

    async def main():
        run = GatedRun()
        batcher, first = await _blocked_batcher(run, max_batch_size=8)
        good = asyncio.create_task(batcher.submit([(DOC, "good")], LONG))
        bug = asyncio.create_task(batcher.submit([(DOC, "bug")], LONG))
        await _until(lambda: batcher.queue_depth == 2)
        run.gate.set()
        await first
        answer = await good
        with pytest.raises(PipelineFailed, match="RuntimeError: a bug"):
            await bug
        after = await batcher.submit([(DOC, "fine")], LONG)
        await batcher.stop()
        return run, answer, after

    run, answer, after = asyncio.run(main())
    assert answer[0].summary.text == "GOOD" and after[0].summary.text == "FINE"
    assert ["good", "bug"] in run.batches and ["good"] in run.batches and ["bug"] in run.batches


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


@pytest.mark.parametrize("kwargs", [{"max_batch_size": 0}, {"max_queue": 0}, {"max_wait_s": -1},
                                    {"max_wait_s": float("nan")}, {"max_wait_s": float("inf")}])
def test_bad_batcher_settings_are_refused(kwargs):
    with pytest.raises(QfsumError):
        MicroBatcher(GatedRun(), **kwargs)


def test_a_request_that_would_wait_past_its_deadline_is_refused_at_once():
    async def main():
        run = GatedRun()
        batcher, first = await _blocked_batcher(run, max_batch_size=2)
        batcher.cost.query_seconds = {1: 5.0, 2: 10.0}  # as measured on a slow model: two queries per 10 s
        batcher._running = (batcher._running[0], 0.0, batcher._running[2])  # the batch in flight: about done
        with pytest.raises(QueueFull) as refused:  # a full batch, then a batch of one: 15 s
            await batcher.submit([(DOC, "a"), (DOC, "b"), (DOC, "c")], 12.0)
        admitted = asyncio.create_task(batcher.submit([(DOC, "d")], 12.0))  # one batch of one: 5 s fits in 12 s
        await _until(lambda: batcher.queue_depth == 1)
        run.gate.set()
        await first
        answers = await admitted
        await batcher.stop()
        return run, refused.value, answers

    run, refused, answers = asyncio.run(main())
    assert refused.retry_after >= 1 and "over the 12 s deadline" in str(refused)
    assert all("a" not in b for b in run.batches)
    assert answers[0].summary.text == "D"


def test_batch_sizes_are_priced_from_the_nearest_measured_size_and_never_shrink_with_size():
    cost = CostModel()
    assert cost.batch_seconds(4) == 0.0 and cost.queries_seconds(64, 16) == 0.0  # nothing measured yet
    cost.query_seconds = {1: 4.0, 8: 10.0}
    assert cost.batch_seconds(8) == 10.0  # measured
    assert cost.batch_seconds(3) == 10.0  # the smallest larger size measured: an upper bound
    assert cost.batch_seconds(16) == 20.0  # past the largest, scaled up linearly
    assert cost.queries_seconds(40, 16) == 2 * 20.0 + 10.0  # two full batches and one of 8
    cost.query_seconds = {1: 900.0, 16: 2.0}  # a stale slow size-1 estimate, a fresh full batch
    assert cost.batch_seconds(1) == 2.0  # one query never costs more than sixteen


def test_estimates_follow_new_measurements_and_split_documents_from_queries():
    cost = CostModel()
    cost.observe(1, seconds=100.0, new_chars=0, document_seconds=0.0)  # one pathological batch
    for _ in range(10):
        cost.observe(1, seconds=0.1, new_chars=0, document_seconds=0.0)
    assert cost.batch_seconds(1) < 3.0  # the outlier fades geometrically: 100 x 0.7^10 = 2.8
    cost.observe(1, seconds=2.0, new_chars=1000, document_seconds=1.5)
    assert cost.char_seconds == pytest.approx(0.0015)
    assert cost.document_seconds(10_000) == pytest.approx(15.0)


def test_an_idle_server_admits_whatever_the_estimate_so_one_slow_batch_cannot_lock_clients_out():
    async def main():
        run = GatedRun()
        run.gate.set()
        batcher = MicroBatcher(run)
        await batcher.start()
        batcher.cost.query_seconds = {1: 1e6}  # one batch once took "forever"
        answers = [await batcher.submit([(DOC, f"q{i}")], 1.0) for i in range(3)]  # idle each time: admitted
        await batcher.stop()
        return batcher, answers

    batcher, answers = asyncio.run(main())
    assert [a[0].summary.text for a in answers] == ["Q0", "Q1", "Q2"]
    assert batcher.cost.batch_seconds(1) < 0.5e6  # re-measured by the two warm requests it admitted


def test_the_first_batch_is_not_measured():
    """Cold caches and lazy initialisation make the first batch slow: it must not price the next ones."""

    async def main():
        run = GatedRun()
        run.gate.set()
        batcher = MicroBatcher(run)
        await batcher.start()
        await batcher.submit([(DOC, "cold")], LONG)
        cold = batcher.cost.measured
        await batcher.submit([(DOC, "warm")], LONG)
        await batcher.stop()
        return cold, batcher.cost.measured

    assert asyncio.run(main()) == (False, True)


def test_a_document_priced_over_the_deadline_is_refused_and_a_known_one_is_not_priced_again():
    big = Document("word " * 20_000, [], "big")

    async def main():
        run = GatedRun()
        run.gate.set()
        batcher = MicroBatcher(run)
        await batcher.start()
        batcher.cost.char_seconds = 1e-3  # 100,000 characters: 100 s of segmenting and encoding
        with pytest.raises(TooMuchWork, match="priced at 100 s"):
            await batcher.submit([(big, "q")], 60.0)
        batcher._seen[big.fingerprint] = None  # prepared once already (e.g. before a smaller deadline)
        answers = await batcher.submit([(big, "q")], 60.0)
        await batcher.stop()
        return answers

    assert asyncio.run(main())[0].summary.text == "Q"


def test_a_warm_up_request_does_not_let_a_crowd_in_that_full_batches_cannot_serve():
    """The 504s seen under load: after a one-query warm-up, 64 queries must not all be admitted."""

    async def main():
        run = GatedRun()
        batcher, first = await _blocked_batcher(run, max_batch_size=16)
        batcher.cost.query_seconds = {1: 4.0}  # the warm-up: one query in 4 s
        batcher._running = (batcher._running[0], 4.0, batcher._running[2])
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
    batcher.cost.query_seconds = {1: 0.003}  # a 3 ms pipeline: wait 0.3 ms, not 10
    assert batcher.wait_limit() == pytest.approx(0.0003)


def test_a_cancelled_request_is_dropped_before_it_reaches_the_model():
    """What the server does when a client disconnects: the request's task is cancelled."""

    async def main():
        run = GatedRun()
        batcher, first = await _blocked_batcher(run)
        gone = asyncio.create_task(batcher.submit([(DOC, "gone")], LONG))
        kept = asyncio.create_task(batcher.submit([(DOC, "kept")], LONG))
        await _until(lambda: batcher.queue_depth == 2)
        gone.cancel()
        run.gate.set()
        await first
        await kept
        await batcher.stop()
        return run

    assert asyncio.run(main()).batches == [["first"], ["kept"]]


def test_a_request_cancelled_while_its_batch_runs_logs_nothing_and_its_batch_still_counts():
    """A client that hangs up is routine under load: it must not log "exception was never retrieved",
    and the batch it left is still a pipeline call in the batch-size metric."""
    reported = []

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: reported.append(context["message"]))
        run, metrics = GatedRun(), Metrics()
        batcher, first = await _blocked_batcher(run, metrics=metrics)
        first.cancel()  # its batch is running, held by the gate
        with pytest.raises(asyncio.CancelledError):
            await first
        run.gate.set()
        await _until(lambda: run.batches == [["first"]] and batcher.running_seconds() == 0.0)
        await batcher.stop()
        del first
        gc.collect()  # an unretrieved exception is reported when its future is collected
        return metrics

    metrics = asyncio.run(main())
    assert reported == []
    assert metrics.registry.get_sample_value("qfsum_batch_size_count") == 1


def test_drain_refuses_queued_work_at_once_and_lets_the_running_batch_finish_within_grace():
    async def main():
        run = GatedRun()
        batcher, first = await _blocked_batcher(run)
        queued = asyncio.create_task(batcher.submit([(DOC, "queued")], LONG))
        await _until(lambda: batcher.queue_depth == 1)
        drain = asyncio.create_task(batcher.drain(grace_s=LONG))
        with pytest.raises(ShuttingDown, match="not started"):
            await queued  # at once, while the running batch still holds the gate
        with pytest.raises(ShuttingDown, match="retry on another instance"):
            await batcher.submit([(DOC, "new")], LONG)
        run.gate.set()
        answer = await first
        await asyncio.wait_for(drain, LONG)
        await batcher.stop()
        return run, answer

    run, answer = asyncio.run(main())
    assert answer[0].summary.text == "FIRST" and run.batches == [["first"]]


def test_a_batch_running_past_the_grace_period_is_answered_503_and_stop_does_not_wait_for_it():
    async def main():
        run = GatedRun()
        batcher, first = await _blocked_batcher(run)
        await asyncio.wait_for(batcher.drain(grace_s=0.01), LONG)
        with pytest.raises(ShuttingDown, match="within the 0.01 s grace period"):
            await first
        await asyncio.wait_for(batcher.stop(), LONG)  # the model thread is still held: stop must not wait
        run.gate.set()

    asyncio.run(main())


async def _settled(futures, deadline_s: float = LONG) -> list[tuple[int, object]]:
    deadline = asyncio.get_running_loop().time() + deadline_s
    return [outcome async for outcome in as_settled(futures, deadline)]


def test_streamed_pairs_are_handed_over_batch_by_batch_each_failure_in_its_place():
    async def main():
        run = GatedRun()
        batcher, first = await _blocked_batcher(run, max_batch_size=2)
        futures = batcher.enqueue([(DOC, "a"), (DOC, "b"), (DOC, "bad"), (DOC, "c")], LONG)
        await _until(lambda: batcher.queue_depth == 4)
        settled = asyncio.get_running_loop().create_task(_settled(futures))
        run.gate.set()
        await first
        outcomes = await settled
        await batcher.stop()
        return run, outcomes

    run, outcomes = asyncio.run(main())
    assert run.batches == [["first"], ["a", "b"], ["bad", "c"], ["bad"], ["c"]]  # the failing batch re-ran one by one
    assert [i for i, _ in outcomes] == [0, 1, 2, 3]
    assert [o.summary.text for _, o in outcomes if not isinstance(o, Exception)] == ["A", "B", "C"]
    assert isinstance(outcomes[2][1], QfsumError) and outcomes[3][1].batch_size == 2


def test_streamed_pairs_past_the_deadline_or_left_are_dropped_before_the_model():
    async def main():
        run = GatedRun()
        batcher, first = await _blocked_batcher(run)
        late = await _settled(batcher.enqueue([(DOC, "late1"), (DOC, "late2")], LONG), deadline_s=0.01)
        left = batcher.enqueue([(DOC, "left")], LONG)
        stream = as_settled(left, asyncio.get_running_loop().time() + LONG)
        waiting = asyncio.get_running_loop().create_task(anext(stream))
        await asyncio.sleep(0)  # one turn of the loop: the stream starts waiting for its answer
        await _until(lambda: batcher.queue_depth == 3)
        waiting.cancel()  # the client went away while its pair was queued
        with pytest.raises(asyncio.CancelledError):
            await waiting
        kept = asyncio.get_running_loop().create_task(batcher.submit([(DOC, "kept")], LONG))
        run.gate.set()
        await first
        await kept
        await batcher.stop()
        return run, late, left

    run, late, left = asyncio.run(main())
    assert [(i, type(o)) for i, o in late] == [(0, DeadlineExceeded), (1, DeadlineExceeded)]
    assert left[0].cancelled()
    assert run.batches == [["first"], ["kept"]]


def test_naive_runner_streams_one_call_per_request_each_failure_in_its_place():
    async def main():
        run = GatedRun()
        run.gate.set()
        runner = NaiveRunner(run)
        await runner.start()
        outcomes = await _settled(runner.enqueue([(DOC, "a"), (DOC, "bug"), (DOC, "b")], LONG))
        await runner.stop()
        return run, outcomes

    run, outcomes = asyncio.run(main())
    assert run.batches[0] == ["a", "bug", "b"]  # one call; then each alone, to find the culprit
    assert [i for i, _ in outcomes] == [0, 1, 2]
    assert isinstance(outcomes[1][1], PipelineFailed) and outcomes[2][1].summary.text == "B"


class WatchingRun:
    """A run_batch that takes `wanted` as `Pipeline.summarize_batch` does: it waits for `gate`, then
    records which of its pairs are still wanted (what a writer asks between decoding steps)."""

    def __init__(self) -> None:
        self.gate, self.entered = threading.Event(), threading.Event()
        self.seen: list[list[bool]] = []

    def __call__(self, pairs, wanted=None) -> list[Summary]:
        self.entered.set()
        self.gate.wait(timeout=60)
        self.seen.append([wanted(i) for i in range(len(pairs))] if wanted is not None else [])
        return [Summary(q, q.upper(), [], {"total_ms": 1.0}) for _, q in pairs]


def test_a_pair_whose_client_leaves_mid_batch_is_no_longer_wanted_by_the_running_batch():
    """The writer of a running batch learns which answers nobody waits for any more (it stops decoding
    them), and the others are still wanted and answered."""

    async def main():
        run = WatchingRun()
        batcher = MicroBatcher(run, max_wait_s=0.0, max_batch_size=4)
        await batcher.start()
        run.gate.set()
        await batcher.submit([(DOC, "warm")], LONG)  # the first batch is never measured
        run.gate.clear()
        run.entered.clear()
        futures = batcher.enqueue([(DOC, "gone"), (DOC, "kept"), (DOC, "late")], LONG)
        await _until(run.entered.is_set)  # the three pairs are one running batch
        futures[0].cancel()  # the client left
        futures[2].set_exception(DeadlineExceeded("timed out"))  # what the deadline does to a pair
        run.gate.set()
        kept = await futures[1]
        measured_after_it = batcher.cost.measured
        await batcher.submit([(DOC, "again")], LONG)
        await batcher.stop()
        return run, kept, measured_after_it, batcher.cost.measured

    run, kept, measured_after_it, measured_at_last = asyncio.run(main())
    assert run.seen == [[True], [False, True, False], [True]]
    assert kept.summary.text == "KEPT"
    # answers may have stopped early: that batch's time is not what a batch costs; the next one's is
    assert not measured_after_it and measured_at_last


def test_a_plain_run_batch_without_wanted_still_serves():
    async def main():
        run = GatedRun()
        run.gate.set()
        batcher = MicroBatcher(run, max_wait_s=0.0)
        await batcher.start()
        results = await batcher.submit([(DOC, "a"), (DOC, "b")], LONG)
        await batcher.stop()
        return results

    assert [r.summary.text for r in asyncio.run(main())] == ["A", "B"]
