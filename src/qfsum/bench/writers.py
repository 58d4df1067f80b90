"""`qfsum bench writers`: the writer bake-off. Candidate causal LMs answer the same QMSum prompts,
zero-shot and (with `--sft-steps K`) after the same short LoRA SFT, and one table puts their ROUGE,
faithfulness, prefill and decode speed and peak memory side by side.

Same prompts for everyone: the evidence is chosen once, by a pipeline's segmenter and scorer
(`default`'s by default) under a budget counted with that pipeline's segmenter tokenizer (MiniLM for
`default`), and saved to `prompts.jsonl`; each candidate then builds its prompt from that evidence with
the writer's own prompt code (`writers.prompt`), fitted to `max_prompt` of its own tokens.

Decoding is the generative writer's, one prompt at a time: greedy, the answer-only n-gram ban and
grounded numbers (`writers.grounded`), answers cut to whole sentences. It is written out as a loop
with the key/value cache so the prompt's forward pass (prefill) and the token-by-token decode are
timed apart; lookahead decoding would change the decode speed, not the answers.

Peak memory is the candidate process's `ru_maxrss`: each candidate runs in a fresh subprocess
(`python -m qfsum.bench.writers --child JOB`), so no model's memory counts against another. With
`isolate=False` everything runs in this process and memory is not reported.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import QfsumError

PROMPTS_FILE, RESULT_FILE, TABLE_FILE = "prompts.jsonl", "writers.json", "writers.md"
COLUMNS = (  # (header, row key, format): the markdown table
    ("writer", "candidate", "{}"), ("variant", "variant", "{}"), ("n", "n", "{}"),
    ("R-1", "rouge1", "{:.2f}"), ("R-2", "rouge2", "{:.2f}"), ("R-Lsum", "rougeLsum", "{:.2f}"),
    ("numbers", "number_precision", "{:.3f}"), ("names", "name_precision", "{:.3f}"),
    ("supported", "supported_sentences", "{:.3f}"), ("prompt tok", "prompt_tokens", "{:.0f}"),
    ("prefill tok/s", "prefill_tokens_per_s", "{:.1f}"), ("decode tok/s", "decode_tokens_per_s", "{:.1f}"),
    ("s/answer", "seconds_per_answer", "{:.2f}"), ("peak RSS MB", "peak_rss_mb", "{:.0f}"),
)


@dataclass
class WritersBenchConfig:
    """One bake-off run."""

    candidates: tuple[str, ...]  # packaged names, directories or hub ids of causal LMs
    data: str  # QMSum folder or JSONL data set
    split: str | None = "val"
    limit: int = 20  # the first N examples with a reference
    pipeline: str = "default"  # whose segmenter + scorer choose the evidence
    evidence_tokens: int = 768  # evidence budget, in the pipeline's segmenter tokens
    max_prompt: int = 1024  # each candidate's prompt, in its own tokens
    max_new_tokens: int = 120
    no_repeat_ngram: int = 3  # as the generative writer
    grounded_numbers: bool = True  # as `default`'s writer
    dtype: str = "auto"  # bf16 weights where the CPU has native bf16
    threads: int | None = None  # torch threads (None: qfsum.threads' choice)
    sft_steps: int = 0  # 0: zero-shot only; K: also after K LoRA SFT steps
    sft_data: str | None = None  # training data (None: `data`, split train)
    sft_batch_size: int = 4
    sft_lr: float = 2e-4
    isolate: bool = True  # each candidate in its own process (peak memory per candidate)
    out: str = "runs/bench-writers"

    def __post_init__(self) -> None:
        if not self.candidates or any(not c.strip() for c in self.candidates):
            raise QfsumError("--candidates needs at least one model name, separated by commas")
        if self.limit < 1 or self.sft_steps < 0 or self.sft_batch_size < 1 or self.no_repeat_ngram < 0:
            raise QfsumError("--limit and --sft-batch-size must be >= 1, --sft-steps and --no-repeat-ngram >= 0")
        if min(self.evidence_tokens, self.max_prompt, self.max_new_tokens) < 1:
            raise QfsumError("--evidence-tokens, --max-prompt and --max-new-tokens must be >= 1")
        if not (self.sft_lr > 0 and math.isfinite(self.sft_lr)):
            raise QfsumError(f"--sft-lr must be a positive number, got {self.sft_lr}")


# -- the prompts --------------------------------------------------------------------------------------


def build_prompts(config: WritersBenchConfig, progress: bool = False) -> list[dict[str, Any]]:
    """The shared prompts: id, query, evidence (segment texts, document order), document, references."""
    from tqdm.auto import tqdm

    from ..assets import load_tokenizer
    from ..budget import TokenizerCounter, select_under_budget
    from ..pipeline import Pipeline, load_config
    from ..readers import read_examples
    from ..writers import WriterConfig

    examples = [e for e in read_examples(config.data, config.split) if e.references][: config.limit]
    if not examples:
        raise QfsumError(f"{config.data}: no example with a reference answer")
    pipeline_config = load_config(config.pipeline)
    pipeline_config.writer = WriterConfig(kind="extractive")  # only its ranking is used: no generator loads
    pipeline = Pipeline(pipeline_config)
    counter = TokenizerCounter(load_tokenizer(pipeline_config.segmenter.tokenizer or "minilm"))
    prompts = []
    for example in tqdm(examples, desc=f"evidence ({config.pipeline})", unit="ex", disable=not progress):
        chosen = select_under_budget(pipeline.rank(example.document, example.query), config.evidence_tokens, counter,
                                     cut_last=True)
        prompts.append({"id": example.id, "query": example.query, "evidence": [e.segment.text for e in chosen],
                        "document": example.document.text, "references": example.references})
    return prompts


# -- one candidate ------------------------------------------------------------------------------------


def greedy_timed(model: Any, prompt: list[int], max_new_tokens: int, eos: set[int],
                 processors: Sequence[Callable[[Any, Any], Any]] = ()) -> tuple[list[int], float, float]:
    """Greedy decoding of one prompt with the key/value cache: (new tokens, prefill seconds, decode
    seconds). Prefill is the prompt's one forward pass; decode is everything after it: choosing each
    token (the logits processors included) and the one-token passes between."""
    import torch

    from ..models.kv_cache import cache_kwarg, output_cache

    def pick(ids: torch.Tensor, logits: torch.Tensor) -> int:
        scores = logits.float()
        for processor in processors:
            scores = processor(ids, scores)
        return int(scores.argmax(-1))

    with torch.inference_mode():
        ids = torch.tensor([prompt], device=model.device)  # (1, T)
        started = time.perf_counter()
        output = model(input_ids=ids, use_cache=True)
        prefill = time.perf_counter() - started
        new: list[int] = []
        started = time.perf_counter()
        token = pick(ids, output.logits[:, -1])
        while token not in eos and len(new) < max_new_tokens:
            new.append(token)
            ids = torch.cat([ids, ids.new_tensor([[token]])], dim=1)
            if len(new) == max_new_tokens:
                break
            output = model(input_ids=ids[:, -1:], use_cache=True, **cache_kwarg(output_cache(output)))
            token = pick(ids, output.logits[:, -1])
        return new, prefill, time.perf_counter() - started


def measure(candidate: str, prompts: Sequence[dict[str, Any]], config: WritersBenchConfig,
            progress: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the candidate's row of the table, its predictions) on the prompts, this process."""
    import torch
    from tqdm.auto import tqdm

    from ..assets import load_generator_uncached
    from ..evaluation.faithfulness import faithfulness, mean_defined
    from ..evaluation.rouge import ROUGE_KEYS, mean_scores, rouge
    from ..text import complete_sentences
    from ..writers.grounded import grounding_processors
    from ..writers.lookahead import writer_processors
    from ..writers.prompt import fitted_prompt_ids

    model, tokenizer = load_generator_uncached(candidate, config.dtype)
    if model.config.is_encoder_decoder:
        raise QfsumError(f"'{candidate}' is a seq2seq model; the bake-off compares causal writers")
    eos = {int(tokenizer.eos_token_id)} if tokenizer.eos_token_id is not None else set()
    generation_eos = model.generation_config.eos_token_id
    eos |= set(generation_eos if isinstance(generation_eos, list) else [generation_eos] if generation_eos is not None else [])
    rows, prefill, decode, prompt_tokens, new_tokens = [], 0.0, 0.0, 0, 0
    for item in tqdm(prompts, desc=candidate, unit="answer", disable=not progress):
        ids = fitted_prompt_ids(tokenizer, item["query"], "\n".join(item["evidence"]), config.max_prompt)
        processors = (writer_processors(config.no_repeat_ngram, prompt_length=len(ids))
                      + grounding_processors(tokenizer, config.grounded_numbers, False, len(ids)))
        # built before the clock starts: grounded decoding reads the whole vocabulary once per tokenizer
        new, seconds_prefill, seconds_decode = greedy_timed(model, ids, config.max_new_tokens, eos, processors)
        answer = complete_sentences(tokenizer.decode(new, skip_special_tokens=True).strip())
        prefill, decode = prefill + seconds_prefill, decode + seconds_decode
        prompt_tokens, new_tokens = prompt_tokens + len(ids), new_tokens + len(new)
        rows.append({"id": item["id"], "query": item["query"], "prediction": answer, "references": item["references"],
                     "prompt_tokens": len(ids), "new_tokens": len(new),
                     **rouge(answer, item["references"]),
                     **faithfulness(answer, item["evidence"], item["document"])})
    n = len(rows)
    row = {
        "model": candidate, "n": n, **mean_scores([{k: r[k] for k in ROUGE_KEYS} for r in rows]), **mean_defined(rows),
        "prompt_tokens": prompt_tokens / n, "new_tokens": new_tokens / n,
        "prefill_tokens_per_s": prompt_tokens / prefill if prefill else None,
        "decode_tokens_per_s": new_tokens / decode if new_tokens and decode else None,
        "seconds_per_answer": (prefill + decode) / n,
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."), "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    return row, rows


def sft_adapter(candidate: str, config: WritersBenchConfig, out: Path, progress: bool = False) -> str:
    """Train `config.sft_steps` LoRA steps of the project's SFT (training.writer.sft) on `candidate`,
    on the pipeline's evidence of the training data; the adapter folder (resumed if already done)."""
    from ..training.writer.sft import TrainConfig, train_sft

    data = config.sft_data or config.data
    train = TrainConfig(base=candidate, data=data, split="train" if Path(data).is_dir() else None,
                        out=str(out), val_split=None, source=f"pipeline:{config.pipeline}",
                        passage_tokens=config.evidence_tokens, max_prompt=config.max_prompt,
                        limit=config.sft_steps * config.sft_batch_size, max_steps=config.sft_steps,
                        batch_size=config.sft_batch_size, lr=config.sft_lr, log_steps=1,
                        save_steps=config.sft_steps, eval_steps=config.sft_steps,
                        # the bench's precision: bf16 (autocast) where it decodes in bf16, else float32
                        dtype="float32" if config.dtype == "float32" else "auto")
    train_sft(train, progress=progress, command=f"qfsum bench writers (sft of {candidate})")
    return str(out)


# -- running every candidate ---------------------------------------------------------------------------


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name).name or name).strip("-") or "model"


def _run_job(job: dict[str, Any], config: WritersBenchConfig, isolate: bool, progress: bool) -> dict[str, Any]:
    """A job ('sft' or 'measure') in this process, or in a fresh one whose peak RSS is recorded."""
    if not isolate:
        return _do_job(job, config, progress)
    folder = Path(job["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "job.json").write_text(json.dumps({"job": job, "config": asdict(config)}, indent=1) + "\n")
    done = subprocess.run([sys.executable, "-m", "qfsum.bench.writers", "--child", str(folder / "job.json")],
                          capture_output=True, text=True, env=dict(os.environ), check=False)
    (folder / "child.log").write_text(done.stderr)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise QfsumError(f"{job['kind']} of '{job['candidate']}' failed: {lines[-1] if lines else done.returncode}")
    return json.loads((folder / RESULT_FILE).read_text())


def _do_job(job: dict[str, Any], config: WritersBenchConfig, progress: bool) -> dict[str, Any]:
    folder = Path(job["folder"])
    if job["kind"] == "sft":
        return {"model": sft_adapter(job["candidate"], config, Path(job["adapter"]), progress)}
    prompts = [json.loads(line) for line in Path(job["prompts"]).read_text().splitlines() if line.strip()]
    row, predictions = measure(job["model"], prompts, config, progress)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in predictions))
    return {"candidate": job["candidate"], **row}  # the name asked for; `model` is what loaded (an adapter after SFT)


def _child(job_file: str) -> int:
    """`python -m qfsum.bench.writers --child JOB`: one job, its result in the job's folder, its peak RSS added."""
    import resource

    from ..threads import prepare_environment, set_threads

    prepare_environment()
    spec = json.loads(Path(job_file).read_text())
    config = WritersBenchConfig(**{**spec["config"], "candidates": tuple(spec["config"]["candidates"])})
    set_threads(config.threads)
    try:
        result = _do_job(spec["job"], config, progress=False)
    except QfsumError as err:
        print(f"error: {' '.join(str(err).splitlines())}", file=sys.stderr)
        return 2
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    (Path(spec["job"]["folder"]) / RESULT_FILE).write_text(json.dumps(result, indent=1) + "\n")
    return 0


def run_bench(config: WritersBenchConfig, progress: bool = True, on_row: Callable[[dict[str, Any]], None] | None = None
              ) -> dict[str, Any]:
    """The bake-off: prompts once, then every candidate zero-shot (and after SFT); writes
    `prompts.jsonl`, one folder of predictions per row, `writers.json` and `writers.md` under `out`."""
    import platform

    from ..threads import set_threads

    threads = set_threads(config.threads)  # also inherited by the candidates' processes
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    prompts = build_prompts(config, progress)
    prompts_path = out / PROMPTS_FILE
    prompts_path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in prompts))
    rows = []
    for candidate in config.candidates:
        variants = [("zero-shot", candidate)]
        if config.sft_steps:
            name = f"{_slug(candidate)}-sft{config.sft_steps}"
            # the job's own files (job.json, child.log) beside the adapter: training wants its folder to itself
            job = {"kind": "sft", "candidate": candidate, "folder": str(out / f"{name}-job"),
                   "adapter": str(out / f"{name}-adapter")}
            adapter = _run_job(job, config, config.isolate, progress)["model"]
            variants.append((f"sft {config.sft_steps} steps", adapter))
        for variant, model in variants:
            job = {"kind": "measure", "candidate": candidate, "model": model, "prompts": str(prompts_path),
                   "folder": str(out / f"{_slug(candidate)}-{_slug(variant)}")}
            row = {**_run_job(job, config, config.isolate, progress), "variant": variant}
            row.setdefault("peak_rss_mb", None)  # in this process: not measured
            rows.append(row)
            if on_row:
                on_row(row)
    result = {"config": asdict(config), "prompts": len(prompts), "threads": threads,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "rows": rows}
    (out / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n")
    (out / TABLE_FILE).write_text(format_table(result) + "\n")
    return result


def format_table(result: dict[str, Any]) -> str:
    """The rows as one markdown table, with what was run above it."""
    config = result["config"]
    settings = (f"{result['prompts']} prompts of {config['data']} ({config['split']}), evidence of pipeline "
                f"'{config['pipeline']}' under {config['evidence_tokens']} tokens, prompts <= {config['max_prompt']} "
                f"tokens, greedy, <= {config['max_new_tokens']} new tokens, grounded numbers "
                f"{'on' if config['grounded_numbers'] else 'off'}, {result['threads']} torch threads, {result['machine']}.")
    lines = [settings,
             "",
             "| " + " | ".join(h for h, _, _ in COLUMNS) + " |",
             "|" + "|".join(" --- " for _ in COLUMNS) + "|"]
    for row in result["rows"]:
        cells = []
        for _, key, form in COLUMNS:
            value = row.get(key)
            missing = value is None or (isinstance(value, float) and math.isnan(value))
            cells.append("-" if missing else form.format(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- the command ----------------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `qfsum bench writers`."""
    from ..threads import add_threads_argument

    p.add_argument("--candidates", required=True, help=("writers to compare, separated by commas: packaged names "
                   "(smollm2, qwen2.5-coder-0.5b, qwen2.5-coder-1.5b), directories or hub ids"))
    p.add_argument("--data", required=True, help="QMSum folder or JSONL data set")
    p.add_argument("--split", default="val", help="split of a QMSum folder (default %(default)s)")
    p.add_argument("--limit", type=int, default=20, help="the first N examples with a reference (default %(default)s)")
    p.add_argument("--pipeline", default="default", help="whose segmenter and scorer choose the evidence (default %(default)s)")
    p.add_argument("--evidence-tokens", type=int, default=768, help="evidence budget (default %(default)s)")
    p.add_argument("--max-prompt", type=int, default=1024, help="prompt tokens (default %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=120, help="answer length limit (default %(default)s)")
    p.add_argument("--no-grounding", action="store_true", help="let the writers state numbers their evidence does not")
    p.add_argument("--sft-steps", type=int, default=0, help="also compare after K LoRA SFT steps (default 0: zero-shot only)")
    p.add_argument("--sft-data", default=None, help="SFT data (default: --data, split train)")
    p.add_argument("--sft-batch-size", type=int, default=4, help="SFT batch size (default %(default)s)")
    p.add_argument("--dtype", default="auto", help="auto (bf16 where native), float32, bfloat16")
    p.add_argument("--in-process", action="store_true", help="run every candidate in this process (no peak memory)")
    p.add_argument("--out", default="runs/bench-writers", help="folder for the table and predictions (default %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_threads_argument(p)
    p.set_defaults(func=bench_writers)


def bench_writers(args: argparse.Namespace) -> None:
    """Run `qfsum bench writers`: each row as it is measured, then the table."""
    from ..threads import parse_threads

    config = WritersBenchConfig(
        candidates=tuple(c.strip() for c in args.candidates.split(",")), data=args.data, split=args.split,
        limit=args.limit, pipeline=args.pipeline, evidence_tokens=args.evidence_tokens, max_prompt=args.max_prompt,
        max_new_tokens=args.max_new_tokens, grounded_numbers=not args.no_grounding, dtype=args.dtype,
        threads=parse_threads(args.threads), sft_steps=args.sft_steps, sft_data=args.sft_data,
        sft_batch_size=args.sft_batch_size, isolate=not args.in_process, out=args.out)

    def show(row: dict[str, Any]) -> None:
        print(f"{row['candidate']} ({row['variant']}): R-1 {row['rouge1']:.2f}, "
              f"{row['seconds_per_answer']:.2f} s an answer", flush=True)

    result = run_bench(config, progress=not args.no_progress, on_row=show)
    print(format_table(result))
    print(f"wrote {Path(config.out) / TABLE_FILE} and {Path(config.out) / RESULT_FILE}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        sys.exit(_child(sys.argv[2]))
    sys.exit("usage: python -m qfsum.bench.writers --child JOB_FILE (run by `qfsum bench writers`)")
