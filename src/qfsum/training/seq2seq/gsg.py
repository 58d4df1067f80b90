"""Gap-sentence generation (GSG, from PEGASUS): pre-training pairs from any text corpus.

For a document of M sentences, the floor(alpha * M) sentences with the highest ROUGE-1 F1 against the
rest of the document (each scored on its own, PEGASUS's "Ind-Orig") become the target, in document
order; the remaining sentences are the input. Long documents are first cut into pieces of at most
`piece_words` words (whole sentences), each piece one example.

Sentences come from `qfsum.text.split_sentences`, line by line (a speaker turn never shares a sentence
with the next). ROUGE-1 uses rouge-score's own tokenizer and stemmer; the score of every sentence
against "the rest" is computed from unigram counts (rest = document - sentence), the same number
`rouge_score.RougeScorer(["rouge1"], use_stemmer=True)` gives, in one pass instead of M.

The examples are written as the project's JSONL (`id`, `query`, `document`, `summary`), so the seq2seq
trainer reads them like any other data; the query is the fixed `GSG_QUERY`.
"""

from __future__ import annotations

import functools
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ...document import Document
from ...errors import QfsumError
from ...text import split_sentences

GSG_QUERY = "Write the sentences missing from the document."


@dataclass(frozen=True)
class GapSentences:
    """One GSG example: the input text (gap sentences removed) and the target (the gap sentences)."""

    source: str
    target: str
    chosen: tuple[int, ...]  # indices of the target sentences in the piece


@functools.cache
def _tokenizer():
    from rouge_score import tokenizers

    return tokenizers.DefaultTokenizer(use_stemmer=True)


def rouge1_against_rest(sentences: Sequence[str]) -> list[float]:
    """ROUGE-1 F1 of each sentence (as prediction) against the other sentences joined (as reference)."""
    counts = [Counter(_tokenizer().tokenize(s)) for s in sentences]
    total = sum(counts, Counter())
    total_len = sum(total.values())
    scores = []
    for count in counts:
        length = sum(count.values())
        rest_len = total_len - length
        overlap = sum(min(n, total[token] - n) for token, n in count.items())
        if not overlap:
            scores.append(0.0)
            continue
        precision, recall = overlap / length, overlap / rest_len
        scores.append(2 * precision * recall / (precision + recall))
    return scores


def select_gap_sentences(sentences: Sequence[str], alpha: float = 0.2) -> GapSentences | None:
    """The floor(alpha * M) best sentences by ROUGE-1 against the rest as target; None if that is none.

    Ties go to the earlier sentence.
    """
    if not 0 < alpha < 1:
        raise QfsumError(f"the gap-sentence ratio must be in (0, 1), got {alpha}")
    count = math.floor(alpha * len(sentences))
    if count < 1 or count >= len(sentences):
        return None
    scores = rouge1_against_rest(sentences)
    chosen = sorted(sorted(range(len(sentences)), key=lambda i: (-scores[i], i))[:count])
    picked = set(chosen)
    source = " ".join(s for i, s in enumerate(sentences) if i not in picked)
    target = " ".join(sentences[i] for i in chosen)
    return GapSentences(source, target, tuple(chosen))


def document_sentences(text: str) -> list[str]:
    """Sentences of a text, line by line."""
    return [s for line in text.split("\n") for s in split_sentences(line)]


def pieces(sentences: Sequence[str], piece_words: int) -> Iterator[list[str]]:
    """Consecutive sentences in groups of at most `piece_words` words (a longer sentence stands alone)."""
    piece: list[str] = []
    words = 0
    for sentence in sentences:
        n = len(sentence.split())
        if piece and words + n > piece_words:
            yield piece
            piece, words = [], 0
        piece.append(sentence)
        words += n
    if piece:
        yield piece


def gsg_records(documents: Iterable[Document], alpha: float = 0.2, piece_words: int = 1024) -> Iterator[dict[str, str]]:
    """JSONL records (`id`, `query`, `document`, `summary`) of every piece of every document."""
    if piece_words < 1:
        raise QfsumError(f"piece words must be >= 1, got {piece_words}")
    for document in documents:
        for i, piece in enumerate(pieces(document_sentences(document_text(document)), piece_words)):
            example = select_gap_sentences(piece, alpha)
            if example is not None:
                yield {"id": f"{document.id}#{i}", "query": GSG_QUERY, "document": example.source, "summary": example.target}


def document_text(document: Document) -> str:
    """The text a document's GSG examples come from: its units one per line (QMSum: cleaned turns)."""
    if document.units:
        return "\n".join(u.text for u in document.units)
    return document.text


def read_corpus(path: str | Path, split: str | None = None) -> list[Document]:
    """Documents of a corpus: a folder of .txt files, a .txt file, a JSONL file (`document` or
    `segments` per line; no query needed), or QMSum (a root with `split`, a folder of meetings, a meeting)."""
    from ...readers import (
        _jsonl_records,
        document_from_text,
        jsonl_document,
        read_examples,
        read_text_file,
    )

    path = Path(path)
    if path.is_dir() and not any(p.is_dir() for p in path.iterdir()) and not any(path.glob("*.json")):
        files = sorted(path.glob("*.txt"))
        if not files:
            raise QfsumError(f"{path}: no .txt or QMSum .json files found")
        return [document_from_text(read_text_file(f), f.stem) for f in files]
    if path.suffix.lower() == ".txt":
        return [document_from_text(read_text_file(path), path.stem)]
    if path.suffix.lower() == ".jsonl":
        return [jsonl_document(r, f"{path}:{n}") for n, r in _jsonl_records(path)]
    documents: dict[int, Document] = {}
    for example in read_examples(path, split):  # QMSum: several queries share one document
        documents.setdefault(id(example.document), example.document)
    return list(documents.values())


def write_gsg(documents: Iterable[Document], out: str | Path, alpha: float = 0.2, piece_words: int = 1024) -> int:
    """Write the GSG records of `documents` to a JSONL file; returns how many."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with out.open("w", encoding="utf-8") as file:
        for record in gsg_records(documents, alpha, piece_words):
            file.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    if not n:
        raise QfsumError(f"no GSG examples: every piece has fewer than {math.ceil(1 / alpha)} sentences")
    return n
