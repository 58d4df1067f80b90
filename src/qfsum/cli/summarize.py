"""`qfsum summarize` and `qfsum pipelines`."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from ..errors import QfsumError
from ..grounding import SUPPORT_THRESHOLD
from ..pipeline import GROUNDING_MODES
from ..threads import add_threads_argument, parse_threads, set_threads

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
    threads = parse_threads(args.threads)
    document, file_queries = _read_input(args.path)
    queries = queries or file_queries
    if not queries:
        raise QfsumError("give at least one --query (the file carries none)")
    if any(not q.strip() for q in queries):
        raise QfsumError("the query is empty")
    set_threads(threads)
    status = StatusLine()
    status.show(f"loading pipeline '{args.pipeline}'...")
    pipeline = Pipeline.load(args.pipeline, grounding=args.grounding, summary_words=args.words)
    summaries = []
    for summary in answers(pipeline, document, queries, status):
        if args.jsonl:
            print(json.dumps(summary.to_dict(), ensure_ascii=False), flush=True)
        elif not args.json:
            if summaries:
                print()
            print_summary(summary)
            sys.stdout.flush()
        summaries.append(summary)
    if args.json:
        print(json.dumps([s.to_dict() for s in summaries], indent=2, ensure_ascii=False))


class StatusLine:
    """One self-erasing progress line on stderr ("answering 3 of 7..."), only when stderr is a terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        try:
            self.enabled = self.stream.isatty()
        except (AttributeError, ValueError):  # closed, or not a file
            self.enabled = False
        self._shown = False

    def show(self, text: str, tail: str = "") -> None:
        """Replace the line with `text`, then as much of the end of `tail` (the answer being written,
        on one line) as fits the terminal's width: a wrapped line could not be erased."""
        if self.enabled:
            line = f"qfsum: {text}"
            flat = " ".join(tail.split())
            room = shutil.get_terminal_size().columns - 1 - len(line)
            if flat and room > 8:
                line += flat if len(flat) <= room else "..." + flat[-(room - 3):]
            self.stream.write(f"\r\x1b[K{line}")
            self.stream.flush()
            self._shown = True

    def clear(self) -> None:
        """Erase the line (before an answer is printed, so the two do not mix on a terminal)."""
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


def query_groups(n: int, batch_size: int) -> list[range]:
    """Which queries are answered together: the first alone (an answer to read at once), then groups
    of the writer's batch size (one generate() call each, as fast as answering all at once)."""
    if n <= 0:
        return []
    size = max(batch_size, 1)
    return [range(0, 1)] + [range(i, min(i + size, n)) for i in range(1, n, size)]


def answers(pipeline: Any, document: Any, queries: list[str], status: StatusLine | None = None) -> Iterator[Any]:
    """Each query's summary as soon as its group is answered, in query order (the document is
    segmented and encoded once: the pipeline caches it). On a terminal the status line shows the
    answer being written as a model writer decodes it (the draft; the printed answer is the grounded one)."""
    for group in query_groups(len(queries), getattr(pipeline.config.writer, "batch_size", 1)):
        options: dict[str, Any] = {}
        if status:
            shown = f"{group.start + 1}" if len(group) == 1 else f"{group.start + 1}-{group.stop}"
            status.show(f"answering {shown} of {len(queries)}...")
            if status.enabled:
                options["on_text"] = _live_draft(status, group, len(queries))
        summaries = pipeline.summarize_many(document, [queries[i] for i in group], **options)
        if status:
            status.clear()
        yield from summaries


def _live_draft(status: StatusLine, group: range, total: int) -> Callable[[int, str], None]:
    """An `on_text` callback that shows the end of the draft that just grew, as `answering K of N: ...`."""
    drafts: dict[int, str] = {}

    def on_text(i: int, text: str) -> None:
        drafts[i] = drafts.get(i, "") + text
        status.show(f"answering {group.start + i + 1} of {total}: ", drafts[i])

    return on_text


def print_summary(summary: Any) -> None:
    """One answer as text: the question, the answer with its citation markers, the evidence."""
    print(f"Q: {summary.query}\nA: {answer_with_markers(summary)}\n")
    if summary.note:
        print(f"({summary.note})\n")
    print_quotes(summary)
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


def print_quotes(summary: Any) -> None:
    """For each supported sentence, the evidence sentence that supports it best: what to check first."""
    lines = []
    for k, sentence in enumerate(summary.sentences, 1):
        if sentence.support < SUPPORT_THRESHOLD or sentence.quote is None:
            continue
        cited = sentence.citations[0]
        start, end = sentence.quote
        flat = " ".join(summary.evidence[cited].segment.text[start:end].split())
        flat = flat if len(flat) <= 150 else flat[:147] + "..."
        lines.append(f"  sentence {k} <- [{cited + 1}] \"{flat}\"")
    if lines:
        print("Check:\n" + "\n".join(lines) + "\n")


def print_evidence(summary: Any) -> None:
    """The cited evidence and the most relevant of the rest, numbered as the answer's markers, each
    with its relevance rank (#1 = most relevant): fused scores (~0.03) mean nothing to a reader."""
    cited = {c for s in summary.sentences if s.support >= SUPPORT_THRESHOLD for c in s.citations}
    by_score = sorted(range(len(summary.evidence)), key=lambda i: -summary.evidence[i].score)
    rank = {i: r + 1 for r, i in enumerate(by_score)}
    shown = sorted(cited | set(by_score[: max(SHOWN_EVIDENCE - len(cited), 0)]))
    hidden = len(summary.evidence) - len(shown)
    print(f"Evidence ({len(summary.evidence)} segments" + (f", {len(shown)} shown" if hidden else "") + "):")
    for i in shown:
        item = summary.evidence[i]
        seg = item.segment
        flat = " ".join(seg.text.split())  # one line per evidence item, whatever the source's line breaks
        snippet = flat if len(flat) <= 160 else flat[:157] + "..."
        print(f"  [{i + 1}] chars {seg.start}-{seg.end}{page_label(seg)}  rank #{rank[i]}  {snippet}")


def page_label(segment: Any) -> str:
    """'  p. N' or '  pp. N-M' for a segment of a paged source (PDF); '' for other sources."""
    if segment.page is None:
        return ""
    if segment.last_page is None or segment.last_page == segment.page:
        return f"  p. {segment.page}"
    return f"  pp. {segment.page}-{segment.last_page}"


def cmd_pipelines(args: argparse.Namespace) -> None:
    from ..pipeline import load_config, packaged_pipelines

    for name in packaged_pipelines():
        print(f"{name:<20} {load_config(name).description}")


def register(sub: Any) -> None:
    """Add `summarize` and `pipelines` to the top-level subparsers."""
    p = sub.add_parser("summarize", help="answer questions about a document, with evidence",
                       description="Answer questions about a document. Each answer is printed as soon as it "
                                   "is ready (progress on stderr when it is a terminal).")
    p.add_argument("path", help="document: .txt, .md, .jsonl (first record), QMSum .json, or - for stdin")
    p.add_argument("--query", "-q", action="append", help="a question (repeat for several)")
    p.add_argument("--pipeline", "-p", default="default", help="packaged pipeline name or saved directory")
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON array of all answers, at the end")
    output.add_argument("--jsonl", action="store_true",
                        help="print one JSON object per answer (one line each), as soon as it is ready")
    p.add_argument("--grounding", choices=GROUNDING_MODES, default=None,
                   help="flag (the pipeline's default): cite evidence after each sentence and mark unsupported ones; "
                        "strict: drop unsupported sentences; off: no citations")
    p.add_argument("--words", type=int, default=None, metavar="N",
                   help="answer length in words: the extractive writer's budget, or about so many words from a "
                        "model writer, ending at a whole sentence (default: the pipeline's)")
    add_threads_argument(p)
    p.set_defaults(func=cmd_summarize)
    p = sub.add_parser("pipelines", help="list the packaged pipelines, or save one as a folder")
    p.set_defaults(func=cmd_pipelines)
    from .pipelines import add_pipeline_commands

    add_pipeline_commands(p, cmd_pipelines)  # `qfsum pipelines list`, `qfsum pipelines save`
