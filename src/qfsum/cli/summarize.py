"""`qfsum summarize` and `qfsum pipelines`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import QfsumError
from ..grounding import SUPPORT_THRESHOLD
from ..pipeline import GROUNDING_MODES

SHOWN_EVIDENCE = 5  # text output; --json gives all


def _read_input(path: str):
    from ..readers import MAX_FILE_BYTES, document_from_bytes, read_document

    if path == "-":
        if sys.stdin is None:  # started with stdin closed (`<&-`)
            raise QfsumError("stdin: closed; give a file, or pipe a document in")
        try:
            data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
        except OSError as err:  # e.g. stdin opened write-only
            raise QfsumError(f"stdin: cannot read ({err.strerror or err})") from None
        if len(data) > MAX_FILE_BYTES:
            raise QfsumError(f"stdin: over the {MAX_FILE_BYTES // 2**20} MB limit")
        return document_from_bytes(data, "stdin", "stdin"), []  # PDF, HTML, DOCX or text, by content
    return read_document(path)


def cmd_summarize(args: argparse.Namespace) -> None:
    from ..pipeline import Pipeline
    from ..text import require_unicode

    # argv bytes that are not UTF-8 arrive as lone surrogates (surrogateescape)
    queries = [require_unicode(q, "--query") for q in args.query or []]
    document, file_queries = _read_input(args.path)
    queries = queries or file_queries
    if not queries:
        raise QfsumError("give at least one --query (the file carries none)")
    if any(not q.strip() for q in queries):
        raise QfsumError("the query is empty")
    pipeline = Pipeline.load(args.pipeline)
    if args.grounding:
        pipeline.config.grounding = args.grounding
    summaries = pipeline.summarize_many(document, queries)
    if args.json:
        print(json.dumps([s.to_dict() for s in summaries], indent=2, ensure_ascii=False))
        return
    for i, summary in enumerate(summaries):
        if i:
            print()
        print(f"Q: {summary.query}\nA: {answer_with_markers(summary)}\n")
        if summary.note:
            print(f"({summary.note})\n")
        print_evidence(summary)
        print(f"({summary.timings['total_ms']:.0f} ms)")


def answer_with_markers(summary: Any) -> str:
    """The answer with its citations after each sentence, `[1][3]` (evidence numbers as printed
    below it), and `[unsupported]` after a sentence no evidence supports."""
    if not summary.sentences:
        return summary.text
    parts = []
    for sentence in summary.sentences:
        supported = sentence.support >= SUPPORT_THRESHOLD
        marks = "".join(f"[{c + 1}]" for c in sentence.citations) if supported else "[unsupported]"
        parts.append(f"{sentence.text} {marks}")
    return " ".join(parts)


def print_evidence(summary: Any) -> None:
    """The cited evidence and the most relevant of the rest, numbered as the answer's markers."""
    cited = {c for s in summary.sentences if s.support >= SUPPORT_THRESHOLD for c in s.citations}
    by_score = sorted(range(len(summary.evidence)), key=lambda i: -summary.evidence[i].score)
    shown = sorted(cited | set(by_score[: max(SHOWN_EVIDENCE - len(cited), 0)]))
    hidden = len(summary.evidence) - len(shown)
    print(f"Evidence ({len(summary.evidence)} segments" + (f", {len(shown)} shown" if hidden else "") + "):")
    for i in shown:
        item = summary.evidence[i]
        seg = item.segment
        flat = " ".join(seg.text.split())  # one line per evidence item, whatever the source's line breaks
        snippet = flat if len(flat) <= 160 else flat[:157] + "..."
        print(f"  [{i + 1}] chars {seg.start}-{seg.end}  score {item.score:.3f}  {snippet}")


def cmd_pipelines(args: argparse.Namespace) -> None:
    from ..pipeline import load_config, packaged_pipelines

    for name in packaged_pipelines():
        print(f"{name:<20} {load_config(name).description}")


def register(sub: Any) -> None:
    """Add `summarize` and `pipelines` to the top-level subparsers."""
    p = sub.add_parser("summarize", help="answer questions about a document, with evidence")
    p.add_argument("path", help="document: .txt, .md, .jsonl (first record), QMSum .json, or - for stdin")
    p.add_argument("--query", "-q", action="append", help="a question (repeat for several)")
    p.add_argument("--pipeline", "-p", default="default", help="packaged pipeline name or saved directory")
    p.add_argument("--json", action="store_true", help="print JSON: one object per query")
    p.add_argument("--grounding", choices=GROUNDING_MODES, default=None,
                   help="flag (the pipeline's default): cite evidence after each sentence and mark unsupported ones; "
                        "strict: drop unsupported sentences; off: no citations")
    p.set_defaults(func=cmd_summarize)
    p = sub.add_parser("pipelines", help="list the packaged pipelines")
    p.set_defaults(func=cmd_pipelines)
