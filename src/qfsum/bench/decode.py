"""`qfsum bench decode`: lookahead decoding against plain greedy decoding on task prompts.

One run, same prompts, same model: greedy with `model.generate` (one request at a time), then
lookahead one at a time (speedup, identical outputs), then lookahead and greedy on batches of
several requests (throughput). Every output is checked against the one-at-a-time greedy output.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..writers.lookahead import DecodeStats, LookaheadConfig, lookahead_generate


@dataclass
class DecodeBenchConfig:
    """What `qfsum bench decode` runs."""

    data: str  # QMSum folder, JSONL data set or task file
    split: str | None = "val"
    source: str = "spans"  # passages: spans | document | pipeline:NAME (see training.writer.taskdata)
    model: str = "smollm2"  # packaged name, directory, hub id or LoRA adapter directory
    limit: int = 100  # prompts
    max_new_tokens: int = 120
    prompt_tokens: int = 1024  # prompt budget, as the default pipeline's writer
    lookahead: LookaheadConfig = field(default_factory=LookaheadConfig)
    batch_sizes: tuple[int, ...] = (1, 4, 16, 64)
    dtype: str = "auto"  # bf16 where native: verifying 16 tokens then costs about one token's forward pass


def _until_eos(row: Sequence[int], eos: set[int]) -> list[int]:
    out = []
    for token in row:
        out.append(int(token))
        if token in eos:
            break
    return out


def _greedy(model: Any, prompts: Sequence[list[int]], max_new_tokens: int, pad: int, eos: set[int]) -> list[list[int]]:
    """`model.generate` greedy on left-padded prompts; new tokens up to and including EOS."""
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=model.device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=model.device)
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                             num_beams=1, pad_token_id=pad)
    return [_until_eos(row, eos) for row in out[:, width:].tolist()]


def _timed(prompts: list[list[int]], batch: int, decode: Callable[[list[list[int]]], list[list[int]]], label: str,
           progress: bool) -> tuple[list[list[int]], float]:
    outputs: list[list[int]] = []
    started = time.perf_counter()
    for i in tqdm(range(0, len(prompts), batch), desc=label, unit="batch", disable=not progress, leave=False):
        outputs.extend(decode(prompts[i : i + batch]))
    return outputs, time.perf_counter() - started


def run_decode_bench(config: DecodeBenchConfig, progress: bool = True,
                     on_row: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the rows of its table and the settings. `on_row` sees each row as soon
    as it is measured (a long run shows its figures as it goes)."""
    from ..assets import load_generator
    from ..training.writer.taskdata import build_task_examples
    from ..writers.prompt import fitted_prompt_ids

    model, tokenizer = load_generator(config.model, config.dtype)
    examples = build_task_examples(config.data, config.split, config.source, tokenizer,
                                   budget=config.prompt_tokens, limit=config.limit, progress=progress)
    prompts = [fitted_prompt_ids(tokenizer, e.query, e.passage, config.prompt_tokens) for e in examples]
    eos = {int(tokenizer.eos_token_id)}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    n = config.max_new_tokens

    def greedy(batch: list[list[int]]) -> list[list[int]]:
        return _greedy(model, batch, n, pad, eos)

    stats = {batch: DecodeStats() for batch in config.batch_sizes}

    def lookahead_for(batch_size: int) -> Callable[[list[list[int]]], list[list[int]]]:
        def lookahead(batch: list[list[int]]) -> list[list[int]]:
            return lookahead_generate(model, batch, n, config.lookahead, pad, sorted(eos), stats=stats[batch_size])
        return lookahead

    reference, greedy_seconds = _timed(prompts, 1, greedy, "greedy", progress)
    tokens = sum(len(r) for r in reference)
    rows = [{"method": "greedy", "batch": 1, "seconds": greedy_seconds, "tokens": tokens, "identical": len(prompts)}]
    if on_row:
        on_row(rows[0])
    for batch in config.batch_sizes:
        for method, decode in (("lookahead", lookahead_for(batch)), ("greedy", greedy)):
            if method == "greedy" and batch == 1:
                continue  # the reference itself
            outputs, seconds = _timed(prompts, batch, decode, f"{method} x{batch}", progress)
            same = sum(a == b for a, b in zip(outputs, reference))
            rows.append({"method": method, "batch": batch, "seconds": seconds,
                         "tokens": sum(len(o) for o in outputs), "identical": same})
            if on_row:
                on_row(rows[-1])
    for row in rows:
        row["tokens_per_s"] = row["tokens"] / row["seconds"]
        row["speedup"] = greedy_seconds / row["seconds"]
    one = stats.get(1)
    if one is not None:  # one request at a time: the prompt-reading time is the same for both methods
        for row in rows:
            if row["batch"] == 1:
                row["decode_seconds"] = row["seconds"] - one.prefill_seconds
                row["decode_speedup"] = (greedy_seconds - one.prefill_seconds) / row["decode_seconds"]
    main = one or next(iter(stats.values()), DecodeStats())
    return {
        "config": {**asdict(config), "batch_sizes": list(config.batch_sizes)},
        "prompts": len(prompts),
        "mean_prompt_tokens": sum(map(len, prompts)) / len(prompts),
        "acceptance": main.acceptance,
        "tokens_per_step": main.tokens / max(main.steps, 1),
        "prefill_seconds": one.prefill_seconds if one else None,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "rows": rows,
    }


def format_table(result: dict[str, Any]) -> str:
    """The benchmark's rows as a fixed-width table."""
    lines = [f"{result['prompts']} prompts ({result['mean_prompt_tokens']:.0f} tokens on average), "
             f"max {result['config']['max_new_tokens']} new tokens; lookahead drafts accepted "
             f"{100 * result['acceptance']:.0f} %, {result['tokens_per_step']:.2f} tokens per forward pass"]
    if result.get("prefill_seconds") is not None:
        lines.append(f"reading the prompts one at a time took {result['prefill_seconds']:.1f} s of every batch-1 run; "
                     "'decode' leaves it out")
    lines.append(f"{'method':<10}{'batch':>6}{'seconds':>10}{'tokens':>8}{'tok/s':>9}{'speedup':>9}{'decode':>9}"
                 f"{'identical':>11}")
    for r in result["rows"]:
        decode = f"{r['decode_speedup']:>8.2f}x" if "decode_speedup" in r else f"{'-':>9}"
        lines.append(f"{r['method']:<10}{r['batch']:>6}{r['seconds']:>10.1f}{r['tokens']:>8}{r['tokens_per_s']:>9.1f}"
                     f"{r['speedup']:>8.2f}x{decode}{r['identical']:>7}/{result['prompts']}")
    return "\n".join(lines)


def write_result(result: dict[str, Any], out: str | Path) -> Path:
    """Save the result as `out/decode.json`."""
    path = Path(out) / "decode.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
