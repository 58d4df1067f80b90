"""Relevance labels for training extractors: ROUGE between each segment and the reference summary.

The label of a (query, segment) pair is the mean F1 (0..1) of the chosen ROUGE variants (ROUGE-1/2/L
by default) between the segment's text and the query's reference summary (the best reference when
there are several, per variant), exactly as `qfsum.evaluation.rouge` would score the segment alone.

Calling rouge-score per pair would take hours on QMSum train (~600K turn pairs: a pure-Python LCS
table per pair), so this module does what no library does at this scale: every segment and
reference is tokenized and stemmed once, with rouge-score's own rules, n-gram overlaps of all
segments of a document are computed at once with numpy, and the LCS uses a bit-parallel algorithm
over Python integers. A test holds the results equal to rouge-score's.
"""

from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing
import os
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from rouge_score import tokenize as rouge_tokenize
from rouge_score.tokenizers import DefaultTokenizer
from tqdm.auto import tqdm

from ...assets import cache_dir
from ...document import Document, Example
from ...errors import QfsumError
from ...io import staged_file
from ...segment import Segmenter, SegmenterConfig

LABEL_METRICS = ("rouge1", "rouge2", "rougeL")
LABELS_VERSION = 1  # bump when the label definition changes: old cache files are then ignored


def check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    """Validate label metrics: rougeN (N >= 1) and rougeL; rougeLsum is not a per-segment measure."""
    metrics = tuple(metrics)
    if not metrics:
        raise QfsumError("give at least one label metric (rouge1, rouge2, rougeL, ...)")
    for metric in metrics:
        if metric != "rougeL" and not (metric.startswith("rouge") and metric[5:].isdigit() and int(metric[5:]) > 0):
            raise QfsumError(f"unknown label metric '{metric}' (use rougeN such as rouge1, rouge2, or rougeL)")
    return metrics


class RougeTokenizer:
    """rouge-score's default tokenizer with Porter stemming, memoized per word (stemming dominates)."""

    def __init__(self) -> None:
        self._stemmer = DefaultTokenizer(use_stemmer=True)._stemmer
        self._stem = functools.lru_cache(maxsize=1 << 20)(self._stemmer.stem)

    def tokenize(self, text: str) -> list[str]:
        """The same tokens as `rouge_score.tokenize.tokenize(text, PorterStemmer())`."""
        words = rouge_tokenize.SPACES_RE.split(rouge_tokenize.NON_ALPHANUM_RE.sub(" ", text.lower()))
        tokens = [self._stem(w) if len(w) > 3 else w for w in words]
        return [t for t in tokens if rouge_tokenize.VALID_TOKEN_RE.match(t)]


def match_masks(a: Sequence[int]) -> dict[int, int]:
    """For each symbol of `a`, the bit mask of its positions (bit i set when a[i] is the symbol)."""
    masks: dict[int, int] = {}
    for i, x in enumerate(a):
        masks[x] = masks.get(x, 0) | (1 << i)
    return masks


def lcs_length(a: Sequence[int], b: Sequence[int], masks: dict[int, int] | None = None) -> int:
    """Length of the longest common subsequence, bit-parallel (Hyyrö 2004): O(len(b)) big-int steps.

    V starts with len(a) ones; for each symbol y of b, U = V & match(y); V = (V + U) | (V - U).
    The LCS length is the number of zero bits of V. `masks` is `match_masks(a)`, when already made.
    """
    masks = match_masks(a) if masks is None else masks
    full = (1 << len(a)) - 1
    v = full
    for y in b:
        u = v & masks.get(y, 0)
        if u:
            v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def _f1(overlap: np.ndarray, predicted: np.ndarray, target: int) -> np.ndarray:
    """rouge-score's F1 from overlap counts, with its exact operations (and zero when p + r == 0)."""
    precision = overlap / np.maximum(predicted, 1)
    recall = overlap / max(target, 1)
    total = precision + recall
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = 2 * precision * recall / total
    return np.where(total > 0, f1, 0.0)


class DocumentLabeler:
    """Labels every segment of one document against any number of references.

    Segments are tokenized once; n-gram counts of all segments are kept as flat arrays so that the
    overlap with a reference is a few numpy operations per n.
    """

    def __init__(self, texts: Sequence[str], metrics: Sequence[str] = LABEL_METRICS, tokenizer: RougeTokenizer | None = None):
        self.metrics = check_metrics(metrics)
        self.tokenizer = tokenizer or RougeTokenizer()
        self._vocab: dict[str, int] = {}
        self.tokens = [self._ids(self.tokenizer.tokenize(t), grow=True) for t in texts]
        self.lengths = np.array([len(t) for t in self.tokens], dtype=np.int64)
        orders = sorted({int(m[5:]) for m in self.metrics if m != "rougeL"})
        self._grams = {n: self._gram_table(n) for n in orders}

    def _ids(self, tokens: list[str], grow: bool = False) -> list[int]:
        if grow:
            return [self._vocab.setdefault(t, len(self._vocab)) for t in tokens]
        return [self._vocab.get(t, -1) for t in tokens]  # -1: a word no segment has

    def _gram_table(self, n: int) -> tuple[dict[tuple[int, ...], int], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(n-gram vocabulary, flat unique-gram ids, their counts, their segment, n-grams per segment)."""
        vocab: dict[tuple[int, ...], int] = {}
        ids, counts, owners = [], [], []
        for s, tokens in enumerate(self.tokens):
            grams: dict[int, int] = {}
            for i in range(len(tokens) - n + 1):
                g = vocab.setdefault(tuple(tokens[i : i + n]), len(vocab))
                grams[g] = grams.get(g, 0) + 1
            ids.extend(grams)
            counts.extend(grams.values())
            owners.extend([s] * len(grams))
        totals = np.maximum(self.lengths - n + 1, 0)
        return vocab, np.array(ids, dtype=np.int64), np.array(counts, dtype=np.float64), np.array(owners, dtype=np.int64), totals

    def _ngram_f1(self, n: int, reference: list[int]) -> np.ndarray:
        vocab, ids, counts, owners, totals = self._grams[n]
        wanted = np.zeros(len(vocab), dtype=np.float64)
        n_ref = max(len(reference) - n + 1, 0)
        for i in range(n_ref):
            g = vocab.get(tuple(reference[i : i + n]))
            if g is not None:
                wanted[g] += 1
        overlap = np.bincount(owners, weights=np.minimum(counts, wanted[ids]), minlength=len(self.tokens))
        return _f1(overlap, totals, n_ref)

    def _lcs_f1(self, reference: list[int]) -> np.ndarray:
        scores = np.zeros(len(self.tokens), dtype=np.float64)
        if not reference:
            return scores
        masks = match_masks(reference)
        for s, tokens in enumerate(self.tokens):
            # Symbols absent from the reference never extend a common subsequence: drop them first.
            kept = [t for t in tokens if t in masks]
            if kept:
                lcs = lcs_length(reference, kept, masks)
                p, r = lcs / len(tokens), lcs / len(reference)
                scores[s] = 2 * p * r / (p + r) if p + r > 0 else 0.0
        return scores

    def scores(self, reference: str) -> dict[str, np.ndarray]:
        """F1 (0..1) of every segment against one reference, per metric."""
        tokens = self._ids(self.tokenizer.tokenize(reference))
        return {m: self._lcs_f1(tokens) if m == "rougeL" else self._ngram_f1(int(m[5:]), tokens) for m in self.metrics}

    def labels(self, references: Sequence[str]) -> np.ndarray:
        """Mean over metrics of the best F1 over references, shape (n_segments,), float64."""
        if not references:
            raise QfsumError("relevance labels need a reference summary")
        best = {m: np.zeros(len(self.tokens)) for m in self.metrics}
        for reference in references:
            for metric, values in self.scores(reference).items():
                best[metric] = np.maximum(best[metric], values)
        return np.mean([best[m] for m in self.metrics], axis=0)


def segment_labels(texts: Sequence[str], references: Sequence[str], metrics: Sequence[str] = LABEL_METRICS) -> np.ndarray:
    """Labels of segments given as texts against the references of one query (see module doc)."""
    return DocumentLabeler(texts, metrics).labels(references)


# -- a whole data set ------------------------------------------------------------------------------


def _label_document(task: tuple[Document, SegmenterConfig, list[tuple[str, list[str]]], tuple[str, ...]]):
    document, segmenter, queries, metrics = task
    labeler = DocumentLabeler([s.text for s in Segmenter(segmenter)(document)], metrics, _worker_tokenizer())
    return [(example_id, labeler.labels(references).astype(np.float32)) for example_id, references in queries]


@functools.cache
def _worker_tokenizer() -> RougeTokenizer:
    return RougeTokenizer()  # one stem cache per process, shared by all its documents


def _by_document(examples: Sequence[Example]) -> list[tuple[Document, list[tuple[str, list[str]]]]]:
    groups: dict[int, tuple[Document, list[tuple[str, list[str]]]]] = {}
    seen: set[str] = set()
    for example in examples:
        if example.id in seen:
            raise QfsumError(f"example id '{example.id}' appears twice; ids must be unique")
        if not example.references:
            raise QfsumError(f"example '{example.id}' has no reference summary to label segments with")
        seen.add(example.id)
        groups.setdefault(id(example.document), (example.document, []))[1].append((example.id, example.references))
    return list(groups.values())


def build_labels(
    examples: Sequence[Example],
    segmenter: SegmenterConfig,
    metrics: Sequence[str] = LABEL_METRICS,
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Labels of every example's segments (in `Segmenter(segmenter)` order), keyed by example id.

    Documents are spread over `workers` processes (default: all cores; 1 = in this process).
    """
    metrics = check_metrics(metrics)
    groups = _by_document(examples)
    tasks = [(document, segmenter, queries, metrics) for document, queries in groups]
    workers = min(workers or os.cpu_count() or 1, max(len(tasks), 1))
    labels: dict[str, np.ndarray] = {}
    with tqdm(total=len(examples), desc="labels", unit="query", disable=not progress) as bar:
        if workers <= 1:
            results: Iterable = map(_label_document, tasks)
            pool = None
        else:
            pool = multiprocessing.get_context("fork").Pool(workers)
            results = pool.imap_unordered(_label_document, tasks)
        try:
            for rows in results:
                labels.update(rows)
                bar.update(len(rows))
        finally:
            if pool is not None:
                pool.terminate()
    return {e.id: labels[e.id] for e in examples}


def labels_key(examples: Sequence[Example], segmenter: SegmenterConfig, metrics: Sequence[str]) -> str:
    """A cache key from the content of the data (texts, queries, references), segmenter and metrics."""
    digest = hashlib.sha1()
    digest.update(json.dumps({"version": LABELS_VERSION, "segmenter": asdict(segmenter), "metrics": list(metrics)}).encode())
    documents: set[int] = set()
    for example in examples:
        if id(example.document) not in documents:
            documents.add(id(example.document))
            digest.update(example.document.fingerprint.encode())
        digest.update(json.dumps([example.id, example.query, example.references]).encode())
    return digest.hexdigest()


def load_or_build_labels(
    examples: Sequence[Example],
    segmenter: SegmenterConfig,
    metrics: Sequence[str] = LABEL_METRICS,
    workers: int | None = None,
    progress: bool = True,
    directory: Path | None = None,
) -> dict[str, np.ndarray]:
    """`build_labels`, cached on disk under `$QFSUM_CACHE/labels/<key>.npz` (see `labels_key`)."""
    metrics = check_metrics(metrics)
    directory = Path(directory) if directory is not None else cache_dir() / "labels"
    path = directory / f"{labels_key(examples, segmenter, metrics)}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as data:
                ids, offsets, values = data["ids"].tolist(), data["offsets"], data["labels"]
            return {i: values[offsets[k] : offsets[k + 1]] for k, i in enumerate(ids)}
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
            pass  # a torn or foreign file: build again
    labels = build_labels(examples, segmenter, metrics, workers, progress)
    ids = list(labels)
    offsets = np.cumsum([0] + [len(labels[i]) for i in ids])
    directory.mkdir(parents=True, exist_ok=True)
    with staged_file(path) as staging:  # a concurrent reader never sees half a file
        np.savez(staging, ids=np.array(ids, dtype=str), offsets=offsets,
                 labels=np.concatenate([labels[i] for i in ids]) if ids else np.zeros(0, np.float32))
    return labels
