"""Segmenters: split a document into the pieces that scorers rank and writers read.

Every segment keeps its character offsets, and `document.text[seg.start:seg.end] == seg.text`
always holds, so evidence can be shown in the source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from .document import Document, Segment
from .errors import QfsumError
from .readers import paragraph_units
from .text import sentence_spans, word_spans

SEGMENTER_KINDS = ("turn", "sentence", "window")


@dataclass
class SegmenterConfig:
    """How to split a document."""

    kind: str = "turn"  # turn (speaker turns / paragraphs), sentence, or window
    size: int = 256  # window: tokens per window
    stride: int | None = None  # window: tokens between window starts; None = size // 2 (50 % overlap)
    tokenizer: str | None = None  # window: a Hugging Face tokenizer id/dir to count tokens; None = words

    def __post_init__(self) -> None:
        if self.kind not in SEGMENTER_KINDS:
            raise QfsumError(f"unknown segmenter '{self.kind}' (choose from {', '.join(SEGMENTER_KINDS)})")
        if self.size < 1 or (self.stride is not None and not 1 <= self.stride <= self.size):
            raise QfsumError(f"window size must be >= 1 and stride in [1, size], got {self.size}/{self.stride}")


def has_content(unit: Segment) -> bool:
    """False for units that are only a speaker label (QMSum turns that held nothing but markup)."""
    body = unit.text[len(unit.speaker) :] if unit.speaker and unit.text.startswith(unit.speaker) else unit.text
    return bool(body.strip().lstrip(":").strip())


def turn_segments(document: Document) -> list[Segment]:
    """The document's natural units (speaker turns, paragraphs), skipping empty ones."""
    units = document.units or paragraph_units(document.text)
    return _renumber([u for u in units if has_content(u)])


def sentence_segments(document: Document) -> list[Segment]:
    """Sentences, never crossing a unit boundary; each keeps its unit's speaker."""
    segments = []
    for unit in turn_segments(document):
        for a, b in sentence_spans(document.text[unit.start : unit.end]):
            start, end = unit.start + a, unit.start + b
            segments.append(Segment(0, document.text[start:end], start, end, unit.speaker))
    return _renumber(segments)


def window_segments(
    document: Document, size: int, stride: int, token_spans: Callable[[str], list[tuple[int, int]]] = word_spans
) -> list[Segment]:
    """Windows of `size` tokens every `stride` tokens; the last window ends at the last token."""
    spans = token_spans(document.text)
    segments = []
    for first in range(0, max(len(spans), 1), stride):
        last = min(first + size, len(spans)) - 1
        if last < first:
            break
        start, end = spans[first][0], spans[last][1]
        segments.append(Segment(len(segments), document.text[start:end], start, end))
        if last == len(spans) - 1:
            break
    return segments


def _renumber(segments: list[Segment]) -> list[Segment]:
    return [Segment(i, s.text, s.start, s.end, s.speaker) for i, s in enumerate(segments)]


class Segmenter:
    """Splits documents as its config says (see `SegmenterConfig`)."""

    def __init__(self, config: SegmenterConfig | None = None) -> None:
        self.config = config or SegmenterConfig()
        self._token_spans: Callable[[str], list[tuple[int, int]]] = word_spans
        if self.config.kind == "window" and self.config.tokenizer:
            from .assets import load_tokenizer

            tokenizer = load_tokenizer(self.config.tokenizer)

            def hf_spans(text: str) -> list[tuple[int, int]]:
                # verbose=False: the whole document is tokenized only to count tokens, never fed to the
                # model, so transformers' "longer than the maximum sequence length" warning is noise.
                encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
                return [(a, b) for a, b in encoded["offset_mapping"] if b > a]

            self._token_spans = hf_spans

    def __call__(self, document: Document) -> list[Segment]:
        kind = self.config.kind
        if kind == "turn":
            segments = turn_segments(document)
        elif kind == "sentence":
            segments = sentence_segments(document)
        else:
            size = self.config.size
            segments = window_segments(document, size, self.config.stride or max(size // 2, 1), self._token_spans)
        if not segments:
            raise QfsumError(f"{document.id}: the document has no text to summarize")
        if document.page_starts:  # paged sources (PDF): every segment, of any kind, can tell its page
            segments = [replace(s, page_starts=document.page_starts) for s in segments]
        return segments
