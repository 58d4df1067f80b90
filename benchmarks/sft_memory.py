"""Memory and time of one SFT step of the writer: logits for every position, answer positions only, checkpointed.

    python benchmarks/sft_memory.py --data runs/distill-qwen15/tasks-train-a454a6f027a6b32a.jsonl --threads 2

Each variant runs in its own process (so its peak RSS is its own): SmolLM2-135M with fresh LoRA
adapters (r 16), bf16 autocast as `--dtype auto` trains, `--steps` forward and backward passes on the
first `--batch-size` rows of a task file, prompts cut to `--max-prompt` tokens as `qfsum train` cuts them.
`full` is the library's loss over every position (`model(**batch).loss`, what `sft_loss` did before
2026-12-07); `answer` is today's `sft_loss`; `checkpointed` is `answer` with `--gradient-checkpointing`
(activations recomputed in the backward pass). Prints a table: peak RSS, seconds a step, the loss, and
the ratios of each to `full`. Nothing else should run meanwhile.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

VARIANTS = ("full", "answer", "checkpointed")


def one_variant(args: argparse.Namespace) -> dict[str, float]:
    from qfsum.threads import set_threads

    set_threads(args.threads)
    import torch

    from qfsum.training.writer.sft import TrainConfig, load_trainable, sft_loss
    from qfsum.training.writer.taskdata import build_task_examples, collate, encode

    config = TrainConfig(base="smollm2", data=args.data, out="/dev/null", max_prompt=args.max_prompt,
                         max_target=args.max_target, gradient_checkpointing=args.variant == "checkpointed")
    model, tokenizer = load_trainable(config)
    examples = build_task_examples(args.data, None, limit=args.batch_size)
    rows = [encode(tokenizer, e, args.max_prompt, args.max_target) for e in examples]
    pad = tokenizer.pad_token_id

    def loss() -> torch.Tensor:
        if args.variant == "full":
            return model(**collate(rows, pad)).loss
        return sft_loss(model, rows, pad)

    seconds, value = [], 0.0
    for _ in range(args.steps + 1):  # the first step warms up and is not timed
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = loss()
        out.backward()
        model.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - started)
        value = out.item()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_rss_mb": peak_mb, "s_per_step": sum(seconds[1:]) / args.steps, "loss": value,
            "tokens": sum(len(r["input_ids"]) for r in rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a task file (id, query, passage, target)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--max-prompt", type=int, default=896)
    parser.add_argument("--max-target", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(one_variant(args)))
        return
    results = {}
    for variant in VARIANTS:
        child = [sys.executable, __file__, *sys.argv[1:], "--variant", variant]
        done = subprocess.run(child, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"error: the {variant} variant failed: {done.stderr.strip().splitlines()[-1:]}")
        results[variant] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{args.batch_size} rows, {results['full']['tokens']} tokens, {args.steps} timed steps, {args.threads} threads")
    print("| loss over | peak RSS MB | s a step (forward + backward) | loss |\n| --- | ---: | ---: | ---: |")
    for variant, r in results.items():
        print(f"| {variant} | {r['peak_rss_mb']:.0f} | {r['s_per_step']:.2f} | {r['loss']:.4f} |")
    full = results["full"]
    for variant in VARIANTS[1:]:
        r = results[variant]
        print(f"{variant} / full: memory {r['peak_rss_mb'] / full['peak_rss_mb']:.2f}x, "
              f"time {r['s_per_step'] / full['s_per_step']:.2f}x")


if __name__ == "__main__":
    main()
