"""`qfsum evaluate`, `qfsum evaluate-extractor` and `qfsum report`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import QfsumError
from ..threads import add_threads_argument, parse_threads, set_threads


def _examples(args: argparse.Namespace):
    from ..readers import read_examples

    if args.limit is not None and args.limit < 1:
        raise QfsumError("--limit must be >= 1")
    examples = read_examples(args.data, args.split)
    return examples[: args.limit] if args.limit else examples


def _default_out(kind: str, name: str, args: argparse.Namespace) -> Path:
    label = Path(str(name)).name or "pipeline"
    limit = f"-{args.limit}" if args.limit else ""
    return Path("runs") / f"{kind}-{label}-{args.split or Path(args.data).stem}{limit}"


def cmd_evaluate(args: argparse.Namespace) -> None:
    from ..evaluation.rouge import ROUGE_KEYS
    from ..evaluation.runner import evaluate
    from ..pipeline import Pipeline
    from ..support import build_support_scorer

    examples = _examples(args)
    support = build_support_scorer(args.support_scorer)  # before the pipeline: a bad spec fails at once
    set_threads(parse_threads(args.threads))  # before torch loads (qfsum.threads)
    pipeline = Pipeline.load(args.pipeline)
    out = Path(args.out) if args.out else _default_out("evaluate", args.pipeline, args)
    label = f"{Path(args.data).resolve()}:{args.split}"
    metrics = evaluate(pipeline, examples, out, label, progress=not args.no_progress, support=support)
    shown = {**{k: k for k in ROUGE_KEYS}, "numbers": "number_precision", "names": "name_precision",
             "supported": "supported_sentences"}  # faithfulness against the evidence, 0..1
    print(f"{'pipeline':<24}" + "".join(f"{k:>10}" for k in shown) + f"{'n':>6}{'seconds':>10}")
    print(f"{Path(str(args.pipeline)).name:<24}"
          + "".join(f"{metrics[k]:>10.2f}" if k in ROUGE_KEYS else f"{metrics[k]:>10.3f}" for k in shown.values())
          + f"{metrics['n']:>6}{metrics['seconds']:>10.1f}")
    print(f"supported: judged by the {metrics['support_scorer']} support scorer; "
          "rougeL is plain LCS, rougeLsum QMSum's R-L")
    print(f"wrote {out}/metrics.json, {out}/predictions.jsonl and {out}/report.html")


def cmd_report(args: argparse.Namespace) -> None:
    from ..evaluation.report import write_report

    print(f"wrote {write_report(Path(args.run))}")


def segmenter_config(segment: str):
    """`--segment`: turn, sentence, or windows (50 % overlap) of N words (`256`) or N tokens (`256:minilm`)."""
    from ..segment import SegmenterConfig

    size, _, tokenizer = segment.partition(":")
    if size.isdigit():
        return SegmenterConfig(kind="window", size=int(size), tokenizer=tokenizer or None)
    return SegmenterConfig(kind=segment)


def _extractor_pipeline(scorer: str, segment: str):
    from ..pipeline import CONFIG_FILE, Pipeline, PipelineConfig, load_config
    from ..retrieval import ScorerConfig
    from ..assets import shipped_models
    from ..retrieval.registry import scorer_config_for_model

    segmenter = segmenter_config(segment)
    if scorer in ("lead", "bm25", "dense", "hybrid", "gold"):
        scorer_config = ScorerConfig(kind="lead" if scorer == "gold" else scorer)
    elif scorer in shipped_models() or (Path(scorer).is_dir() and not (Path(scorer) / CONFIG_FILE).exists()):
        scorer_config = scorer_config_for_model(scorer)  # a trained extractor: cross- or bi-encoder
    else:
        scorer_config = load_config(scorer).scorer  # a pipeline name or directory: use its scorer
    from ..writers import WriterConfig

    return Pipeline(PipelineConfig(name=f"extractor-{scorer}", segmenter=segmenter, scorer=scorer_config,
                                   writer=WriterConfig(kind="extractive")))


def _counter(name: str):
    from ..budget import TokenizerCounter, WordCounter

    if name == "words":
        return WordCounter()
    from ..assets import load_tokenizer

    return TokenizerCounter(load_tokenizer(name))


def cmd_evaluate_extractor(args: argparse.Namespace) -> None:
    from ..evaluation.runner import evaluate_extractor

    examples = _examples(args)
    pipeline = _extractor_pipeline(args.scorer, args.segment)
    out = Path(args.out) if args.out else _default_out("extractor", args.scorer, args)
    metrics = evaluate_extractor(pipeline, examples, out, _counter(args.tokenizer), args.budget,
                                 gold=args.scorer == "gold", progress=not args.no_progress)
    keys = ("rouge1", "rouge2", "rougeL", "rougeLsum")  # rougeL: plain LCS; rougeLsum: the papers' R-L
    print(f"{'selection':<10}" + "".join(f"{k:>10}" for k in keys) + f"{'words':>8}")
    for name in ("top1", "top5", "top15", "topall"):
        print(f"{name:<10}" + "".join(f"{metrics[f'{name}_{k}']:>10.2f}" for k in keys)
              + f"{metrics[f'{name}_words']:>8.0f}")
    if "span_recall" in metrics:
        print(f"topall against gold: turn precision {metrics['span_precision']:.2f}, turn recall "
              f"{metrics['span_recall']:.2f}, spans touched {metrics['gold_span_recall']:.2f}"
              f"  ({metrics['n_with_spans']} of {metrics['n']} examples have gold spans)")
    print("rougeL is plain ROUGE-L (one LCS over the whole text); rougeLsum is QMSum's R-L (per sentence)")
    print(f"wrote {out}/metrics.json")


def data_arguments(p: argparse.ArgumentParser) -> None:
    """The data flags every evaluation command shares."""
    p.add_argument("--data", required=True, help="QMSum folder, folder of meetings, .json meeting or .jsonl file")
    p.add_argument("--split", default=None, help="val or test (or train) inside a QMSum folder")
    p.add_argument("--limit", type=int, default=None,
                   help="only the first N examples (fixed order); a larger N on the same --out adds the rest")
    p.add_argument("--out", default=None, help="output folder (default runs/...)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(sub: Any) -> None:
    """Add `evaluate`, `report` and `evaluate-extractor` to the top-level subparsers."""
    p = sub.add_parser(
        "evaluate", help="ROUGE and faithfulness of a pipeline on a data set, with an HTML report",
        epilog="examples:\n"
               "  qfsum evaluate --data ../shared/data/qmsum --split val --pipeline default --limit 20\n"
               "  qfsum evaluate --data examples.jsonl --pipeline extractive --out runs/extractive-examples\n"
               "  qfsum evaluate --data ../shared/data/qmsum --split val -p default --support-scorer path/to/nli-model",
    )
    data_arguments(p)
    p.add_argument("--pipeline", "-p", required=True, help="packaged pipeline name or saved directory")
    p.add_argument("--support-scorer", default="lexical",
                   help="what judges supported_sentences: lexical, or a Hugging Face NLI / fact-checking "
                        "sequence-classification model (hub id or local directory)")
    add_threads_argument(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", help="rebuild report.html of an evaluate run folder",
                       epilog="example:\n  qfsum report runs/evaluate-default-val")
    p.add_argument("run", help="an evaluate run folder (with predictions.jsonl)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("evaluate-extractor", help="top-k ROUGE and span precision/recall of a scorer")
    data_arguments(p)
    p.add_argument("--scorer", required=True,
                   help="lead, bm25, dense, hybrid, gold, a pipeline name/directory, or a trained extractor (directory, or shipped name such as minilm-dpr-qmsum)")
    p.add_argument("--segment", default="turn", help="turn, sentence, or windows of N words (256) or N tokens of a tokenizer (256:minilm)")
    p.add_argument("--budget", type=int, default=1024, help="token budget of the 'topall' selection")
    p.add_argument("--tokenizer", default="smollm2", help="tokenizer that counts the budget (a model, or 'words')")
    p.set_defaults(func=cmd_evaluate_extractor)
