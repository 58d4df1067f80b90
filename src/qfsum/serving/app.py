"""The HTTP service: FastAPI app factory around one loaded pipeline.

    from qfsum import Pipeline
    from qfsum.serving import ServerConfig, create_app
    app = create_app(Pipeline.load("extractive"), ServerConfig())   # then: uvicorn.run(app)
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from .. import __version__
from ..document import Document
from ..errors import QfsumError
from ..pipeline import Pipeline
from .batcher import (DeadlineExceeded, MicroBatcher, NaiveRunner, PipelineFailed, QueueFull, Result, ShuttingDown,
                      Token, TooMuchWork, as_settled)
from .metrics import Metrics
from .middleware import BodyLimit, HostCheck, RecordMetrics, SecurityHeaders
from .models import (MAX_QUERIES, MAX_QUERY_CHARS, Answer, DocumentIn, DocumentResponse, ErrorBody, Health, Info,
                     Limits, Ready, SegmentOut, StreamAnswer, StreamDocument, StreamDone, StreamError, StreamRequest,
                     StreamToken, SummarizeRequest, SummarizeResponse, query_problem)

STATIC = resources.files("qfsum") / "serving" / "static"
T = TypeVar("T")
NDJSON = "application/x-ndjson"
log = logging.getLogger("qfsum.serving")
_VALIDATOR_NAME = re.compile(r"function-\w+\[\w+\(\), (\w+)\]")  # pydantic's name for an Annotated str: "str"


@dataclass
class ServerConfig:
    """How the server batches, bounds and guards its work."""

    mode: Literal["batched", "naive"] = "batched"  # naive: one pipeline call per request (the baseline)
    max_batch_size: int = 16  # queries per pipeline call at most
    max_wait_ms: float = 10.0  # how long the first query of a batch waits for company
    max_queue: int = 256  # queries waiting at most; beyond it requests get 429
    deadline_s: float = 60.0  # requests not answered by then get 504 (clients may ask for less)
    max_body_bytes: int = 8 * 2**20  # larger request bodies get 413
    max_inflight_bytes: int = 64 * 2**20  # bodies being read or answered, in all; beyond it 503
    max_document_chars: int = 1_000_000  # larger documents get 413: bounds the work of one request
    max_segments: int = 20_000  # documents with more units (paragraphs, turns, segments) get 413
    grace_s: float = 10.0  # on shutdown, how long the running batch may take to finish
    api_key: str | None = None  # if set, /v1 and /metrics need "Authorization: Bearer <key>"
    allowed_hosts: tuple[str, ...] | None = None  # Host headers served (DNS-rebinding guard); None: any


def _one_line(errors: list[dict]) -> str:
    """Pydantic errors as one readable line: 'queries: Field required; document: ...'."""
    parts = []
    for error in errors:
        if error.get("type") == "json_invalid":  # loc is (body, character offset)
            reason = (error.get("ctx") or {}).get("error", "")
            return f"the body is not valid JSON ({reason} at character {error['loc'][-1]})"
        # keys come from the client and may hold newlines: show odd ones quoted and escaped
        where = ".".join(_VALIDATOR_NAME.sub(r"\1", p) if isinstance(p, str) and p.isprintable() and p.strip()
                         else repr(p) for p in error.get("loc", ()) if p != "body") or "body"
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return " ".join("; ".join(parts).split())  # one line, whatever the messages hold


def create_app(pipeline: Pipeline, config: ServerConfig | None = None) -> FastAPI:
    """An app serving `pipeline` (already loaded: models load once, before the first request)."""
    config = config or ServerConfig()
    metrics = Metrics()
    if config.mode == "naive":
        runner: MicroBatcher | NaiveRunner = NaiveRunner(pipeline.summarize_batch, metrics)
    else:
        runner = MicroBatcher(pipeline.summarize_batch, config.max_batch_size, config.max_wait_ms / 1e3,
                              config.max_queue, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.loop = asyncio.get_running_loop()
        await runner.start()
        yield
        await runner.stop()

    app = FastAPI(title="qfsum", version=__version__, lifespan=lifespan,
                  description="Query-focused summarization of long documents, with the evidence used.")
    app.state.runner, app.state.metrics, app.state.config = runner, metrics, config
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes, budget_bytes=config.max_inflight_bytes)
    app.add_middleware(SecurityHeaders)
    if config.allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed=config.allowed_hosts)
    app.add_middleware(RecordMetrics, metrics=metrics)  # outermost: counts 413s, 421s and 503s too
    _add_error_handlers(app)

    bearer = HTTPBearer(auto_error=False)

    def authorize(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if config.api_key is None:
            return
        given = credentials.credentials if credentials else ""
        if not secrets.compare_digest(given.encode(), config.api_key.encode()):
            raise _Unauthorized

    guards = [Depends(authorize), Depends(_json_content)]
    errors = {401: {"model": ErrorBody, "description": "missing or wrong API key"},
              413: {"model": ErrorBody, "description": "request body or document too large"},
              415: {"model": ErrorBody, "description": "the body is not JSON"},
              422: {"model": ErrorBody, "description": "malformed request or unreadable document"},
              503: {"model": ErrorBody, "description": "shutting down, or too many bodies in flight"}}

    @app.post("/v1/summarize", response_model=SummarizeResponse, dependencies=guards,
              responses={**errors, 429: {"model": ErrorBody, "description": "busy; see Retry-After"},
                         500: {"model": ErrorBody, "description": "the pipeline failed on this request"},
                         504: {"model": ErrorBody, "description": "not answered within the deadline"}})
    async def summarize(body: SummarizeRequest, request: Request) -> SummarizeResponse:
        """Answer each query about the document, with evidence (character offsets) and timings."""
        document = await run_in_threadpool(body.to_document)  # large documents: keep the loop free
        _check_size(document, config)
        timeout = min(body.options.timeout_s or config.deadline_s, config.deadline_s)
        results = await _unless_disconnected(request, runner.submit([(document, q) for q in body.queries], timeout,
                                                                    body.options.words))
        metrics.queries.inc(len(results))
        return SummarizeResponse(id=document.id, answers=[_answer(r) for r in results],
                                 document=document.text if body.options.include_document else None)

    @app.post("/v1/summarize/stream", dependencies=guards, response_class=StreamingResponse,
              responses={**errors, 200: {"content": {NDJSON: {}}, "description": _STREAM_LINES},
                         429: {"model": ErrorBody, "description": "busy; see Retry-After"}})
    async def stream(body: StreamRequest) -> StreamingResponse:
        """Answer each question about the document (sent once), one JSON line per answer as soon as it is
        done, preceded by `token` lines of its text while a model writes it (`options.tokens`). Request errors
        (document, size, admission) are a status before the stream; a question that fails is an error line of
        its own. A client that hangs up stops the questions not yet started."""
        document = await run_in_threadpool(body.to_document)
        _check_size(document, config)
        problems = {i: f"the question {p}" for i, q in enumerate(body.queries) if (p := query_problem(q))}
        asked = [i for i in range(len(body.queries)) if i not in problems]
        timeout = min(body.options.timeout_s or config.deadline_s, config.deadline_s)
        deadline = asyncio.get_running_loop().time() + timeout
        tokens: asyncio.Queue = asyncio.Queue()  # (k, text) from the model thread, via the loop

        def on_text(k: int, text: str) -> None:
            tokens.put_nowait((k, text))

        live = on_text if body.options.tokens and _generative(pipeline) else None
        # admission is decided here, before the stream starts, so a refusal is a plain 429 / 413 / 503
        futures = (runner.enqueue([(document, body.queries[i]) for i in asked], timeout, body.options.words, live)
                   if asked else [])

        async def lines() -> AsyncIterator[str]:
            answered = failed = 0
            if body.options.include_document:
                yield _line(StreamDocument(id=document.id, text=document.text))
            for i, problem in problems.items():
                failed += 1
                yield _line(StreamError(index=i, query=body.queries[i], status=422, detail=problem))
            async with aclosing(as_settled(futures, deadline, tokens)) as settled:
                async for k, outcome in settled:
                    i = asked[k]
                    if isinstance(outcome, Token):
                        yield _line(StreamToken(index=i, text=outcome.text))
                    elif isinstance(outcome, Result):
                        answered += 1
                        metrics.queries.inc()
                        yield _line(StreamAnswer(**_answer(outcome).model_dump(), index=i))
                    else:
                        failed += 1
                        status, detail = _question_error(outcome)
                        yield _line(StreamError(index=i, query=body.queries[i], status=status, detail=detail))
            yield _line(StreamDone(id=document.id, answered=answered, failed=failed))

        def drop_queued() -> None:  # the client left (even before the first line) or the stream broke
            for future in futures:
                future.cancel()

        return _LineStream(lines(), drop_queued, media_type=NDJSON,
                           headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.post("/v1/document", response_model=DocumentResponse, dependencies=guards, responses=errors)
    async def read(body: DocumentIn) -> DocumentResponse:
        """How the server reads a document: its text (which evidence offsets index), units and queries."""
        document = await run_in_threadpool(body.to_document)
        units = [SegmentOut(index=u.index, start=u.start, end=u.end, speaker=u.speaker) for u in document.units]
        return DocumentResponse(id=document.id, text=document.text, segments=units, queries=body.carried_queries())

    @app.head("/healthz", include_in_schema=False)
    @app.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        """Liveness: the process answers, the pipeline is loaded (use /readyz to route traffic)."""
        return Health(pipeline=pipeline.config.name, mode=config.mode, auth=config.api_key is not None)

    @app.get("/info", response_model=Info)
    async def info() -> Info:
        """The pipeline, whether its answers are generated, and the limits of one request (no key needed:
        the page shows them before the document is uploaded)."""
        limits = Limits(max_body_bytes=config.max_body_bytes, max_document_chars=config.max_document_chars,
                        max_segments=config.max_segments, max_queries=MAX_QUERIES, max_query_chars=MAX_QUERY_CHARS,
                        deadline_s=config.deadline_s)
        return Info(pipeline=pipeline.config.name, writer=pipeline.config.writer.kind, generative=_generative(pipeline),
                    auth=config.api_key is not None, limits=limits)

    @app.head("/readyz", include_in_schema=False)
    @app.get("/readyz", response_model=Ready,
             responses={503: {"model": Ready, "description": "saturated, stuck or shutting down"}})
    async def readyz() -> JSONResponse:
        """Readiness: 503 while the queue is full, the model thread is stuck past the deadline, or the
        server shuts down."""
        reason = _unready(runner, config)
        ready = Ready(ready=reason is None, detail=reason or "ready", queue_depth=runner.queue_depth,
                      running_s=round(runner.running_seconds(), 3))
        return JSONResponse(ready.model_dump(), status_code=503 if reason else 200)

    @app.get("/metrics", dependencies=[Depends(authorize)], response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
    async def prometheus() -> Response:
        """Prometheus metrics: requests, latency, batch sizes, queue depth."""
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.head("/", include_in_schema=False)
    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"))

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(str(STATIC / "favicon.svg"), media_type="image/svg+xml")

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


def begin_shutdown(app: FastAPI) -> None:
    """Start draining (thread-safe; from a signal handler too): queued requests get 503 at once, the
    running batch gets the configured grace period."""
    loop: asyncio.AbstractEventLoop | None = getattr(app.state, "loop", None)
    if loop is None or getattr(app.state, "draining", None) is not None:
        return

    def drain() -> None:
        app.state.draining = asyncio.ensure_future(app.state.runner.drain(app.state.config.grace_s))

    app.state.draining = True  # set at once: a second signal must not start a second drain
    loop.call_soon_threadsafe(drain)


def _add_error_handlers(app: FastAPI) -> None:
    """Every error is a JSON body with a one-line `detail`."""

    def detail(status: int, headers: dict[str, str] | None = None):
        async def handler(request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)
        return handler

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(list(exc.errors()))}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and request.method == "POST":  # FastAPI could not parse the JSON body
            reason = "nested too deeply" if isinstance(exc.__cause__, RecursionError) else "not UTF-8 JSON"
            return JSONResponse({"detail": f"the body is not valid JSON ({reason})"}, status_code=422)
        return await http_exception_handler(request, exc)

    @app.exception_handler(QueueFull)
    async def busy(request: Request, exc: QueueFull) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=429, headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(_Unauthorized)
    async def unauthorized(request: Request, exc: _Unauthorized) -> JSONResponse:
        return JSONResponse({"detail": "missing or wrong API key (send 'Authorization: Bearer <key>')"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(PipelineFailed)
    async def failed(request: Request, exc: PipelineFailed) -> JSONResponse:
        return JSONResponse({"detail": "the pipeline failed on this request (the server logged why)"},
                            status_code=500)

    app.add_exception_handler(QfsumError, detail(422))
    app.add_exception_handler(TooMuchWork, detail(413))
    app.add_exception_handler(_UnsupportedMediaType, detail(415))
    app.add_exception_handler(DeadlineExceeded, detail(504))
    app.add_exception_handler(ShuttingDown, detail(503, {"Retry-After": "1", "Connection": "close"}))
    app.add_exception_handler(_ClientGone, detail(499))  # nginx's "client closed request": only metrics see it


class _Unauthorized(Exception):
    pass


class _UnsupportedMediaType(Exception):
    pass


class _ClientGone(Exception):
    pass


def _json_content(request: Request) -> None:
    """415 for a body that is not declared as JSON (FastAPI does not parse one without Content-Type)."""
    given = request.headers.get("content-type", "")
    kind = given.split(";")[0].strip().lower()
    if kind != "application/json" and not (kind.startswith("application/") and kind.endswith("+json")):
        shown = f"Content-Type is {given.split(';')[0]!r}" if given.isprintable() and given else "no Content-Type"
        raise _UnsupportedMediaType(f"{shown}; send the body as application/json")


def _generative(pipeline: Pipeline) -> bool:
    """Whether a model writes the pipeline's answers (only such writers have text to stream)."""
    return pipeline.config.writer.kind != "extractive"


def _check_size(document: Document, config: ServerConfig) -> None:
    """Bound the work of one request: refuse documents over the configured size (413)."""
    if len(document.text) > config.max_document_chars:
        raise TooMuchWork(f"the document is {len(document.text):,} characters, over the server's limit of "
                          f"{config.max_document_chars:,} (--max-document-chars)")
    if len(document.units) > config.max_segments:
        raise TooMuchWork(f"the document has {len(document.units):,} segments, over the server's limit of "
                          f"{config.max_segments:,} (--max-segments)")


def _unready(runner: MicroBatcher | NaiveRunner, config: ServerConfig) -> str | None:
    """Why the server should get no traffic now, or None."""
    if runner.closing:
        return "shutting down"
    if runner.queue_depth >= config.max_queue:
        return f"the queue is full ({runner.queue_depth} queries)"
    if (busy := runner.running_seconds()) > config.deadline_s:
        return f"the model thread has run one batch for {busy:.0f} s, past the {config.deadline_s:g} s deadline"
    return None


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelled if the client disconnects first: its queued queries are then dropped."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnect(request.receive))
    try:
        done, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        task.cancel()  # no-op when done; cancels the work when the client left or we are cancelled
    if task not in done:
        raise _ClientGone("the client disconnected")
    return task.result()


async def _disconnect(receive: Receive) -> None:
    """Return once the client disconnects (the body was read: the next message says so)."""
    while (await receive())["type"] != "http.disconnect":
        pass


_STREAM_LINES = ("one JSON object per line (NDJSON): a `document` line first if `options.include_document`, then "
                 "per question, in the order they finish, `token` lines (`index`, `text`: its text as a model writes "
                 "it, generative pipelines, unless `options.tokens` is false) and an `answer` line (the fields of a "
                 "/v1/summarize answer plus `index`) or an `error` line (`index`, `query`, `status`, `detail`), and "
                 "a last `done` line (`answered`, `failed`); a stream without `done` was cut off")


class _LineStream(StreamingResponse):
    """A streamed response that stops as soon as the client hangs up, on any ASGI server (Starlette
    watches for the disconnect only under ASGI spec < 2.4, and otherwise notices it at the next write,
    which may be minutes away while a batch runs). However it ends, `on_close` is called and the line
    generator closed."""

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        writer = asyncio.ensure_future(self.stream_response(send))
        gone = asyncio.ensure_future(self.listen_for_disconnect(receive))
        try:
            await asyncio.wait({writer, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            writer.cancel()  # no-op when done; stops the stream when the client left or we are cancelled
            try:
                await writer
            except (asyncio.CancelledError, OSError):
                pass
            finally:
                self.on_close()
                closing = getattr(self.body_iterator, "aclose", None)
                if closing is not None:
                    await closing()


def _line(model: StreamDocument | StreamToken | StreamAnswer | StreamError | StreamDone) -> str:
    """One NDJSON line, `type` and `index` first (easier to read in a terminal)."""
    data = model.model_dump(mode="json")
    head = {key: data.pop(key) for key in ("type", "index") if key in data}
    return json.dumps({**head, **data}, ensure_ascii=False) + "\n"


def _question_error(err: BaseException) -> tuple[int, str]:
    """The status and one-line reason of a question that failed alone."""
    if isinstance(err, QfsumError):
        status = 422
    elif isinstance(err, DeadlineExceeded):
        status = 504
    elif isinstance(err, ShuttingDown):
        status = 503
    else:
        if not isinstance(err, PipelineFailed):
            log.error("a streamed question failed", exc_info=err)
        return 500, "the pipeline failed on this question (the server logged why)"
    return status, " ".join(str(err).split())


def _answer(result: Result) -> Answer:
    data = result.summary.to_dict()
    data["timings"]["queue_ms"] = round(result.queue_ms, 2)
    return Answer(**data, batch_size=result.batch_size)
