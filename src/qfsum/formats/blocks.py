"""Extracted blocks of text -> a Document whose units are the blocks, with exact offsets."""

from __future__ import annotations

import re

from ..document import Document, Segment
from ..errors import QfsumError

BLOCK_SEPARATOR = "\n\n"  # between blocks and between pages: a .txt-like text, paragraphs on blank lines
_SPACES = re.compile(r"[ \t\u00a0]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # extraction debris (unmapped glyphs); keeps \t and \n
_BLANK_LINES = re.compile(r"\n\s*\n")


def clean_block(text: str) -> str:
    """One block as plain text: control characters dropped, runs of spaces made one, no blank
    lines inside (a blank line is what separates blocks), no surrogates."""
    text = _CONTROL.sub("", text).encode("utf-8", "replace").decode("utf-8")  # lone surrogates -> "?"
    lines = [_SPACES.sub(" ", line).strip() for line in _BLANK_LINES.sub("\n", text).split("\n")]
    return "\n".join(line for line in lines if line)


def document_from_pages(pages: list[list[str]], id: str, source: str, paged: bool) -> Document:
    """Join the blocks of each page into one text; each non-empty block becomes a unit.

    With `paged`, the document records where each page starts, so segments know their page (an
    empty page starts where the next one does). Raises QfsumError when no block holds any text.
    """
    parts: list[str] = []
    units: list[Segment] = []
    page_starts: list[int] = []
    offset = 0
    for blocks in pages:
        page_starts.append(offset + len(BLOCK_SEPARATOR) if parts else 0)
        for block in blocks:
            block = clean_block(block)
            if not block:
                continue
            if parts:
                offset += len(BLOCK_SEPARATOR)
            units.append(Segment(len(units), block, offset, offset + len(block)))
            parts.append(block)
            offset += len(block)
    if not units:
        raise QfsumError(f"{source}: no text found in the document")
    text = BLOCK_SEPARATOR.join(parts)
    if not paged:
        return Document(text, units, id)
    starts = tuple(min(s, len(text)) for s in page_starts)
    return Document(text, [_with_pages(u, starts) for u in units], id, page_starts=starts)


def _with_pages(unit: Segment, starts: tuple[int, ...]) -> Segment:
    return Segment(unit.index, unit.text, unit.start, unit.end, unit.speaker, starts)
