"""`qfsum bench task`: ROUGE of a causal writer model's greedy answers on (query, passage) task
examples, the short-passage task (gold spans) or the long one (a pipeline's evidence). Light at
import: torch and the model load when the command runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import QfsumError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `qfsum bench task`."""
    p.add_argument("--model", default="smollm2", help="model: packaged name, directory, hub id or LoRA adapter")
    p.add_argument("--data", required=True, help="QMSum folder, .jsonl data set, or task file")
    p.add_argument("--split", default="val", help="split of a QMSum folder (default val)")
    p.add_argument("--source", default="spans", help="passages: spans (short task), pipeline:default (long task), document")
    p.add_argument("--passage-tokens", type=int, default=768, help="budget of pipeline: and document passages")
    p.add_argument("--limit", type=int, default=None, help="the first N examples")
    p.add_argument("--max-prompt", type=int, default=1024, help="prompt tokens (default %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=120, help="answer length limit (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="prompts decoded together (default %(default)s)")
    p.add_argument("--no-repeat-ngram", type=int, default=3,
                   help="no n-gram twice within an answer, as the generative writer (0: off; default %(default)s)")
    p.add_argument("--dtype", default="auto", help="auto (bf16 where native), float32, bfloat16")
    p.add_argument("--out", default=None, help="folder for metrics.json and predictions.jsonl (default runs/task-...)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=bench_task)


def bench_task(args: argparse.Namespace) -> None:
    """ROUGE of a model's greedy answers on task examples (the short- or long-passage task)."""
    import json
    import time

    from ..assets import load_generator
    from ..evaluation.rouge import ROUGE_KEYS
    from ..training.writer.sft import generate_answers, rouge_of
    from ..training.writer.taskdata import build_task_examples

    if (args.limit is not None and args.limit < 1) or args.batch_size < 1 or args.no_repeat_ngram < 0:
        raise QfsumError("--limit and --batch-size must be >= 1, --no-repeat-ngram >= 0")
    model, tokenizer = load_generator(args.model, args.dtype)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    examples = build_task_examples(args.data, args.split, args.source, tokenizer, args.passage_tokens, args.limit,
                                   progress=not args.no_progress)
    examples = [e for e in examples if e.target]
    started = time.perf_counter()
    answers = generate_answers(model, tokenizer, examples, args.max_prompt, args.max_new_tokens, args.batch_size,
                               progress=not args.no_progress, no_repeat_ngram_size=args.no_repeat_ngram)
    metrics = {**rouge_of(answers, examples), "n": len(examples), "seconds": time.perf_counter() - started}
    out = Path(args.out or f"runs/task-{Path(args.model).name}-{args.source.replace(':', '-')}-{args.split}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({**metrics, "model": args.model, "source": args.source}, indent=2) + "\n")
    (out / "predictions.jsonl").write_text("".join(
        json.dumps({"id": e.id, "query": e.query, "prediction": a, "reference": e.target}) + "\n"
        for e, a in zip(examples, answers)))
    print("".join(f"{k:>10}" for k in ROUGE_KEYS) + f"{'n':>6}{'seconds':>10}")
    print("".join(f"{metrics[k]:>10.2f}" for k in ROUGE_KEYS) + f"{metrics['n']:>6}{metrics['seconds']:>10.1f}")
    print(f"wrote {out}/metrics.json and {out}/predictions.jsonl")
