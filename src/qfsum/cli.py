"""The `qfsum` command line: a thin shell around `Pipeline` and the evaluation runners.

User errors print one line on stderr and exit with code 2; no tracebacks.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import select
import sys
import warnings
from pathlib import Path

from .errors import QfsumError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C
SHOWN_EVIDENCE = 5  # text output; --json gives all
# Lower bounds of numeric flags that the commands behind them do not check (a float flag is
# always refused as nan or inf). Each applies to every command with a flag of that name.
AT_LEAST_ONE = ("budget", "max_length", "workers", "max_new_tokens", "teacher_max_new_tokens", "max_prompt",
                "passage_tokens", "layers", "width", "heads", "state_size", "threads", "window_batch")
AT_LEAST_ZERO = ("val_limit",)  # 0 means all
ABOVE_ZERO = ("sample_temperature", "memory_limit")


def _quiet_libraries() -> None:
    """Keep library progress bars and warnings off the user's terminal."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if not sys.warnoptions:  # `python -W ...` or PYTHONWARNINGS still shows them
        warnings.simplefilter("ignore")


def _read_input(path: str):
    from .readers import MAX_FILE_BYTES, decode_text, document_from_text, read_document

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
    from .pipeline import Pipeline
    from .text import require_unicode

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


def _segmenter(segment: str):
    """`--segment`: turn, sentence, or windows (50 % overlap) of N words (`256`) or N tokens (`256:minilm`)."""
    from .segment import SegmenterConfig

    size, _, tokenizer = segment.partition(":")
    if size.isdigit():
        return SegmenterConfig(kind="window", size=int(size), tokenizer=tokenizer or None)
    return SegmenterConfig(kind=segment)


def _extractor_pipeline(scorer: str, segment: str):
    from .pipeline import CONFIG_FILE, Pipeline, PipelineConfig, load_config
    from .retrieval import ScorerConfig
    from .assets import shipped_models
    from .retrieval.base import scorer_config_for_model

    segmenter = _segmenter(segment)
    if scorer in ("lead", "bm25", "dense", "hybrid", "gold"):
        scorer_config = ScorerConfig(kind="lead" if scorer == "gold" else scorer)
    elif scorer in shipped_models() or (Path(scorer).is_dir() and not (Path(scorer) / CONFIG_FILE).exists()):
        scorer_config = scorer_config_for_model(scorer)  # a trained extractor: cross- or bi-encoder
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


def _training_config(args: argparse.Namespace):
    from .training.extractor import ExtractorTrainingConfig
    from .training.pairs import PairConfig

    data = Path(args.data).resolve()
    val_data = Path(args.val_data).resolve() if args.val_data else None
    val_split = None if args.val_split.lower() == "none" else args.val_split
    if val_split and data.is_file() and (val_data or data) == data:
        raise QfsumError("validation would read the training file: give --val-data FILE or --val-split none")
    if args.negatives_per_positive == "all":
        negatives = None
    else:
        try:
            negatives = float(args.negatives_per_positive)
        except ValueError:
            negatives = math.nan
        if not math.isfinite(negatives):
            raise QfsumError(f"--negatives-per-positive must be a number or 'all', got '{args.negatives_per_positive}'")
    pairs = PairConfig(
        positive_threshold=args.positive_threshold,
        max_positives=args.max_positives,
        negatives_per_positive=negatives,
        hard_negatives=args.hard_negatives,
        max_pairs=args.max_pairs,
        seed=args.seed,
    )
    return ExtractorTrainingConfig(
        kind=args.kind,
        data=str(data),
        out=args.out,
        split=args.split,
        val_split=val_split,
        val_data=str(val_data) if val_data else None,
        segmenter=_segmenter(args.segment),
        base=args.base,
        label_metrics=tuple(m.strip() for m in args.label_metrics.split(",") if m.strip()),
        pairs=pairs,
        epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        lr=args.lr,
        max_length=args.max_length,
        eval_steps=args.eval_steps,
        save_steps=args.save_steps,
        val_limit=args.val_limit or None,
        val_tokenizer=args.val_tokenizer,
        dtype=args.dtype,
        seed=args.seed,
        label_workers=args.workers,
    )


def cmd_train_extractor(args: argparse.Namespace) -> None:
    import shlex

    import datasets

    from .training.extractor import train_extractor

    config = _training_config(args)
    datasets.disable_progress_bars()
    try:
        run = train_extractor(config, progress=not args.no_progress, command="qfsum " + shlex.join(args.argv))
    except KeyboardInterrupt:
        print("qfsum: rerun the same command to resume from the last checkpoint", file=sys.stderr)
        raise
    if run.get("reported"):
        print(f"{config.out}: this run is already trained; showing its results (remove the folder to retrain)")
    seconds = run["seconds"]
    took = f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
    print(f"{config.kind}: {run['step']} steps on {run['data']['rows']} training rows in {took}")
    best = run.get("best")
    if best:
        shown = "  ".join(f"{k} {best[k]:.2f}" for k in ("top1_rouge1", "span_recall") if k in best)
        print(f"best on validation (step {best['step']}): {shown}")
    print(f"wrote {config.out}/ (model, README.md, qfsum_training.json)")


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
    p.add_argument("--scorer", required=True,
                   help="lead, bm25, dense, hybrid, gold, a pipeline name/directory, or a trained extractor (directory, or shipped name such as minilm-dpr-qmsum)")
    p.add_argument("--segment", default="turn", help="turn, sentence, or windows of N words (256) or N tokens of a tokenizer (256:minilm)")
    p.add_argument("--budget", type=int, default=1024, help="token budget of the 'topall' selection")
    p.add_argument("--tokenizer", default="smollm2", help="tokenizer that counts the budget (a model, or 'words')")
    p.set_defaults(func=cmd_evaluate_extractor)

    p = sub.add_parser("train", help="train a model")
    train = p.add_subparsers(dest="what", required=True)
    p = train.add_parser("extractor", help="train a relevance extractor (RelReg, RelRegTT, DPR) on ROUGE labels")
    p.add_argument("--kind", required=True, choices=("relreg", "relregtt", "dpr"),
                   help="relreg: cross-encoder regression; relregtt: two-tower regression; dpr: dual encoder, NLL")
    p.add_argument("--data", required=True, help="QMSum folder, folder of meetings, .json meeting or .jsonl file")
    p.add_argument("--split", default="train", help="training split inside a QMSum folder (default train)")
    p.add_argument("--val-split", default="val", help="validation split (default val), or none")
    p.add_argument("--val-data", default=None, help="validation data if not --data")
    p.add_argument("--segment", default="turn", help="turn, sentence, or windows of N words (256) or N tokens of a tokenizer (256:minilm)")
    p.add_argument("--base", default="minilm", help="starting encoder: packaged name, local directory or hub id")
    p.add_argument("--out", required=True, help="output directory; rerunning the same command resumes there")
    p.add_argument("--max-pairs", type=int, default=None, help="at most N training pairs (DPR: triples), sampled")
    p.add_argument("--negatives-per-positive", default="4",
                   help="regression: other segments kept per positive of a query (default 4), or 'all'")
    p.add_argument("--positive-threshold", type=float, default=0.1, help="label a positive must reach (default 0.1)")
    p.add_argument("--max-positives", type=int, default=5, help="positives per query at most (default 5)")
    p.add_argument("--hard-negatives", default="bm25", choices=("bm25", "label", "random"),
                   help="DPR: how each pair's hard negative is chosen (default bm25)")
    p.add_argument("--label-metrics", default="rouge1,rouge2,rougeL", help="ROUGE variants averaged into the label")
    p.add_argument("--epochs", type=float, default=1.0, help="passes over the training pairs (default 1)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after N optimizer steps")
    p.add_argument("--batch-size", type=int, default=16, help="pairs per step (default 16)")
    p.add_argument("--lr", type=float, default=2e-5, help="peak learning rate (default 2e-5)")
    p.add_argument("--max-length", type=int, default=None, help="tokens per input (default: the model's own)")
    p.add_argument("--eval-steps", type=int, default=500, help="validate every N steps, and at the end (default 500)")
    p.add_argument("--save-steps", type=int, default=200, help="checkpoint every N steps (default 200)")
    p.add_argument("--val-limit", type=int, default=50, help="validation examples, whole meetings drawn at random; 0 = all")
    p.add_argument("--val-tokenizer", default="smollm2", help="tokenizer of the 1024-token selection behind span recall")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32"), help="auto: bf16 mixed precision where native")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="processes that build the labels (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train_extractor)
    # Further `qfsum train WHAT` commands register here (`train.add_parser(...)`).
    from .training import seq2seq_cli

    p = train.add_parser("seq2seq", help="fine-tune an end-to-end writer: SegEnc, LED or a truncating seq2seq model")
    seq2seq_cli.add_arguments(p)
    p.set_defaults(func=seq2seq_cli.train)
    from .training import locost as locost_training  # light at import: torch loads when the command runs

    p = train.add_parser("locost", help="LOCOST: gap-sentence pre-training on any text, or query-focused fine-tuning")
    locost_training.add_arguments(p)
    p.set_defaults(func=locost_training.train)
    from .training import realtime_cli  # light at import: torch loads when the command runs

    realtime_cli.add_sft_arguments(train.add_parser("sft", help="fine-tune the real-time writer (LoRA or full), answer-only loss"))
    realtime_cli.add_distill_arguments(train.add_parser("distill", help="distil a teacher model or pipeline into the real-time writer"))
    realtime_cli.add_dpo_arguments(train.add_parser("dpo", help="DPO on sampled answers ranked by a reward (ROUGE by default)"))
    realtime_cli.add_export_arguments(train.add_parser("export", help="copy a trained adapter or extractor in half precision, ready to ship"))

    bench = sub.add_parser("bench", help="benchmarks that print figures (not tests)").add_subparsers(
        dest="which", required=True)
    # `qfsum bench WHICH` commands register here (`bench.add_parser(...)`).
    from .distributed import cli as batch_cli
    from .serving import bench as serve_bench
    from .serving import cli as serve_cli

    from .bench import segenc_scaling

    p = bench.add_parser("segenc", help="SegEnc vs full attention: encoder time and peak memory at 1K-64K tokens")
    segenc_scaling.add_arguments(p)
    p.set_defaults(func=segenc_scaling.bench_segenc)
    from .bench import locost_scaling  # standard library only at import; torch loads in each measured child

    p = bench.add_parser("locost-scaling", help="LOCOST vs dense-attention encoder: time and peak memory, 1K-600K tokens")
    locost_scaling.add_arguments(p)
    p.set_defaults(func=locost_scaling.bench)
    p = bench.add_parser("serve", help="HTTP load on loopback: micro-batched vs naive server, 1/8/64 clients")
    serve_bench.add_arguments(p)
    p.set_defaults(func=serve_bench.bench_serve)
    realtime_cli.add_decode_bench_arguments(bench.add_parser("decode", help="lookahead vs greedy decoding: speedup, identical outputs, batched throughput"))
    realtime_cli.add_task_bench_arguments(bench.add_parser("task", help="ROUGE of a writer model on (query, passage) task examples"))
    p = bench.add_parser("batch", help="batch-job throughput: one process vs local Ray, on QMSum requests")
    batch_cli.add_bench_arguments(p)
    p.set_defaults(func=batch_cli.bench_batch)

    p = sub.add_parser("serve", help="HTTP API and web page (micro-batched; loopback by default)")
    serve_cli.add_arguments(p)
    p.set_defaults(func=serve_cli.serve)
    p = sub.add_parser("batch", help="summarize a JSONL file of requests on Ray (resumable, exactly once)")
    batch_cli.add_arguments(p)
    p.set_defaults(func=batch_cli.batch)

    p = sub.add_parser("pipelines", help="list the packaged pipelines")
    p.set_defaults(func=cmd_pipelines)
    return parser


def _check_numbers(args: argparse.Namespace) -> None:
    """Refuse what argparse's `type=int`/`type=float` lets through: nan, inf, and values below a bound."""
    for name, value in vars(args).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, float) and not math.isfinite(value):
            raise QfsumError(f"{flag} must be a finite number, got {value}")
        if abs(value) >= 2**63:  # torch and numpy take 64-bit integers; beyond, they overflow
            raise QfsumError(f"{flag} is too large: {value}")
        if (name in AT_LEAST_ONE and value < 1) or (name in AT_LEAST_ZERO and value < 0):
            raise QfsumError(f"{flag} must be >= {1 if name in AT_LEAST_ONE else 0}, got {value}")
        if name in ABOVE_ZERO and value <= 0:
            raise QfsumError(f"{flag} must be > 0, got {value}")


def _stdout_reader_gone() -> bool:
    """True when stdout is a pipe whose reader has exited (`qfsum ... | head -c1`)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no stdout, or not a file (tests capture it)
        return False


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in model cards
    try:
        _check_numbers(args)
        _quiet_libraries()
        args.func(args)
        sys.stdout.flush()  # a closed pipe shows up here, inside main, not at interpreter exit
    except QfsumError as err:
        message = " ".join(str(err).splitlines())  # one line, whatever a library put in the message
        print(f"qfsum: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run `qfsum` on `argv` (default `sys.argv[1:]`) and return the exit code: 0, 2 for a user
    error (one line on stderr), 130 when interrupted. argparse exits by itself on bad usage."""
    try:
        return _run(argv)
    except KeyboardInterrupt:
        print("qfsum: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        if not _stdout_reader_gone():
            raise  # some other pipe: a bug, keep its traceback
        # The reader stopped early, as `head` does: point stdout at /dev/null so the
        # interpreter's last flush of the unwritten output has nowhere to fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
