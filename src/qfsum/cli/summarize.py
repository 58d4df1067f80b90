"""`qfsum summarize` and `qfsum pipelines`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import QfsumError

SHOWN_EVIDENCE = 5  # text output; --json gives all


def _read_input(path: str):
    from ..readers import MAX_FILE_BYTES, decode_text, document_from_text, read_document

    if path == "-":
        if sys.stdin is None:  # started with stdin closed (`<&-`)
            raise QfsumError("stdin: closed; give a file, or pipe a document in")
        try:
            data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
        except OSError as err:  # e.g. stdin opened write-only
            raise QfsumError(f"stdin: cannot read ({err.strerror or err})") from None
        if len(data) > MAX_FILE_BYTES:
            raise QfsumError(f"stdin: over the {MAX_FILE_BYTES // 2**20} MB limit")
        return document_from_text(decode_text(data, "stdin"), "stdin"), []
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
    summaries = pipeline.summarize_many(document, queries)
    if args.json:
        print(json.dumps([s.to_dict() for s in summaries], indent=2, ensure_ascii=False))
        return
    for i, summary in enumerate(summaries):
        if i:
            print()
        print(f"Q: {summary.query}\nA: {summary.text}\n")
        top = sorted(summary.evidence, key=lambda e: -e.score)[:SHOWN_EVIDENCE]
        more = len(summary.evidence) - len(top)
        print(f"Evidence ({len(summary.evidence)} segments" + (f", the {len(top)} most relevant shown" if more else "") + "):")
        for item in top:
            seg = item.segment
            snippet = seg.text if len(seg.text) <= 160 else seg.text[:157] + "..."
            print(f"  [{seg.index}] chars {seg.start}-{seg.end}  score {item.score:.3f}  {snippet}")
        print(f"({summary.timings['total_ms']:.0f} ms)")


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
    p.set_defaults(func=cmd_summarize)
    p = sub.add_parser("pipelines", help="list the packaged pipelines")
    p.set_defaults(func=cmd_pipelines)
