"""Micro-batching: concurrent requests share one pipeline call.

Each (document, query) pair waits in a bounded queue. A single collector takes the first pair,
waits up to `max_wait_s` for more (or until `max_batch_size`; never more than a tenth of the predicted
batch time, so cheap pipelines do not pay the wait), and runs the batch on one model thread, so the
model is never called concurrently. While a batch runs, new pairs queue up and form the next batch:
under load, batches fill without waiting. A pair whose request timed out, failed or whose client went
away is dropped before it costs a model call, and a request that would wait past its deadline is
refused at once (429), so load beyond capacity costs clients a retry instead of a timeout.

Admission prices work with a `CostModel` learned from measured batches: seconds per batch of n queries
(the query part) plus seconds per character of a document the pipeline has not seen yet (segmenting,
indexing, encoding it). Estimates move towards every new measurement, and an idle server admits any
request whose document fits the deadline, so one slow batch cannot lock clients out: the next batch
re-measures. The first batch (cold caches, lazy initialisation) is not measured.

`submit` answers a request's pairs all at once; `enqueue` plus `as_settled` hand each pair's answer
over as soon as its batch is done (the streaming endpoint), with the same admission and deadline.

A request may set its answers' length (`words`, passed per pair, so one batch mixes lengths safely)
and ask for each answer's text as a model writes it (`on_text`): the model thread hands every piece
to the event loop (`call_soon_threadsafe`), where it reaches its own request's callback unless that
request is gone. A callback that fails or a client that left costs the rest of the batch nothing.

A pair whose request times out or whose client leaves while its batch is decoding stops being
decoded at the next step (`wanted`, when `run_batch` takes it, as `Pipeline.summarize_batch` does):
the batch, and every request queued behind it, does not wait for an answer nobody will read.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import math
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..document import Document
from ..errors import QfsumError
from ..pipeline import Summary, summarize_each
from .metrics import Metrics

Pair = tuple[Document, str]
WAIT_SHARE = 0.1  # waiting for company may add at most this share of a batch's predicted time
LEARNING_RATE = 0.3  # weight of a new measurement in the estimates: a past outlier fades within a few batches
SEEN_DOCUMENTS = 64  # documents remembered as already prepared by the pipeline (its caches hold as many)
RunBatch = Callable[..., list[Summary]]  # (pairs, words=, on_text=, wanted=) as Pipeline.summarize_batch; all optional
TextCallback = Callable[[int, str], None]  # (index of the pair in its request, new text of its answer)
log = logging.getLogger("qfsum.serving")


class QueueFull(Exception):
    """The queue cannot take the request now; retry after `retry_after` seconds (429)."""

    def __init__(self, retry_after: int, reason: str) -> None:
        super().__init__(f"the server is busy ({reason}); retry in {retry_after} s")
        self.retry_after = retry_after


class TooMuchWork(Exception):
    """The request alone cannot be answered within its deadline, however idle the server (413)."""


class DeadlineExceeded(Exception):
    """The request was not answered within its deadline (504)."""


class PipelineFailed(Exception):
    """The pipeline raised an unexpected error on this request alone (500; the server logs it)."""


class ShuttingDown(Exception):
    """The server is stopping: the request was not (or not fully) computed (503)."""


@dataclass
class Result:
    """One answered pair: the summary, the size of the batch it ran in, and its time in the queue."""

    summary: Summary
    batch_size: int
    queue_ms: float


@dataclass
class Token:
    """New text of a pair's answer as the writer writes it: a preview; its `Result` is the answer."""

    text: str


@dataclass
class _Item:
    pair: Pair
    fingerprint: str
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)
    words: int | None = None  # the answer's length; None: the pipeline's
    on_text: Callable[[str], None] | None = None  # gets the answer's new text, on the event loop


class CostModel:
    """Predicted seconds of model work: per batch size for the queries, per character for new documents.

    Each estimate is an exponential moving average (weight LEARNING_RATE), so it follows the latest
    measurements. Batch time never shrinks with size, so a size is priced at most like any larger
    measured one (a stale slow estimate for one size is capped by fresher larger batches); a size above
    the largest measured is scaled up linearly (batching is sublinear: this errs towards refusing).
    """

    def __init__(self) -> None:
        self.query_seconds: dict[int, float] = {}  # batch size -> seconds of its query part
        self.char_seconds: float | None = None  # seconds per character of a document not seen before

    def observe(self, size: int, seconds: float, new_chars: int, document_seconds: float) -> None:
        """Learn from one batch of `size` pairs that took `seconds`, `document_seconds` of them preparing
        documents of `new_chars` characters in all."""
        document_seconds = min(max(document_seconds, 0.0), seconds)
        self.query_seconds[size] = _average(self.query_seconds.get(size), seconds - document_seconds)
        if new_chars > 0:
            self.char_seconds = _average(self.char_seconds, document_seconds / new_chars)

    @property
    def measured(self) -> bool:
        return bool(self.query_seconds)

    def batch_seconds(self, size: int) -> float:
        """Predicted seconds of the query part of a batch of `size` (0 before any measurement)."""
        if size <= 0 or not self.query_seconds:
            return 0.0
        larger = [s for s in self.query_seconds if s >= size]
        if larger:
            return min(self.query_seconds[s] for s in larger)
        biggest = max(self.query_seconds)
        return self.query_seconds[biggest] * size / biggest

    def queries_seconds(self, n: int, max_batch_size: int) -> float:
        """Predicted seconds of `n` queries run in batches of at most `max_batch_size`."""
        full, rest = divmod(n, max_batch_size)
        return full * self.batch_seconds(max_batch_size) + self.batch_seconds(rest)

    def document_seconds(self, chars: int) -> float:
        """Predicted seconds to prepare new documents of `chars` characters (0 before any measurement)."""
        return chars * (self.char_seconds or 0.0)


def _average(previous: float | None, value: float) -> float:
    return value if previous is None else (1 - LEARNING_RATE) * previous + LEARNING_RATE * value


class ModelThread:
    """One daemon thread that runs model calls one after another.

    Unlike a ThreadPoolExecutor, a call still running at exit holds neither the event loop nor the
    process: shutdown gives up on it after its grace period, and the interpreter does not join it.
    """

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def run(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future:
        """Queue `fn(*args)`; the returned future (of the running loop) gets its result or exception."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._calls.put((loop, future, fn, args))
        return future

    def close(self) -> None:
        """Stop after the calls already queued; never waits."""
        self._calls.put(None)

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            loop, future, fn, args = call
            try:
                outcome: tuple[str, Any] = ("set_result", fn(*args))
            except BaseException as err:  # noqa: BLE001 - every failure belongs to the caller
                outcome = ("set_exception", err)
            try:
                loop.call_soon_threadsafe(_settle, future, *outcome)
            except RuntimeError:  # the loop is closed: nobody waits for this result any more
                pass


def _settle(future: asyncio.Future, method: str, value: Any) -> None:
    if not future.done():
        getattr(future, method)(value)


class MicroBatcher:
    """Gathers pairs into batches of at most `max_batch_size`, waiting at most `max_wait_s`.

    `max_queue` bounds the pairs waiting (not yet in a batch); a request that does not fit is
    refused whole with `QueueFull`. Use inside a running event loop: `start()`, `submit()`, `drain()`,
    `stop()`.
    """

    def __init__(self, run_batch: RunBatch, max_batch_size: int = 16, max_wait_s: float = 0.01,
                 max_queue: int = 256, metrics: Metrics | None = None) -> None:
        if max_batch_size < 1 or max_queue < 1 or not 0 <= max_wait_s < math.inf:
            raise QfsumError("max batch size and queue size must be >= 1, max wait >= 0")
        self.run_batch = run_batch
        self._asks_wanted = _takes_keyword(run_batch, "wanted")
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.metrics = metrics
        self.cost = CostModel()
        self._pending: deque[_Item] = deque()
        self._arrived = asyncio.Event()
        self._thread: ModelThread | None = None
        self._task: asyncio.Task | None = None
        self._running: tuple[float, float, list[_Item]] | None = None  # (start, predicted seconds, items)
        self._seen: OrderedDict[str, None] = OrderedDict()  # fingerprints of documents already prepared
        self._cold = True  # the first batch pays lazy initialisation: it is not measured
        self._closing = False

    @property
    def queue_depth(self) -> int:
        """Pairs waiting for a batch."""
        return len(self._pending)

    @property
    def closing(self) -> bool:
        """Whether `drain()` started: new requests are refused."""
        return self._closing

    def running_seconds(self) -> float:
        """How long the batch on the model thread has been running (0 if none)."""
        return time.perf_counter() - self._running[0] if self._running else 0.0

    async def start(self) -> None:
        self._thread = ModelThread("qfsum-batch")
        self._task = asyncio.create_task(self._collect(), name="qfsum-batcher")

    async def drain(self, grace_s: float) -> None:
        """Refuse new requests, fail queued ones with ShuttingDown, and give the running batch up to
        `grace_s` seconds to finish; its requests get ShuttingDown after that. Never blocks the loop."""
        self._closing = True
        self._fail(list(self._pending), ShuttingDown("the server is shutting down; the request was not started"))
        self._pending.clear()
        self._set_depth()
        if self._running is not None:
            items = self._running[2]
            await asyncio.wait([i.future for i in items], timeout=grace_s)
            self._fail(items, ShuttingDown(f"the server is shutting down; the request did not finish "
                                           f"within the {grace_s:g} s grace period"))

    async def stop(self) -> None:
        """Drain at once (no grace) and end the collector and the model thread, without waiting for it."""
        if not self._closing:
            await self.drain(0.0)
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._thread:
            self._thread.close()

    def enqueue(self, pairs: Sequence[Pair], timeout_s: float, words: int | None = None,
                on_text: TextCallback | None = None) -> list[asyncio.Future]:
        """Admit the pairs as one request and queue them; return one future per pair, which gets its
        `Result`, or QfsumError / PipelineFailed / ShuttingDown for that pair alone.

        `words` sets the answers' length (None: the pipeline's); `on_text(k, text)`, called on the event
        loop, gets pair k's new text while a model writes it, until its future is done or cancelled.
        Raises QueueFull / TooMuchWork / ShuttingDown when the request is refused whole. The caller
        enforces `timeout_s` and cancels the futures it no longer wants: their pairs, if still queued,
        are then dropped before they cost a model call (`as_settled` does both).
        """
        if self._closing:
            raise ShuttingDown("the server is shutting down; retry on another instance")
        loop = asyncio.get_running_loop()
        items = [_Item(pair, pair[0].fingerprint, loop.create_future(), words=words,
                       on_text=functools.partial(on_text, k) if on_text is not None else None)
                 for k, pair in enumerate(pairs)]
        self._admit(items, timeout_s)
        self._pending.extend(items)
        self._set_depth()
        self._arrived.set()
        return [i.future for i in items]

    async def submit(self, pairs: Sequence[Pair], timeout_s: float, words: int | None = None) -> list[Result]:
        """Answer the pairs (in order, in about `words` words each) within `timeout_s`, or raise QueueFull /
        TooMuchWork / DeadlineExceeded / ShuttingDown. Raises QfsumError if the pipeline rejects one of
        the pairs (e.g. a query too long) and PipelineFailed if it fails unexpectedly: either way for this
        request alone, its batch-mates are answered."""
        futures = self.enqueue(pairs, timeout_s, words)
        answers = asyncio.gather(*futures)
        try:
            return await asyncio.wait_for(answers, timeout_s)
        except TimeoutError:
            raise DeadlineExceeded(f"not answered within {timeout_s:g} s") from None
        finally:
            # on timeout, error or a client gone: the collector skips these if still queued
            for future in futures:
                future.cancel()
            if answers.done() and not answers.cancelled():
                # cancelled, a gather keeps a CancelledError as its exception: read it here, or every
                # client that hangs up logs "exception was never retrieved"
                answers.exception()

    def _admit(self, items: list[_Item], timeout_s: float) -> None:
        """Raise TooMuchWork if the request alone cannot meet its deadline, QueueFull if the queue
        cannot take it now or it would wait past its deadline. An idle server admits anything that fits."""
        own = self.cost.document_seconds(self._new_chars(items))
        if own > timeout_s:
            raise TooMuchWork(f"the document is priced at {own:.0f} s of model work, over the {timeout_s:g} s "
                              f"deadline: send a smaller document")
        if len(self._pending) + len(items) > self.max_queue:
            raise QueueFull(self.retry_after(), f"the queue holds {len(self._pending)} queries")
        idle = self._running is None and not self._pending
        if not idle and self.expected_wait(items) > timeout_s:
            raise QueueFull(self.retry_after(), f"the work ahead would take about {self.expected_wait(items):.0f} s, "
                                                f"over the {timeout_s:g} s deadline")

    def _new_chars(self, *groups: Iterable[_Item]) -> int:
        """Characters of the distinct documents among the items of `groups` not prepared yet."""
        documents = {i.fingerprint: len(i.pair[0].text) for group in groups for i in group}
        return sum(chars for fingerprint, chars in documents.items() if fingerprint not in self._seen)

    def expected_wait(self, items: Sequence[_Item] = ()) -> float:
        """Seconds until `items` would be answered: the rest of the batch in flight plus the work the
        queue and these items make (0 before any batch was measured)."""
        wait = 0.0
        if self._running is not None:
            started, predicted, _ = self._running
            wait += max(0.0, predicted - (time.perf_counter() - started))
        queries = len(self._pending) + len(items)
        return (wait + self.cost.queries_seconds(queries, self.max_batch_size)
                + self.cost.document_seconds(self._new_chars(self._pending, items)))

    def wait_limit(self) -> float:
        """How long the first queued pair waits for company: `max_wait_s`, but at most WAIT_SHARE of the
        predicted time of a batch like the one queued, so a pipeline answering in 3 ms is not slowed down
        by a 10 ms wait that only pays off for models that take seconds."""
        if not self.cost.measured:
            return self.max_wait_s
        return min(self.max_wait_s, WAIT_SHARE * self.cost.batch_seconds(max(1, len(self._pending))))

    def retry_after(self) -> int:
        """Seconds until the work already accepted is likely done (at least 1)."""
        return max(1, math.ceil(self.expected_wait()))

    def _set_depth(self) -> None:
        if self.metrics:
            self.metrics.queue_depth.set(len(self._pending))

    async def _collect(self) -> None:
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
                if not item.future.done():  # skip pairs whose request timed out, failed or left
                    batch.append(item)
            self._set_depth()
            if batch:
                await self._run(batch)

    async def _run(self, batch: list[_Item]) -> None:
        """Run one batch; a pair that fails (alone, see `summarize_each`) fails only its own request."""
        new_chars = self._new_chars(batch)
        started = time.perf_counter()
        predicted = self.cost.queries_seconds(len(batch), self.max_batch_size) + self.cost.document_seconds(new_chars)
        self._running = (started, predicted, batch)
        assert self._thread is not None, "start() the batcher first"
        options = _options(batch, asyncio.get_running_loop())
        if self._asks_wanted:
            options["wanted"] = _still_waiting(batch)
        call = functools.partial(summarize_each, self.run_batch, [i.pair for i in batch], **options)
        try:
            results = await self._thread.run(call)
        finally:
            self._running = None
        failed = [r for r in results if isinstance(r, Exception)]
        if self.metrics:  # every pipeline call, measured or not
            self.metrics.batch_size.observe(len(batch))
        # a batch with failures ran its pairs one by one, and one with a pair nobody waited for any more
        # may have stopped decoding it early: neither's time says what a batch costs
        if not failed and not any(item.future.done() for item in batch):
            self._learn(batch, time.perf_counter() - started, new_chars, results)
        for item, result in zip(batch, results, strict=True):
            _deliver(item.future, result, len(batch), (started - item.enqueued) * 1e3)

    def _learn(self, batch: list[_Item], seconds: float, new_chars: int, summaries: list[Summary]) -> None:
        """Measure the batch (not the first one: it pays cold caches) and remember its documents."""
        # a new document is prepared (segmented, indexed, encoded) by its first query's rank stage
        firsts = {}
        for item, summary in zip(batch, summaries, strict=True):
            if item.fingerprint not in self._seen:
                firsts.setdefault(item.fingerprint, summary)
        document_ms = sum(s.timings.get("segment_ms", 0.0) + s.timings.get("score_ms", 0.0) for s in firsts.values())
        if not self._cold:
            self.cost.observe(len(batch), seconds, new_chars, document_ms / 1e3)
        self._cold = False
        for fingerprint in firsts:
            self._seen[fingerprint] = None
        for item in batch:
            self._seen.move_to_end(item.fingerprint)
        while len(self._seen) > SEEN_DOCUMENTS:
            self._seen.popitem(last=False)

    def _fail(self, items: Sequence[_Item], err: BaseException) -> None:
        for item in items:
            if not item.future.done():
                item.future.set_exception(err)


def _options(items: Sequence[_Item], loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
    """`summarize_each`'s keyword arguments for a batch: the lengths asked for and a thread-safe
    `on_text`, each only when some item wants it (so a plain `run_batch(pairs)` serves the others)."""
    options: dict[str, Any] = {}
    if any(item.words is not None for item in items):
        options["words"] = [item.words for item in items]
    if any(item.on_text is not None for item in items):
        options["on_text"] = _text_relay(items, loop)
    return options


def _still_waiting(items: Sequence[_Item]) -> Callable[[int], bool]:
    """`wanted` for the model thread: whether item `position`'s request still waits for its answer.
    It only reads whether the future is settled (a timeout, a failure or a client gone settles or
    cancels it on the event loop); reading that flag from another thread is safe, and at worst one
    step late."""
    return lambda position: not items[position].future.done()


def _takes_keyword(function: Callable[..., Any], name: str) -> bool:
    """Whether `function` accepts the keyword argument `name` (by name or through **kwargs)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # a callable without a signature: assume the plain `run_batch(pairs)`
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _text_relay(items: Sequence[_Item], loop: asyncio.AbstractEventLoop) -> TextCallback:
    """An `on_text(position, text)` for the model thread: each piece goes to its item's callback on the
    event loop. Nothing it does can raise into the model call: a request gone (its future done), a
    callback that fails or a loop already closed only drop that piece."""

    def hand_over(item: _Item, text: str) -> None:  # on the event loop
        if item.on_text is None or item.future.done():
            return
        try:
            item.on_text(text)
        except Exception:  # noqa: BLE001 - one request's callback must not fail the batch
            log.exception("a text callback failed; its request gets no more text")
            item.on_text = None

    def relay(position: int, text: str) -> None:  # on the model thread
        try:
            loop.call_soon_threadsafe(hand_over, items[position], text)
        except RuntimeError:  # the loop is closed: nobody reads this text any more
            pass

    return relay


def _deliver(future: asyncio.Future, result: Summary | Exception, batch_size: int, queue_ms: float) -> None:
    """Settle one pair's future with its summary, or with the error it raised alone."""
    if future.done():  # its request timed out or left meanwhile
        return
    if isinstance(result, QfsumError):
        future.set_exception(result)
    elif isinstance(result, Exception):  # a bug or a fault: this request alone gets a 500
        log.error("the pipeline failed on one query", exc_info=result)
        future.set_exception(PipelineFailed(f"{type(result).__name__}: {result}"))
    else:
        future.set_result(Result(result, batch_size, queue_ms))


async def as_settled(futures: Sequence[asyncio.Future], deadline: float,
                     tokens: asyncio.Queue | None = None) -> AsyncIterator[tuple[int, Result | Exception | Token]]:
    """Yield `(index, Result or exception)` for each future as it settles, in that order; those not
    settled by `deadline` (the running loop's clock) get DeadlineExceeded.

    `tokens`, if given, is the queue the request's `on_text` puts `(index, text)` into: each piece is
    yielded as `(index, Token)` in the order it came, so a pair's text always precedes its answer (the
    model thread hands both over through the loop, the text first). Pieces of a settled pair are dropped.

    However the iteration ends (done, closed early, cancelled because the client left), the futures
    still pending are cancelled, so their queued pairs are dropped before they reach the model.
    """
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = tokens if tokens is not None else asyncio.Queue()
    index = {future: i for i, future in enumerate(futures)}
    for future in futures:  # a settled future joins the queue behind the text already there
        future.add_done_callback(events.put_nowait)
    pending = set(futures)
    try:
        while pending:
            try:
                event = events.get_nowait()  # what is there already counts, even at the deadline
            except asyncio.QueueEmpty:
                try:
                    event = await asyncio.wait_for(events.get(), max(0.0, deadline - loop.time()))
                except TimeoutError:  # the deadline passed
                    late = DeadlineExceeded("not answered within the request's deadline")
                    for future in sorted(pending, key=index.__getitem__):
                        yield index[future], late
                    return
            if isinstance(event, asyncio.Future):
                if event in pending:
                    pending.discard(event)
                    yield index[event], _outcome(event)
            elif futures[event[0]] in pending:
                yield event[0], Token(event[1])
    finally:
        for future in futures:
            future.cancel()


def _outcome(future: asyncio.Future) -> Result | Exception:
    """A settled future's result, or its exception (ShuttingDown if it was cancelled)."""
    if future.cancelled():
        return ShuttingDown("the question was cancelled")
    return future.exception() or future.result()  # type: ignore[return-value]


class NaiveRunner:
    """The baseline the benchmark compares with: one pipeline call per request, one at a time.

    No batching across requests, no queue bound and no deadline: what a server that simply calls
    `Pipeline.summarize_many` in its handler does (serialized, as the models are not thread-safe).
    """

    def __init__(self, run_batch: RunBatch, metrics: Metrics | None = None) -> None:
        self.run_batch = run_batch
        self.metrics = metrics
        self._thread: ModelThread | None = None
        self._waiting = 0
        self._tasks: set[asyncio.Task] = set()
        self.closing = False

    @property
    def queue_depth(self) -> int:
        return self._waiting

    def running_seconds(self) -> float:
        return 0.0  # not tracked: the baseline has no deadline to be stuck past

    async def start(self) -> None:
        self._thread = ModelThread("qfsum-naive")

    async def drain(self, grace_s: float) -> None:
        self.closing = True

    async def stop(self) -> None:
        self.closing = True
        if self._thread:
            self._thread.close()

    async def submit(self, pairs: Sequence[Pair], timeout_s: float, words: int | None = None) -> list[Result]:
        if self.closing:
            raise ShuttingDown("the server is shutting down; retry on another instance")
        assert self._thread is not None, "start() the runner first"
        enqueued = time.perf_counter()
        self._waiting += len(pairs)
        self._set_depth()
        started = enqueued

        def call() -> list[Summary]:
            nonlocal started
            started = time.perf_counter()
            return self.run_batch(pairs, **({"words": words} if words is not None else {}))

        try:
            summaries = await self._thread.run(call)  # the thread's queue serializes
        finally:
            self._waiting -= len(pairs)
            self._set_depth()
        if self.metrics:
            self.metrics.batch_size.observe(len(pairs))
        return [Result(s, len(pairs), (started - enqueued) * 1e3) for s in summaries]

    def enqueue(self, pairs: Sequence[Pair], timeout_s: float, words: int | None = None,
                on_text: TextCallback | None = None) -> list[asyncio.Future]:
        """Like `MicroBatcher.enqueue`, the baseline's way: one pipeline call for the request's pairs,
        each failing alone; no admission control, and pairs are not dropped once queued."""
        if self.closing:
            raise ShuttingDown("the server is shutting down; retry on another instance")
        assert self._thread is not None, "start() the runner first"
        thread, loop = self._thread, asyncio.get_running_loop()
        items = [_Item(pair, "", loop.create_future(), words=words,  # no fingerprint: the baseline prices nothing
                       on_text=functools.partial(on_text, k) if on_text is not None else None)
                 for k, pair in enumerate(pairs)]
        futures = [item.future for item in items]
        options = _options(items, loop)
        enqueued = started = time.perf_counter()
        self._waiting += len(pairs)
        self._set_depth()

        def call() -> list[Summary | Exception]:
            nonlocal started
            started = time.perf_counter()
            return summarize_each(self.run_batch, pairs, **options)

        async def run() -> None:
            try:
                results: Sequence[Summary | Exception] = await thread.run(call)
            except Exception as err:  # noqa: BLE001 - summarize_each isolates; anything else fails them all
                results = [err] * len(pairs)
            finally:
                self._waiting -= len(pairs)
                self._set_depth()
            if self.metrics:
                self.metrics.batch_size.observe(len(pairs))
            for future, result in zip(futures, results, strict=True):
                _deliver(future, result, len(pairs), (started - enqueued) * 1e3)

        task = loop.create_task(run())
        self._tasks.add(task)  # a reference, so the task is not collected while it runs
        task.add_done_callback(self._tasks.discard)
        return futures

    def _set_depth(self) -> None:
        if self.metrics:
            self.metrics.queue_depth.set(self._waiting)
