"""Tokens per forward pass of lookahead decoding for several drafting settings.

Counts, not timings: the figure that decides lookahead's speedup once a verify pass costs about as
much as a one-token pass (bf16 on a CPU with native bf16; see docs/realtime.md). bf16 can change an
answer from one setting to the next, so compare settings on the same prompts and read small
differences as noise.

    python benchmarks/lookahead_drafting.py --model runs/rt-sft-long --limit 20
"""

from __future__ import annotations

import argparse

from qfsum.assets import load_generator
from qfsum.writers.lookahead import DecodeStats, LookaheadConfig, lookahead_generate
from qfsum.training.writer.taskdata import build_task_examples
from qfsum.writers.prompt import fitted_prompt_ids

SETTINGS = {
    "default (max_draft 12, ngram 3, pool 8)": {},
    "ngram 5": {"ngram": 5},
    "max_draft 24": {"max_draft": 24},
    "no Jacobi pool": {"pool_size": 0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-qmsum")
    parser.add_argument("--data", default="../shared/data/qmsum")
    parser.add_argument("--split", default="val")
    parser.add_argument("--source", default="spans")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--max-new-tokens", type=int, default=120)
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()

    model, tokenizer = load_generator(args.model, args.dtype)
    examples = build_task_examples(args.data, args.split, args.source, tokenizer, budget=1024, limit=args.limit,
                                   progress=False)
    prompts = [fitted_prompt_ids(tokenizer, e.query, e.passage, 1024) for e in examples]
    eos = tokenizer.eos_token_id
    print(f"{len(prompts)} prompts, {args.model}, {args.dtype}")
    for name, overrides in SETTINGS.items():
        stats = DecodeStats()
        for prompt in prompts:
            lookahead_generate(model, [prompt], args.max_new_tokens, LookaheadConfig(**overrides), eos, [eos], stats=stats)
        passes = stats.steps - len(prompts)  # after each prompt's first pass, which reads it
        print(f"{name:<42} {(stats.tokens - len(prompts)) / passes:.2f} tokens a pass, "
              f"{100 * stats.acceptance:.0f} % of drafted tokens accepted")


if __name__ == "__main__":
    main()
