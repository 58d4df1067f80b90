"""Text utilities: a rule-based sentence splitter with offsets, and word tokens.

NLTK's punkt needs a data download that fails offline, so sentences are split by rules that ship
with the code: a terminal mark, closing quotes/brackets, whitespace, then an upper-case letter,
digit or opening quote, unless the word before the mark is a known abbreviation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .errors import QfsumError

_ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof sr jr st vs etc e.g i.e cf al ed eds inc ltd co
    corp dept univ approx est jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k a.m p.m""".split()
)
# Abbreviations only when a number follows ("No. 5", "Fig. 2"): "No. That is wrong." ends a sentence.
_BEFORE_NUMBER = frozenset("no nos fig figs vol pp".split())
_BOUNDARY = re.compile(r"""[.!?…]+["')\]’”]*\s+(?=["'(\[‘“]?[A-Z0-9])""")
# Any case: lowercased or tokenized text ("we agreed . then ...") has no capital to split before.
_BOUNDARY_ANY_CASE = re.compile(r"""[.!?…]+["')\]’”]*\s+(?=\S)""")
_WORD = re.compile(r"\S+")


def sentence_spans(text: str, any_case: bool = False) -> Iterator[tuple[int, int]]:
    """Yield (start, end) character spans of the sentences of `text`, whitespace trimmed.

    By default a sentence must start with a capital, a digit or an opening quote, which keeps
    "e.g. apples" and "approx. three" whole in ordinary prose. `any_case=True` drops that condition,
    for lowercased or tokenized text (system outputs scored by ROUGE); abbreviations still hold.
    """
    start = 0
    for match in (_BOUNDARY_ANY_CASE if any_case else _BOUNDARY).finditer(text):
        words = text[start : match.start() + 1].split()
        last = words[-1].rstrip(".!?…").lower() if words else ""
        before_number = last in _BEFORE_NUMBER and text[match.end() : match.end() + 1].isdigit()
        if last in _ABBREVIATIONS or before_number or (len(last) == 1 and last.isalpha()):
            continue  # "Dr. Smith", "J. Doe": not a boundary
        end = match.start() + len(match.group(0).rstrip())
        yield from _trimmed(text, start, end)
        start = match.end()
    yield from _trimmed(text, start, len(text))


def _trimmed(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    piece = text[start:end]
    stripped = piece.strip()
    if stripped:
        lead = len(piece) - len(piece.lstrip())
        yield start + lead, start + lead + len(stripped)


def split_sentences(text: str, any_case: bool = False) -> list[str]:
    """Split `text` into sentences (see `sentence_spans`)."""
    return [text[a:b] for a, b in sentence_spans(text, any_case)]


def complete_sentences(text: str) -> str:
    """`text` without a last sentence cut short (no closing punctuation): an answer stopped by its length
    limit ends where its last whole sentence does, or, with none, where its last whole clause does (a
    comma, semicolon, colon or line break), so it never ends inside a number ("... the cost is 1")."""
    if re.search(r"""[.!?…]["')\]’”]*\s*$""", text):
        return text
    spans = list(sentence_spans(text, any_case=True))
    if len(spans) > 1:
        return text[: spans[-2][1]]
    clause = max(text.rfind(mark) for mark in (",", ";", ":", "\n"))
    kept = text[:clause].rstrip(" ,;:\n") if clause > 0 else ""
    return kept or text


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of whitespace-separated words."""
    return [m.span() for m in _WORD.finditer(text)]


def count_words(text: str) -> int:
    """Number of whitespace-separated words."""
    return len(text.split())


def require_unicode(text: str, what: str) -> str:
    """`text` unchanged, or a QfsumError if it holds a lone UTF-16 surrogate (not Unicode text).

    JSON's `\\udc00` escapes and Python's `surrogateescape` can put such code points in a `str`; tokenizers,
    hashes and UTF-8 output then fail deep inside with a TypeError or UnicodeEncodeError.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise QfsumError(f"{what}: holds a lone UTF-16 surrogate (U+{ord(text[err.start]):04X}), not valid text") from None
    return text
