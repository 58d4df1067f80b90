"""Micro-batching: concurrent requests share one pipeline call.

Each (document, query) pair waits in a bounded queue. A single collector takes the first pair,
waits up to `max_wait_s` for more (or until `max_batch_size`; never more than a tenth of the measured
batch time, so cheap pipelines do not pay the wait), and runs the batch in one worker thread, so the
model is never called concurrently. While a batch runs, new pairs queue up and form the next batch:
under load, batches fill without waiting. A pair whose deadline passes while
queued is dropped before it costs a model call, and a request that would wait past its deadline
is refused at once (429), so load beyond capacity costs clients a retry instead of a timeout.

The wait is predicted from measured batch times per batch size: the rest of the batch in flight plus
every batch the queue ahead (and the request) will form. A size never measured is priced from the
nearest measured one, scaled linearly upwards (batching is sublinear, so this errs towards refusing):
a server warmed up with one request does not promise 64 clients what 4 full batches cannot keep.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..document import Document
from ..errors import QfsumError
from ..pipeline import Summary
from .metrics import Metrics

Pair = tuple[Document, str]
WAIT_SHARE = 0.1  # waiting for company may add at most this share of a batch's measured time
RunBatch = Callable[[Sequence[Pair]], list[Summary]]


class QueueFull(Exception):
    """The queue cannot take the request; retry after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the server is busy; retry in {retry_after} s")
        self.retry_after = retry_after


class DeadlineExceeded(Exception):
    """The request was not answered within its deadline."""


@dataclass
class Result:
    """One answered pair: the summary, the size of the batch it ran in, and its time in the queue."""

    summary: Summary
    batch_size: int
    queue_ms: float


@dataclass
class _Item:
    pair: Pair
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Gathers pairs into batches of at most `max_batch_size`, waiting at most `max_wait_s`.

    `max_queue` bounds the pairs waiting (not yet in a batch); a request that does not fit is
    refused whole with `QueueFull`. Use inside a running event loop: `start()`, `submit()`, `stop()`.
    """

    def __init__(self, run_batch: RunBatch, max_batch_size: int = 16, max_wait_s: float = 0.01,
                 max_queue: int = 256, metrics: Metrics | None = None) -> None:
        if max_batch_size < 1 or max_queue < 1 or max_wait_s < 0:
            raise QfsumError("max batch size and queue size must be >= 1, max wait >= 0")
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.metrics = metrics
        self._pending: deque[_Item] = deque()
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qfsum-batch")
        self._task: asyncio.Task | None = None
        self._seconds_by_size: dict[int, float] = {}  # batch size -> running mean of its time
        self._running: tuple[float, int] | None = None  # (start time, size) of the batch in flight

    @property
    def queue_depth(self) -> int:
        """Pairs waiting for a batch."""
        return len(self._pending)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._collect(), name="qfsum-batcher")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for item in self._pending:
            item.future.cancel()
        self._pending.clear()
        self._executor.shutdown(wait=True)

    async def submit(self, pairs: Sequence[Pair], timeout_s: float) -> list[Result]:
        """Answer the pairs (in order) within `timeout_s`, or raise QueueFull / DeadlineExceeded.

        Raises QfsumError if the pipeline rejects one of the pairs (e.g. a query too long).
        """
        if len(self._pending) + len(pairs) > self.max_queue or self.expected_wait(len(pairs)) > timeout_s:
            raise QueueFull(self.retry_after())
        loop = asyncio.get_running_loop()
        items = [_Item(pair, loop.create_future()) for pair in pairs]
        self._pending.extend(items)
        self._set_depth()
        self._arrived.set()
        try:
            return await asyncio.wait_for(asyncio.gather(*(i.future for i in items)), timeout_s)
        except TimeoutError:
            raise DeadlineExceeded(f"not answered within {timeout_s:g} s") from None
        finally:
            # on timeout or error the futures are cancelled: the collector skips them if still queued
            for item in items:
                item.future.cancel()

    def batch_seconds(self, size: int) -> float | None:
        """Predicted seconds of one batch of `size` pairs; None before any batch was measured.

        The measured mean at that size, else the smallest larger size's (batch time grows with size),
        else the largest measured size's scaled up linearly (an upper bound: batching is sublinear).
        """
        if not self._seconds_by_size:
            return None
        if size in self._seconds_by_size:
            return self._seconds_by_size[size]
        larger = [s for s in self._seconds_by_size if s > size]
        if larger:
            return self._seconds_by_size[min(larger)]
        biggest = max(self._seconds_by_size)
        return self._seconds_by_size[biggest] * size / biggest

    def expected_wait(self, n: int) -> float:
        """Seconds until `n` more pairs would be answered: the rest of the batch in flight plus the batches
        the queue and these pairs will form (0 before any batch was measured)."""
        if not self._seconds_by_size:
            return 0.0
        wait = 0.0
        if self._running is not None:
            started, size = self._running
            wait += max(0.0, self.batch_seconds(size) - (time.perf_counter() - started))
        queued = len(self._pending) + n
        full, rest = divmod(queued, self.max_batch_size)
        wait += full * self.batch_seconds(self.max_batch_size) + (self.batch_seconds(rest) if rest else 0.0)
        return wait

    def wait_limit(self) -> float:
        """How long the first queued pair waits for company: `max_wait_s`, but at most WAIT_SHARE of the
        measured time of a batch like the one queued, so a pipeline answering in 3 ms is not slowed down
        by a 10 ms wait that only pays off for models that take seconds."""
        expected = self.batch_seconds(max(1, len(self._pending)))
        return self.max_wait_s if expected is None else min(self.max_wait_s, WAIT_SHARE * expected)

    def retry_after(self) -> int:
        """Seconds until the work already accepted is likely done (at least 1)."""
        return max(1, math.ceil(self.expected_wait(0)))

    def _set_depth(self) -> None:
        if self.metrics:
            self.metrics.queue_depth.set(len(self._pending))

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
            # wait for company: until the batch is full or the first pair has waited its wait_limit()
            deadline = self._pending[0].enqueued + self.wait_limit()
            while len(self._pending) < self.max_batch_size and (left := deadline - time.perf_counter()) > 0:
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except TimeoutError:
                    break
            batch: list[_Item] = []
            while self._pending and len(batch) < self.max_batch_size:
                item = self._pending.popleft()
                if not item.future.done():  # skip pairs whose request timed out or failed
                    batch.append(item)
            self._set_depth()
            if batch:
                await self._run(loop, batch)

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Item]) -> None:
        started = time.perf_counter()
        self._running = (started, len(batch))
        try:
            summaries = await loop.run_in_executor(self._executor, self.run_batch, [i.pair for i in batch])
        except QfsumError as err:
            if len(batch) == 1:
                if not batch[0].future.done():
                    batch[0].future.set_exception(err)
                return
            # one bad pair must not fail its batch-mates: answer them one by one
            for item in batch:
                if not item.future.done():
                    await self._run(loop, [item])
            return
        except Exception as err:  # a bug: every request of the batch gets a 500, the server lives on
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(err)
            return
        finally:
            self._running = None
        seconds = time.perf_counter() - started
        previous = self._seconds_by_size.get(len(batch))
        self._seconds_by_size[len(batch)] = seconds if previous is None else 0.8 * previous + 0.2 * seconds
        if self.metrics:
            self.metrics.batch_size.observe(len(batch))
        for item, summary in zip(batch, summaries, strict=True):
            if not item.future.done():
                item.future.set_result(Result(summary, len(batch), (started - item.enqueued) * 1e3))



class NaiveRunner:
    """The baseline the benchmark compares with: one pipeline call per request, one at a time.

    No batching across requests, no queue bound and no deadline: what a server that simply calls
    `Pipeline.summarize_many` in its handler does (serialized, as the models are not thread-safe).
    """

    def __init__(self, run_batch: RunBatch, metrics: Metrics | None = None) -> None:
        self.run_batch = run_batch
        self.metrics = metrics
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qfsum-naive")
        self._waiting = 0

    @property
    def queue_depth(self) -> int:
        return self._waiting

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self._executor.shutdown(wait=True)

    async def submit(self, pairs: Sequence[Pair], timeout_s: float) -> list[Result]:
        loop = asyncio.get_running_loop()
        enqueued = time.perf_counter()
        self._waiting += len(pairs)
        self._set_depth()
        started = enqueued

        def call() -> list[Summary]:
            nonlocal started
            started = time.perf_counter()
            return self.run_batch(pairs)

        try:
            summaries = await loop.run_in_executor(self._executor, call)  # the executor's queue serializes
        finally:
            self._waiting -= len(pairs)
            self._set_depth()
        if self.metrics:
            self.metrics.batch_size.observe(len(pairs))
        return [Result(s, len(pairs), (started - enqueued) * 1e3) for s in summaries]

    def _set_depth(self) -> None:
        if self.metrics:
            self.metrics.queue_depth.set(self._waiting)
