"""`qfsum train ...`: relevance extractors, end-to-end seq2seq writers, LOCOST, the real-time writer."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from ..errors import QfsumError
from .evaluate import segmenter_config


def _training_config(args: argparse.Namespace):
    from ..training.extractor.pairs import PairConfig
    from ..training.extractor.train import ExtractorTrainingConfig

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
        segmenter=segmenter_config(args.segment),
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

    from ..training.common.runs import took
    from ..training.extractor.train import train_extractor

    config = _training_config(args)
    datasets.disable_progress_bars()
    try:
        run = train_extractor(config, progress=not args.no_progress, command="qfsum " + shlex.join(args.argv))
    except KeyboardInterrupt:
        print("qfsum: rerun the same command to resume from the last checkpoint", file=sys.stderr)
        raise
    if run.get("reported"):
        print(f"{config.out}: this run is already trained; showing its results (remove the folder to retrain)")
    print(f"{config.kind}: {run['step']} steps on {run['data']['rows']} training rows in {took(run['seconds'])}")
    best = run.get("best")
    if best:
        shown = "  ".join(f"{k} {best[k]:.2f}" for k in ("top1_rouge1", "span_recall") if k in best)
        print(f"best on validation (step {best['step']}): {shown}")
    print(f"wrote {config.out}/ (model, README.md, qfsum_training.json)")


def register(sub: Any) -> None:
    """Add `train WHAT` to the top-level subparsers."""
    train = sub.add_parser("train", help="train a model").add_subparsers(dest="what", required=True)
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
    p.add_argument("--seed", type=int, default=0, help="random seed: pair sampling, initialisation, data order")
    p.add_argument("--workers", type=int, default=None, help="processes that build the labels (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train_extractor)
    # Further `qfsum train WHAT` commands register here (`train.add_parser(...)`).
    from ..training.seq2seq import cli as seq2seq_cli

    p = train.add_parser("seq2seq", help="fine-tune an end-to-end writer: SegEnc, LED or a truncating seq2seq model")
    seq2seq_cli.add_arguments(p)
    p.set_defaults(func=seq2seq_cli.train)
    from ..training.seq2seq import locost as locost_training  # light at import: torch loads when the command runs

    p = train.add_parser("locost", help="LOCOST: gap-sentence pre-training on any text, or query-focused fine-tuning")
    locost_training.add_arguments(p)
    p.set_defaults(func=locost_training.train)
    from ..training.writer import cli as writer_cli  # light at import: torch loads when the command runs

    writer_cli.add_sft_arguments(train.add_parser("sft", help="fine-tune the real-time writer (LoRA or full), answer-only loss"))
    writer_cli.add_distill_arguments(train.add_parser("distill", help="distil a teacher model or pipeline into the real-time writer"))
    writer_cli.add_dpo_arguments(train.add_parser("dpo", help="DPO on sampled answers ranked by a reward (ROUGE by default)"))
    writer_cli.add_export_arguments(train.add_parser("export", help="copy a trained adapter or extractor in half precision, ready to ship"))

