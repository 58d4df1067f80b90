"""The HTTP service: FastAPI app factory around one loaded pipeline.

    from qfsum import Pipeline
    from qfsum.serving import ServerConfig, create_app
    app = create_app(Pipeline.load("extractive"), ServerConfig())   # then: uvicorn.run(app)
"""

from __future__ import annotations

import secrets
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..errors import QfsumError
from ..pipeline import Pipeline
from .batcher import DeadlineExceeded, MicroBatcher, NaiveRunner, QueueFull, Result
from .metrics import Metrics
from .middleware import BodyLimit, RecordMetrics
from .models import Answer, DocumentIn, DocumentResponse, ErrorBody, Health, SegmentOut, SummarizeRequest, SummarizeResponse

STATIC = resources.files("qfsum") / "serving" / "static"


@dataclass
class ServerConfig:
    """How the server batches, bounds and guards its work."""

    mode: Literal["batched", "naive"] = "batched"  # naive: one pipeline call per request (the baseline)
    max_batch_size: int = 16  # queries per pipeline call at most
    max_wait_ms: float = 10.0  # how long the first query of a batch waits for company
    max_queue: int = 256  # queries waiting at most; beyond it requests get 429
    deadline_s: float = 60.0  # requests not answered by then get 504 (clients may ask for less)
    max_body_bytes: int = 8 * 2**20  # larger request bodies get 413
    api_key: str | None = None  # if set, /v1 and /metrics need "Authorization: Bearer <key>"


def _one_line(errors: list[dict]) -> str:
    """Pydantic errors as one readable line: 'queries: Field required; document: ...'."""
    parts = []
    for error in errors:
        if error.get("type") == "json_invalid":  # loc is (body, character offset)
            reason = (error.get("ctx") or {}).get("error", "")
            return f"the body is not valid JSON ({reason} at character {error['loc'][-1]})"
        # keys come from the client and may hold newlines: show odd ones quoted and escaped
        where = ".".join(p if isinstance(p, str) and p.isprintable() and p.strip() else repr(p)
                         for p in error.get("loc", ()) if p != "body") or "body"
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
        await runner.start()
        yield
        await runner.stop()

    app = FastAPI(title="qfsum", version=__version__, lifespan=lifespan,
                  description="Query-focused summarization of long documents, with the evidence used.")
    app.state.runner, app.state.metrics, app.state.config = runner, metrics, config
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    app.add_middleware(RecordMetrics, metrics=metrics)  # outermost: counts 413s too

    bearer = HTTPBearer(auto_error=False)

    def authorize(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if config.api_key is None:
            return
        given = credentials.credentials if credentials else ""
        if not secrets.compare_digest(given.encode(), config.api_key.encode()):
            raise _Unauthorized

    errors = {401: {"model": ErrorBody, "description": "missing or wrong API key"},
              413: {"model": ErrorBody, "description": "request body too large"},
              422: {"model": ErrorBody, "description": "malformed request or unreadable document"}}

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(list(exc.errors()))}, status_code=422)

    @app.exception_handler(QfsumError)
    async def user_error(request: Request, exc: QfsumError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(QueueFull)
    async def busy(request: Request, exc: QueueFull) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=429, headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(DeadlineExceeded)
    async def late(request: Request, exc: DeadlineExceeded) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=504)

    @app.exception_handler(_Unauthorized)
    async def unauthorized(request: Request, exc: _Unauthorized) -> JSONResponse:
        return JSONResponse({"detail": "missing or wrong API key (send 'Authorization: Bearer <key>')"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.post("/v1/summarize", response_model=SummarizeResponse, dependencies=[Depends(authorize)],
              responses={**errors, 429: {"model": ErrorBody, "description": "queue full; see Retry-After"},
                         504: {"model": ErrorBody, "description": "not answered within the deadline"}})
    async def summarize(body: SummarizeRequest) -> SummarizeResponse:
        """Answer each query about the document, with evidence (character offsets) and timings."""
        document = await run_in_threadpool(body.to_document)  # large documents: keep the loop free
        timeout = min(body.options.timeout_s or config.deadline_s, config.deadline_s)
        results = await runner.submit([(document, q) for q in body.queries], timeout)
        metrics.queries.inc(len(results))
        return SummarizeResponse(id=document.id, answers=[_answer(r) for r in results],
                                 document=document.text if body.options.include_document else None)

    @app.post("/v1/document", response_model=DocumentResponse, dependencies=[Depends(authorize)],
              responses=errors)
    async def read(body: DocumentIn) -> DocumentResponse:
        """How the server reads a document: its text (which evidence offsets index), units and queries."""
        document = await run_in_threadpool(body.to_document)
        units = [SegmentOut(index=u.index, start=u.start, end=u.end, speaker=u.speaker) for u in document.units]
        return DocumentResponse(id=document.id, text=document.text, segments=units, queries=body.carried_queries())

    @app.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        """Liveness: the pipeline is loaded and the batcher runs."""
        return Health(pipeline=pipeline.config.name, mode=config.mode, auth=config.api_key is not None)

    @app.get("/metrics", dependencies=[Depends(authorize)], response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
    async def prometheus() -> Response:
        """Prometheus metrics: requests, latency, batch sizes, queue depth."""
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"))

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


class _Unauthorized(Exception):
    pass


def _answer(result: Result) -> Answer:
    data = result.summary.to_dict()
    data["timings"]["queue_ms"] = round(result.queue_ms, 2)
    return Answer(**data, batch_size=result.batch_size)
