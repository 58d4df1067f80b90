"""The `qfsum` command line: a thin shell around `Pipeline` and the evaluation runners.

User errors print one line on stderr and exit with code 2; no tracebacks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import QfsumError

EXIT_USAGE = 2
SHOWN_EVIDENCE = 5  # text output; --json gives all


def _quiet_libraries() -> None:
    """Keep library progress bars and warnings off the user's terminal."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _read_input(path: str):
    from .readers import MAX_FILE_BYTES, decode_text, document_from_text, read_document

    if path == "-":
        data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise QfsumError(f"stdin: over the {MAX_FILE_BYTES // 2**20} MB limit")
        return document_from_text(decode_text(data, "stdin"), "stdin"), []
    return read_document(path)


def cmd_summarize(args: argparse.Namespace) -> None:
    from .pipeline import Pipeline

    document, file_queries = _read_input(args.path)
    queries = args.query or file_queries
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


def _examples(args: argparse.Namespace):
    from .readers import read_examples

    if args.limit is not None and args.limit < 1:
        raise QfsumError("--limit must be >= 1")
    examples = read_examples(args.data, args.split)
    return examples[: args.limit] if args.limit else examples


def _default_out(kind: str, name: str, args: argparse.Namespace) -> Path:
    label = Path(str(name)).name or "pipeline"
    limit = f"-{args.limit}" if args.limit else ""
    return Path("runs") / f"{kind}-{label}-{args.split or Path(args.data).stem}{limit}"


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .evaluation.rouge import ROUGE_KEYS
    from .evaluation.runner import evaluate
    from .pipeline import Pipeline

    examples = _examples(args)
    pipeline = Pipeline.load(args.pipeline)
    out = Path(args.out) if args.out else _default_out("evaluate", args.pipeline, args)
    label = f"{Path(args.data).resolve()}:{args.split}"
    metrics = evaluate(pipeline, examples, out, label, progress=not args.no_progress)
    print(f"{'pipeline':<24}" + "".join(f"{k:>10}" for k in ROUGE_KEYS) + f"{'n':>6}{'seconds':>10}")
    print(f"{Path(str(args.pipeline)).name:<24}" + "".join(f"{metrics[k]:>10.2f}" for k in ROUGE_KEYS)
          + f"{metrics['n']:>6}{metrics['seconds']:>10.1f}")
    print(f"wrote {out}/metrics.json and {out}/predictions.jsonl")


def _extractor_pipeline(scorer: str, segment: str):
    from .pipeline import Pipeline, PipelineConfig, load_config
    from .retrieval import ScorerConfig
    from .segment import SegmenterConfig

    if segment.isdigit():
        segmenter = SegmenterConfig(kind="window", size=int(segment))
    else:
        segmenter = SegmenterConfig(kind=segment)
    if scorer in ("lead", "bm25", "dense", "hybrid", "gold"):
        scorer_config = ScorerConfig(kind="lead" if scorer == "gold" else scorer)
    else:
        scorer_config = load_config(scorer).scorer  # a pipeline name or directory: use its scorer
    from .generation import WriterConfig

    return Pipeline(PipelineConfig(name=f"extractor-{scorer}", segmenter=segmenter, scorer=scorer_config,
                                   writer=WriterConfig(kind="extractive")))


def _counter(name: str):
    from .budget import TokenizerCounter, WordCounter

    if name == "words":
        return WordCounter()
    from .assets import load_tokenizer

    return TokenizerCounter(load_tokenizer(name))


def cmd_evaluate_extractor(args: argparse.Namespace) -> None:
    from .evaluation.runner import evaluate_extractor

    examples = _examples(args)
    pipeline = _extractor_pipeline(args.scorer, args.segment)
    out = Path(args.out) if args.out else _default_out("extractor", args.scorer, args)
    metrics = evaluate_extractor(pipeline, examples, out, _counter(args.tokenizer), args.budget,
                                 gold=args.scorer == "gold", progress=not args.no_progress)
    print(f"{'selection':<10}{'R-1':>8}{'R-2':>8}{'R-L':>8}{'words':>8}")
    for name in ("top1", "top5", "top15", "topall"):
        print(f"{name:<10}" + "".join(f"{metrics[f'{name}_{k}']:>8.2f}" for k in ("rouge1", "rouge2", "rougeL"))
              + f"{metrics[f'{name}_words']:>8.0f}")
    if "span_recall" in metrics:
        print(f"span precision {metrics['span_precision']:.2f}  recall {metrics['span_recall']:.2f}"
              f"  ({metrics['n_with_spans']} of {metrics['n']} examples have gold spans)")
    print(f"wrote {out}/metrics.json")


def cmd_pipelines(args: argparse.Namespace) -> None:
    from .pipeline import load_config, packaged_pipelines

    for name in packaged_pipelines():
        print(f"{name:<20} {load_config(name).description}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qfsum", description="Query-focused summarization of long documents.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("summarize", help="answer questions about a document, with evidence")
    p.add_argument("path", help="document: .txt, .md, .jsonl (first record), QMSum .json, or - for stdin")
    p.add_argument("--query", "-q", action="append", help="a question (repeat for several)")
    p.add_argument("--pipeline", "-p", default="default", help="packaged pipeline name or saved directory")
    p.add_argument("--json", action="store_true", help="print JSON: one object per query")
    p.set_defaults(func=cmd_summarize)

    def data_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", required=True, help="QMSum folder, folder of meetings, .json meeting or .jsonl file")
        p.add_argument("--split", default=None, help="val or test (or train) inside a QMSum folder")
        p.add_argument("--limit", type=int, default=None, help="only the first N examples (fixed order)")
        p.add_argument("--out", default=None, help="output folder (default runs/...)")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("evaluate", help="ROUGE of a pipeline on a data set")
    data_args(p)
    p.add_argument("--pipeline", "-p", required=True, help="packaged pipeline name or saved directory")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("evaluate-extractor", help="top-k ROUGE and span precision/recall of a scorer")
    data_args(p)
    p.add_argument("--scorer", required=True, help="lead, bm25, dense, hybrid, gold, or a pipeline name/directory")
    p.add_argument("--segment", default="turn", help="turn, sentence, or a window size in words (e.g. 256)")
    p.add_argument("--budget", type=int, default=1024, help="token budget of the 'topall' selection")
    p.add_argument("--tokenizer", default="smollm2", help="tokenizer that counts the budget (a model, or 'words')")
    p.set_defaults(func=cmd_evaluate_extractor)

    p = sub.add_parser("pipelines", help="list the packaged pipelines")
    p.set_defaults(func=cmd_pipelines)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _quiet_libraries()
        args.func(args)
    except QfsumError as err:
        print(f"qfsum: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("qfsum: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
