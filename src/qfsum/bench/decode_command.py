"""`qfsum bench decode`: its options and entry point, light at import (the benchmark itself, `decode`,
loads torch when the command runs)."""

from __future__ import annotations

import argparse

from ..errors import QfsumError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `qfsum bench decode`."""
    p.add_argument("--data", required=True, help="QMSum folder, .jsonl data set, or task file")
    p.add_argument("--split", default="val", help="split of a QMSum folder (default val)")
    p.add_argument("--source", default="spans", help="passages: spans, pipeline:NAME or document (default spans)")
    p.add_argument("--model", default="smollm2", help="model: packaged name, directory, hub id or LoRA adapter")
    p.add_argument("--limit", type=int, default=100, help="prompts (default %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=120, help="answer length limit (default %(default)s)")
    p.add_argument("--max-draft", type=int, default=12, help="draft tokens verified per step (default %(default)s)")
    p.add_argument("--ngram", type=int, default=3, help="longest prompt-lookup match (default %(default)s)")
    p.add_argument("--batch-sizes", default="1,4,16,64", help="batched throughput at these sizes (default %(default)s)")
    p.add_argument("--dtype", default="auto", help="auto (bf16 where native), float32, bfloat16")
    p.add_argument("--out", default=None, help="folder for decode.json (default runs/bench-decode)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=bench_decode)


def bench_decode(args: argparse.Namespace) -> None:
    """Run `qfsum bench decode`: print each row as it is measured, then the table, and save the result."""
    from ..writers.lookahead import LookaheadConfig
    from .decode import (
        DecodeBenchConfig,
        format_table,
        run_decode_bench,
        write_result,
    )

    try:
        sizes = tuple(int(s) for s in args.batch_sizes.split(",") if s.strip())
    except ValueError:
        raise QfsumError(f"--batch-sizes must be numbers separated by commas, got '{args.batch_sizes}'") from None
    if args.limit < 1 or args.max_new_tokens < 1 or any(s < 1 for s in sizes):
        raise QfsumError("--limit, --max-new-tokens and batch sizes must be >= 1")
    config = DecodeBenchConfig(data=args.data, split=args.split, source=args.source, model=args.model, limit=args.limit,
                               max_new_tokens=args.max_new_tokens, batch_sizes=sizes, dtype=args.dtype,
                               lookahead=LookaheadConfig(max_draft=args.max_draft, ngram=args.ngram))
    def show(row: dict) -> None:
        print(f"{row['method']} x{row['batch']}: {row['seconds']:.1f} s, {row['tokens']} tokens, "
              f"{row['identical']} answers identical to greedy x1", flush=True)

    result = run_decode_bench(config, progress=not args.no_progress, on_row=show)
    print(format_table(result))
    print(f"wrote {write_result(result, args.out or 'runs/bench-decode')}")
