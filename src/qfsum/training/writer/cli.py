"""`qfsum train sft|distill|dpo|export`: the command-line face of the causal writer's training (light
at import; torch and the trainers load when a command runs)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from ...errors import QfsumError


def _common(p: argparse.ArgumentParser, base_flag: str, base_help: str, base_default: str | None, lr: float) -> None:
    """Options every real-time training command shares."""
    p.add_argument(base_flag, dest="base", default=base_default, required=base_default is None, help=base_help)
    p.add_argument("--data", required=True, help="QMSum folder, .jsonl data set, or task file (id, query, passage, target)")
    p.add_argument("--out", required=True, help="output directory; rerunning the same command resumes there")
    p.add_argument("--split", default="train", help="training split of a QMSum folder (default train)")
    p.add_argument("--val-data", default=None, help="validation data if not --data")
    p.add_argument("--val-split", default="val", help="validation split (default val), or none")
    p.add_argument("--source", default="spans",
                   help="passages: spans (gold evidence; specific queries), pipeline:NAME (its evidence), document")
    p.add_argument("--passage-tokens", type=int, default=768, help="budget of pipeline: and document passages")
    p.add_argument("--limit", type=int, default=None, help="training examples at most (the first N)")
    p.add_argument("--full", action="store_true", help="fine-tune every weight instead of LoRA adapters")
    p.add_argument("--lora-r", type=int, default=16, help="LoRA rank (default %(default)s)")
    p.add_argument("--lora-alpha", type=int, default=32, help="LoRA alpha (default %(default)s)")
    p.add_argument("--epochs", type=float, default=1.0, help="passes over the training rows (default %(default)s)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after N optimizer steps")
    p.add_argument("--batch-size", type=int, default=4, help="rows per step (default %(default)s)")
    p.add_argument("--lr", type=float, default=lr, help="peak learning rate (default %(default)s)")
    p.add_argument("--warmup", type=float, default=0.05, help="fraction of steps with a rising learning rate")
    p.add_argument("--max-prompt", type=int, default=1024, help="prompt tokens (default %(default)s)")
    p.add_argument("--max-target", type=int, default=256, help="answer tokens learned at most (default %(default)s)")
    p.add_argument("--eval-steps", type=int, default=100, help="validate every N steps, and at the end")
    p.add_argument("--save-steps", type=int, default=50, help="checkpoint every N steps")
    p.add_argument("--val-limit", type=int, default=30, help="validation examples (the first N); 0 = all")
    p.add_argument("--val-max-new-tokens", type=int, default=120, help="answer length in validation")
    p.add_argument("--dtype", default="float32", choices=("float32", "auto"), help="auto: bf16 autocast where native")
    p.add_argument("--seed", type=int, default=0, help="random seed: initialisation, data order, sampling")
    p.add_argument("--gradient-checkpointing", action="store_true",
                   help="recompute activations in the backward pass: much less memory, about a third more time")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_sft_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `qfsum train sft`."""
    _common(p, "--base", "starting model: smollm2, a directory, hub id, or a LoRA adapter (a new adapter is "
                         "trained on top of it) (default smollm2)", "smollm2", 2e-4)
    p.set_defaults(func=sft)


def add_distill_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `qfsum train distill`."""
    _common(p, "--student", "student: smollm2, a directory, hub id, or a LoRA adapter such as smollm2-qmsum-windows "
                            "(a new adapter is trained on top of it) (default smollm2)", "smollm2", 2e-4)
    p.add_argument("--teacher", required=True, help="teacher: a causal LM (name, directory, hub id) or a pipeline")
    p.add_argument("--mode", default="sequence", choices=("sequence", "token", "both"),
                   help="sequence: train on the teacher's answers; token: KL to its next-token distributions; both")
    p.add_argument("--temperature", type=float, default=2.0, help="softening of both distributions (token level)")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the KL term against the label loss")
    p.add_argument("--teacher-max-new-tokens", type=int, default=120, help="length of the teacher's answers")
    p.add_argument("--teacher-cache", default=None,
                   help="JSONL file of the teacher's answers, appended to as each is written and reused by any run "
                        "(default OUT/teacher.jsonl); keep it to resume across sessions")
    p.add_argument("--min-faithfulness", type=float, default=0.0,
                   help="leave out teacher answers less faithful to their passage (0-1: mean of supported-sentence "
                        "share and number and name precision; default 0, keep all)")
    p.add_argument("--with-references", action="store_true", help="train on the references too, beside the teacher's answers")
    p.add_argument("--teacher-only", action="store_true",
                   help="only write the teacher's answers (resumable, with progress and ETA); train nothing")
    p.set_defaults(func=distill)


def add_dpo_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `qfsum train dpo`."""
    _common(p, "--model", "the model to improve, e.g. an SFT output directory", None, 5e-5)
    p.add_argument("--beta", type=float, default=0.1, help="DPO temperature (default %(default)s)")
    p.add_argument("--samples", type=int, default=4, help="candidates sampled per prompt (default %(default)s)")
    p.add_argument("--sample-temperature", type=float, default=0.8, help="sampling temperature")
    p.add_argument("--top-p", type=float, default=0.95, help="nucleus sampling")
    p.add_argument("--max-new-tokens", type=int, default=120, help="candidate length")
    p.add_argument("--reward", default="rouge", help="rouge (against the reference), faithful (ROUGE plus the faithfulness metrics against the passage; the chosen answer is never the less faithful), passage (ROUGE-2 precision against the passage), or module:function")
    p.set_defaults(func=dpo)


def _config(args: argparse.Namespace) -> Any:
    from .sft import TrainConfig

    data = Path(args.data).resolve()
    val_split = None if args.val_split.lower() == "none" else args.val_split
    val_data = Path(args.val_data).resolve() if args.val_data else None
    if val_split and data.is_file() and (val_data or data) == data:
        raise QfsumError("validation would read the training file: give --val-data FILE or --val-split none")
    if args.limit is not None and args.limit < 1:
        raise QfsumError("--limit must be >= 1")
    return TrainConfig(
        base=args.base, data=str(data), out=args.out, split=None if data.is_file() else args.split,
        val_data=str(val_data) if val_data else None, val_split=val_split, source=args.source,
        passage_tokens=args.passage_tokens, max_prompt=args.max_prompt, max_target=args.max_target, limit=args.limit,
        lora=not args.full, lora_r=args.lora_r, lora_alpha=args.lora_alpha, epochs=args.epochs, max_steps=args.max_steps,
        batch_size=args.batch_size, lr=args.lr, warmup=args.warmup, eval_steps=args.eval_steps,
        save_steps=args.save_steps, val_limit=args.val_limit or None, val_max_new_tokens=args.val_max_new_tokens,
        dtype=args.dtype, seed=args.seed, gradient_checkpointing=args.gradient_checkpointing,
    )


def _report(run: dict[str, Any], out: str) -> None:
    from ..common.runs import took

    if run.get("kind") == "teacher":
        print(f"teacher: {run['written']} answers written now, {run['examples']} in all, in {run['cache']}; "
              f"{run['kept']} kept ({run['dropped_empty']} empty, {run['dropped_unfaithful']} under the faithfulness bar)")
        return
    if run.get("reported"):
        print(f"{out}: this run is already trained; showing its results (remove the folder to retrain)")
    print(f"{run['kind']}: {run['step']} steps on {run['data']['rows']} rows in {took(run['seconds'])}")
    if best := run.get("best"):
        print(f"best on validation (step {best['step']}): " + "  ".join(
            f"{k} {best[k]:.2f}" for k in ("rouge1", "rouge2", "rougeLsum")))
    print(f"wrote {out}/ ({run.get('size_mb', '?')} MB of weights, README.md, qfsum_training.json)")


def _run(train: Any, args: argparse.Namespace, *extra: Any) -> None:
    config = _config(args)
    command = "qfsum " + shlex.join(args.argv)
    try:
        run = train(config, *extra, progress=not args.no_progress, command=command)
    except KeyboardInterrupt:
        print("qfsum: rerun the same command to resume from the last checkpoint", file=sys.stderr)
        raise
    _report(run, config.out)


def sft(args: argparse.Namespace) -> None:
    from .sft import train_sft

    _run(train_sft, args)


def distill(args: argparse.Namespace) -> None:
    from .distill import DistillOptions, train_distill

    options = DistillOptions(teacher=args.teacher, mode=args.mode, temperature=args.temperature, alpha=args.alpha,
                             max_new_tokens=args.teacher_max_new_tokens, cache=args.teacher_cache,
                             min_faithfulness=args.min_faithfulness, with_references=args.with_references,
                             teacher_only=args.teacher_only)
    _run(train_distill, args, options)


def dpo(args: argparse.Namespace) -> None:
    from .dpo import DPOOptions, train_dpo

    options = DPOOptions(beta=args.beta, samples=args.samples, temperature=args.sample_temperature, top_p=args.top_p,
                         max_new_tokens=args.max_new_tokens, reward=args.reward)
    _run(train_dpo, args, options)


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `qfsum train export`."""
    p.add_argument("--model", required=True, help="a trained model folder: a LoRA adapter (train sft, distill, dpo) or an extractor (train extractor)")
    p.add_argument("--out", required=True, help="folder to write, e.g. src/qfsum/weights/NAME to ship it")
    from ..export import DTYPES  # light: torch loads when the command runs

    p.add_argument("--dtype", default="float16", choices=DTYPES, help="precision of the copied weights (default %(default)s)")
    p.set_defaults(func=export)


def export(args: argparse.Namespace) -> None:
    from ..export import export_model

    weights = export_model(args.model, args.out, args.dtype)
    print(f"wrote {args.out}/ ({weights.stat().st_size / 2**20:.1f} MB of {args.dtype} weights)")
