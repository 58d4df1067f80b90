"""`qfsum train seq2seq`: the command-line face of the seq2seq trainer (`train`, imported lazily).

`add_trainer_arguments` and `trainer_fields` are the options every command built on the seq2seq
trainer shares (data, schedule, validation); a command adds its own model options around them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ...errors import QfsumError


def add_trainer_arguments(
    p: argparse.ArgumentParser,
    data_help: str = "QMSum folder, folder of meetings, .json meeting or .jsonl file",
    **defaults: Any,
) -> None:
    """The seq2seq trainer's options: data, schedule, precision, validation. `defaults` overrides
    the defaults by destination name (e.g. `lr=5e-4, epochs=1.0`)."""
    p.add_argument("--data", required=True, help=data_help)
    p.add_argument("--out", required=True, help="output directory; rerunning the same command resumes there")
    p.add_argument("--split", default="train", help="training split inside a QMSum folder (default train)")
    p.add_argument("--val-split", default="val", help="validation split (default val), or none")
    p.add_argument("--val-data", default=None, help="validation data if not --data")
    p.add_argument("--max-input", type=int, default=16384, help="document tokens read at most (default %(default)s)")
    p.add_argument("--max-target", type=int, default=256, help="summary tokens learned at most (default %(default)s)")
    p.add_argument("--epochs", type=float, default=10.0, help="passes over the training examples (default %(default)s)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after N optimizer steps")
    p.add_argument("--batch-size", type=int, default=1, help="examples per forward pass (default %(default)s)")
    p.add_argument("--grad-accum", type=int, default=1, help="forward passes per optimizer step (default %(default)s)")
    p.add_argument("--lr", type=float, default=5e-6, help="peak learning rate (default %(default)s)")
    p.add_argument("--warmup", type=float, default=0.0, help="fraction of steps with a rising learning rate (default %(default)s)")
    p.add_argument("--label-smoothing", type=float, default=0.1, help="label smoothing (default %(default)s)")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32"), help="auto: bf16 mixed precision on a GPU that has it")
    p.add_argument("--log-steps", type=int, default=10, help="loss shown every N steps (default %(default)s)")
    p.add_argument("--eval-steps", type=int, default=500, help="validate every N steps, and at the end (default %(default)s)")
    p.add_argument("--save-steps", type=int, default=200, help="checkpoint every N steps (default %(default)s)")
    p.add_argument("--val-limit", type=int, default=50, help="validation examples, whole documents drawn at random; 0 = all")
    p.add_argument("--beams", type=int, default=4, help="beam size of validation decoding (default %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="summary length limit in validation (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed: initialisation, data order, sampling")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(**defaults)


def trainer_fields(args: argparse.Namespace) -> dict[str, Any]:
    """`Seq2SeqTrainingConfig` fields from `add_trainer_arguments` options (paths made absolute)."""
    data = Path(args.data).resolve()
    val_data = Path(args.val_data).resolve() if args.val_data else None
    val_split = None if args.val_split.lower() == "none" else args.val_split
    if val_split and data.is_file() and (val_data or data) == data:
        raise QfsumError("validation would read the training file: give --val-data FILE or --val-split none")
    return dict(
        data=str(data), out=args.out, split=args.split, val_split=val_split, val_data=str(val_data) if val_data else None,
        max_input=args.max_input, max_target=args.max_target, epochs=args.epochs, max_steps=args.max_steps,
        batch_size=args.batch_size, grad_accum=args.grad_accum, lr=args.lr, warmup=args.warmup,
        label_smoothing=args.label_smoothing, dtype=args.dtype, log_steps=args.log_steps, eval_steps=args.eval_steps,
        save_steps=args.save_steps, val_limit=args.val_limit or None, num_beams=args.beams,
        max_new_tokens=args.max_new_tokens, seed=args.seed,
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `qfsum train seq2seq`."""
    p.add_argument("--arch", required=True, help="segenc (windows fused in the decoder), led (global attention on "
                   "the query) or plain (query + document cut at the model's limit)")
    p.add_argument("--base", required=True, help="starting encoder-decoder: local directory or hub id (facebook/bart-large)")
    p.add_argument("--init", default=None, help="start from this fine-tuned checkpoint (e.g. trained on WikiSum)")
    p.add_argument("--segment-length", type=int, default=512, help="segenc: tokens per window, query included (default 512)")
    p.add_argument("--disjoint", action="store_true", help="segenc: windows without overlap (default: 50 %% overlap)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay")
    p.add_argument("--grad-checkpointing", action="store_true", help="recompute activations: less memory, slower")
    add_trainer_arguments(p)


def run_training(config: Any, args: argparse.Namespace, model: Any = None, label: str | None = None) -> dict[str, Any]:
    """Train (or resume) `config` as the command line asked, and print where the model went and how it scored.

    `model`: a model built by the caller (else the trainer builds `config.arch`); `label` names the run in the summary.
    """
    import shlex

    from ..common.runs import took
    from .train import train_seq2seq

    try:
        run = train_seq2seq(config, model=model, progress=not args.no_progress, command="qfsum " + shlex.join(args.argv))
    except KeyboardInterrupt:
        print("qfsum: rerun the same command to resume from the last checkpoint", file=sys.stderr)
        raise
    if run.get("reported"):
        print(f"{config.out}: this run is already trained; showing its results (remove the folder to retrain)")
    losses = run.get("train_loss") or []
    loss = f", loss {losses[0]['loss']:.3f} -> {losses[-1]['loss']:.3f}" if len(losses) > 1 else ""
    print(f"{label or config.arch}: {run['step']} steps on {run['data']['examples']} examples in {took(run['seconds'])}{loss}")
    best = run.get("best")
    if best:
        print(f"best on validation (step {best['step']}): " + "  ".join(
            f"{k} {best[k]:.2f}" for k in ("rouge1", "rouge2", "rougeLsum", "rouge_mean")))
    print(f"wrote {config.out}/ (model, pipeline.json, README.md, qfsum_training.json); "
          f"use it with: qfsum evaluate --pipeline {config.out} ...")
    return run


def train(args: argparse.Namespace) -> None:
    """`qfsum train seq2seq`."""
    from .train import Seq2SeqTrainingConfig

    config = Seq2SeqTrainingConfig(
        arch=args.arch, base=args.base, init=args.init, segment_length=args.segment_length, overlap=not args.disjoint,
        weight_decay=args.weight_decay, grad_checkpointing=args.grad_checkpointing, **trainer_fields(args),
    )
    run_training(config, args)
