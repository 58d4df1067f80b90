"""Request and response bodies of the HTTP API (pydantic models; they define the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ..document import Document
from ..errors import QfsumError
from ..readers import document_from_text, jsonl_document, parse_json, qmsum_document, qmsum_examples
from ..text import require_unicode

MAX_QUERIES = 16  # per request: more queries belong in a batch job
MAX_QUERY_CHARS = 2000
MIN_WORDS, MAX_WORDS = 10, 400  # options.words: shorter says nothing, longer is past what the writers read and write well

DocumentFormat = Literal["text", "markdown", "jsonl", "qmsum"]


def _unicode(text: str) -> str:
    """Reject lone UTF-16 surrogates (JSON's "\\udc00") at the edge: 422, before any model sees them."""
    try:
        return require_unicode(text, "text")
    except QfsumError:
        raise ValueError("holds a lone UTF-16 surrogate, not valid text") from None


Text = Annotated[str, AfterValidator(_unicode)]


class SegmentIn(BaseModel):
    """One natural unit of a document (a speaker turn, a paragraph)."""

    model_config = ConfigDict(extra="forbid")
    text: Text = Field(min_length=1, description="the unit's text")
    speaker: Text | None = Field(default=None, description="who said it, shown as 'Speaker: text'")


class DocumentIn(BaseModel):
    """A document, given as text (in one of the reader formats) or as a list of segments."""

    model_config = ConfigDict(extra="forbid")
    document: Text | None = Field(
        default=None, min_length=1,
        description="the document: plain text or Markdown, one JSONL record, or a QMSum meeting as JSON (see `format`)",
    )
    segments: list[Text | SegmentIn] | None = Field(
        default=None, min_length=1, description="the document as its units, instead of `document`"
    )
    format: DocumentFormat = Field(default="text", description="how to read `document`")
    id: Text = Field(default="document", max_length=200, description="a name for the document, echoed back")

    @model_validator(mode="after")
    def _one_source(self) -> "DocumentIn":
        if (self.document is None) == (self.segments is None):
            raise ValueError("give exactly one of 'document' (a string) or 'segments' (a list)")
        if self.segments is not None and self.format != "text":
            raise ValueError("'format' applies to 'document' only; leave it out with 'segments'")
        return self

    def to_document(self) -> Document:
        """Read the document with the same readers the CLI uses (raises QfsumError on bad content)."""
        if self.segments is not None:
            units = [s if isinstance(s, str) else s.model_dump() for s in self.segments]
            return jsonl_document({"id": self.id, "segments": units}, self.id)
        assert self.document is not None  # the validator guarantees one source
        if self.format in ("text", "markdown"):
            return document_from_text(self.document, self.id)
        record = _json_object(self.document, self.format)
        if self.format == "qmsum":
            return qmsum_document(record, self.id)
        return jsonl_document({**record, "id": self.id}, self.id)

    def carried_queries(self) -> list[str]:
        """Questions the input itself carries: a QMSum meeting's queries, a JSONL record's query."""
        if self.document is None or self.format not in ("jsonl", "qmsum"):
            return []
        record = _json_object(self.document, self.format)
        if self.format == "qmsum":
            return [e.query for e in qmsum_examples(record, self.id)]
        query = record.get("query")
        return [query.strip()] if isinstance(query, str) and query.strip() else []


def _json_object(text: str, format: str) -> dict:
    # a JSONL upload: its first non-empty line is the record
    if format == "jsonl":
        text = next((line for line in text.split("\n") if line.strip()), "")
    value = parse_json(text, "document")
    if not isinstance(value, dict):
        raise QfsumError(f"document: a {format} document must be a JSON object")
    return value


class Options(BaseModel):
    """Per-request options."""

    model_config = ConfigDict(extra="forbid")
    timeout_s: float | None = Field(
        default=None, gt=0, description="answer 504 if not done within this many seconds (capped by the server's deadline)"
    )
    include_document: bool = Field(default=False, description="echo the document text the evidence offsets refer to")
    words: int | None = Field(
        default=None, ge=MIN_WORDS, le=MAX_WORDS,
        description="the answers' length in words (the extractive writer's budget; a model writer stops at a whole "
                    "sentence near it); default: the pipeline's",
    )


class StreamOptions(Options):
    """Per-request options of the stream."""

    tokens: bool = Field(default=True, description="send `token` lines with each answer's text as a model writes it "
                                                   "(generative pipelines; extractive ones have none)")


def query_problem(query: str) -> str | None:
    """Why a question cannot be asked ("is empty", "is 2,400 characters, over ..."), or None."""
    if not query.strip():
        return "is empty"
    if len(query) > MAX_QUERY_CHARS:
        return f"is {len(query)} characters, over the {MAX_QUERY_CHARS} limit"
    return None


class SummarizeRequest(DocumentIn):
    """`POST /v1/summarize`: a document and one or more questions about it."""

    queries: list[Text] = Field(min_length=1, max_length=MAX_QUERIES, description="the questions")
    options: Options = Field(default_factory=Options)

    @model_validator(mode="after")
    def _queries_not_blank(self) -> "SummarizeRequest":
        for i, query in enumerate(self.queries):
            if problem := query_problem(query):
                raise ValueError(f"queries[{i}] {problem}")
        return self


class StreamRequest(DocumentIn):
    """`POST /v1/summarize/stream`: a document (sent once) and up to MAX_QUERIES questions about it.

    A blank or too long question is not an error of the request: it gets an error line of its own.
    """

    queries: list[Text] = Field(min_length=1, max_length=MAX_QUERIES, description="the questions")
    options: StreamOptions = Field(default_factory=StreamOptions)


class EvidenceOut(BaseModel):
    """A segment the answer was written from; `document[start:end]` is its span."""

    segment: int = Field(description="index of the segment in the document")
    score: float = Field(description="relevance score (scorer-specific scale; higher is more relevant)")
    start: int = Field(description="character offset of the span in the document text (inclusive)")
    end: int = Field(description="character offset (exclusive)")
    text: str


class Span(BaseModel):
    """A character range of the document: `document[start:end]`."""

    start: int
    end: int


class SentenceOut(BaseModel):
    """One sentence of the answer, with the evidence that supports it; `summary[start:end]` is its text."""

    text: str
    start: int = Field(description="character offset in the summary (inclusive)")
    end: int = Field(description="character offset in the summary (exclusive)")
    citations: list[int] = Field(description="indices into `evidence` of the supporting segments, best first")
    support: float = Field(description="0..1: how much of the sentence its best cited segment covers (numbers must match)")
    supported: bool = Field(description="support reaches the threshold; unsupported sentences deserve a reader's doubt")
    quote: Span | None = Field(default=None, description="document offsets of the sentence of the first cited segment "
                                                         "that supports this one best: what to check first")


class Answer(BaseModel):
    """The answer to one query."""

    query: str
    summary: str
    sentences: list[SentenceOut] = Field(default_factory=list,
                                         description="the summary's sentences with citations (empty with grounding off)")
    note: str | None = Field(default=None, description="what strict grounding changed, or that the document does "
                                                       "not seem to answer the question")
    relevance: float | None = Field(default=None, description="the question's best cosine similarity with a passage "
                                                              "(pipelines with a dense scorer); low means off-topic")
    evidence: list[EvidenceOut] = Field(description="in document order")
    timings: dict[str, float] = Field(description="milliseconds per stage, plus queue_ms (waiting for a batch)")
    batch_size: int = Field(description="how many queries shared the model call that answered this one")


class SummarizeResponse(BaseModel):
    id: str
    answers: list[Answer]
    document: str | None = Field(default=None, description="the document text (options.include_document)")


class SegmentOut(BaseModel):
    index: int
    start: int
    end: int
    speaker: str | None = None


class DocumentResponse(BaseModel):
    """`POST /v1/document`: how the server reads a document (text, units, carried queries)."""

    id: str
    text: str
    segments: list[SegmentOut]
    queries: list[str]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    pipeline: str
    mode: Literal["batched", "naive"]
    auth: bool = Field(description="whether /v1 needs a bearer token")


class Ready(BaseModel):
    """`GET /readyz`: whether to send this server traffic now (200), or why not (503)."""

    ready: bool
    detail: str = Field(description="'ready', or why not: shutting down, queue full, model thread stuck")
    queue_depth: int = Field(description="queries waiting for a batch")
    running_s: float = Field(description="how long the batch on the model thread has run so far")


class ErrorBody(BaseModel):
    detail: str = Field(description="one line saying what is wrong")


class StreamDocument(BaseModel):
    """First line of a stream with `options.include_document`: the text evidence offsets index."""

    type: Literal["document"] = "document"
    id: str
    text: str


class StreamAnswer(Answer):
    """A line of the stream: the answer to `queries[index]`, with the fields of a `/v1/summarize` answer."""

    type: Literal["answer"] = "answer"
    index: int = Field(description="position of the question in the request's `queries`")


class StreamToken(BaseModel):
    """A line of the stream: text a model writer has just written for `queries[index]`. The texts of a
    question's token lines add up to its raw draft; its `answer` line, which follows, is the finished
    answer (cut to whole sentences, cited; in strict mode only its supported sentences), so it may differ."""

    type: Literal["token"] = "token"
    index: int = Field(description="position of the question in the request's `queries`")
    text: str = Field(description="the new text, to append to the question's text so far")


class StreamError(BaseModel):
    """A line of the stream: `queries[index]` was not answered, and why (the status it would have had alone)."""

    type: Literal["error"] = "error"
    index: int = Field(description="position of the question in the request's `queries`")
    query: str
    status: int = Field(description="422 bad question, 500 pipeline failure, 503 shutting down, 504 past the deadline")
    detail: str = Field(description="one line saying what is wrong")


class StreamDone(BaseModel):
    """Last line of a complete stream (a stream without it was cut off)."""

    type: Literal["done"] = "done"
    id: str
    answered: int
    failed: int


class Limits(BaseModel):
    """What one request may hold; larger requests are refused (413, 422)."""

    max_body_bytes: int = Field(description="largest request body (the JSON, document included)")
    max_document_chars: int = Field(description="largest document, in characters of the text as read")
    max_segments: int = Field(description="most units (paragraphs, turns, segments) in one document")
    max_queries: int = Field(description="most questions in one request")
    max_query_chars: int = Field(description="longest question")
    deadline_s: float = Field(description="a request not answered by then gets 504 (or error lines, streaming)")
    min_words: int = Field(default=MIN_WORDS, description="shortest answer length `options.words` may ask for")
    max_words: int = Field(default=MAX_WORDS, description="longest answer length `options.words` may ask for")


class Info(BaseModel):
    """`GET /info`: what the server runs and the limits of one request (for clients to check before sending)."""

    pipeline: str
    writer: str = Field(description="the writer kind: 'extractive' quotes the document, others generate text")
    generative: bool = Field(description="whether answers are written by a model (check them against their evidence)")
    auth: bool = Field(description="whether /v1 needs a bearer token")
    limits: Limits
