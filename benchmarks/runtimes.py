"""The generative writer's runtimes on the same prompts: torch fp32 and bf16 against CTranslate2 int8
and float32 and ONNX Runtime GenAI int4 and fp32 (issue 18: a fast CPU runtime for the causal writers).

Usage (on an otherwise idle machine; every figure is only comparable within one run):
    python benchmarks/runtimes.py --data ../shared/data/qmsum --split val --limit 40 --threads 2
    python benchmarks/runtimes.py --limit 1            # smoke check: examples/meeting.txt, one question

What one run does:
- The prompts: the evidence of each question ranked once by `--pipeline`'s segmenter and scorer
  (`default`), then each runtime's writer builds its own prompt from it with the writer's prompt code
  (`GenerativeWriter.prompt`: the same ids for every runtime, the same tokenizer) under the writer's
  1024-token budget. `--data` is a QMSum folder (with `--split`) or a text file, asked `QUESTIONS`.
- Decoding: the writer's own, `--pipeline`'s writer config (`default`: greedy, at most 120 new tokens,
  the answer-only 3-gram ban, grounded numbers and names), with `runtime` and `dtype` set per row.
  torch decodes with `qfsum.bench.writers.greedy_timed` (the bake-off's loop: the prompt's one forward
  pass, then one-token passes with the key/value cache, the writer's processors choosing each token);
  CTranslate2 and ONNX Runtime GenAI with their model's `generate` (`Ct2CausalLM`, `OrtGenaiCausalLM`),
  the writer's path.
- Figures per row: prefill tokens/s (prompt tokens over the time to read the prompt: for CTranslate2
  and ONNX Runtime GenAI, to its first token, which includes choosing it), decode tokens/s (new tokens
  over the rest, the processors and CTranslate2's resumed calls included), seconds per answer, peak
  RSS (VmHWM of a fresh process per row: Python, torch, the model, before the agreement pass below),
  restarts per answer (CTranslate2 calls resumed after the writer's processors overruled it), and against the
  reference row (torch fp32): the share of identical answers and the token agreement (given the
  reference answer so far, the share of its tokens this row would choose next: teacher forcing,
  `qfsum.bench.agreement`).
- Each row first writes one untimed answer (warm-up: lazy set-up, the grounded vocabulary).
- Threads: `--threads` (default: `qfsum.threads`' choice), set before torch loads in every row's
  process; CTranslate2 and ONNX Runtime GenAI use the same count (intra-op threads).
CTranslate2 and ONNX Runtime GenAI conversions are made (or found in the cache) by this process before
any row runs, so no row pays for one. Output: the Markdown table (printed), and `runtimes.json`, `runtimes.md` in `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = {  # row name -> (runtime, dtype)
    "torch-fp32": ("torch", "float32"),
    "torch-bf16": ("torch", "bfloat16"),
    "ct2-int8": ("ctranslate2", "int8"),
    "ct2-fp32": ("ctranslate2", "float32"),
    "ortgenai-int4": ("onnxruntime-genai", "int4"),
    "ortgenai-fp32": ("onnxruntime-genai", "float32"),
}
REFERENCE, BASELINE = "torch-fp32", "torch-bf16"  # answers compared with; speed ratios against
QUESTIONS = (
    "What did the meeting decide about the budget overrun?",
    "When will the reading room close, and what will replace it?",
    "Who owns the next steps?",
    "What was said about the roof?",
    "What did the group disagree about?",
    "Summarize the meeting.",
)


# -- prompts (this process) --------------------------------------------------------------------------


def build_items(data: Path, split: str | None, limit: int, pipeline_name: str) -> list[dict[str, Any]]:
    """Questions with every segment of their document ranked by the pipeline (its writer is not loaded)."""
    from qfsum.pipeline import Pipeline, load_config
    from qfsum.readers import document_from_text, read_examples
    from qfsum.writers import WriterConfig

    config = load_config(pipeline_name)
    config.writer = WriterConfig(kind="extractive")  # only the ranking is needed here
    pipeline = Pipeline(config)
    if data.suffix == ".txt":
        document = document_from_text(data.read_text(), data.stem)
        asked = [(f"{data.stem}-{i}", document, q) for i, q in enumerate(QUESTIONS)]
    else:
        asked = [(e.id, e.document, e.query) for e in read_examples(data, split)]
    items = []
    for item_id, document, query in asked[:limit]:
        ranked = pipeline.rank(document, query)
        items.append({"id": item_id, "query": query,
                      "ranked": [[e.segment.index, e.segment.text, e.segment.start, e.segment.end, e.score] for e in ranked]})
    return items


def convert_once(writer: dict[str, Any], variants: list[str]) -> None:
    """The CTranslate2 and ONNX Runtime GenAI folders the rows need, converted now if they are not cached yet."""
    for name in variants:
        runtime, dtype = VARIANTS[name]
        if runtime == "ctranslate2":
            from qfsum.writers.ct2_convert import converted_model as ct2_converted

            ct2_converted(writer["model"], dtype)
        elif runtime == "onnxruntime-genai":
            from qfsum.writers.ortgenai_convert import converted_model as ortgenai_converted
            from qfsum.writers.ortgenai_runtime import precision_of

            ortgenai_converted(writer["model"], precision_of(dtype))


# -- one row (a fresh process) --------------------------------------------------------------------------


def measure_row(job: dict[str, Any]) -> dict[str, Any]:
    """Answers, timings and peak RSS of one runtime on the items; agreement with the reference if given."""
    import torch

    from qfsum.bench.agreement import token_agreement
    from qfsum.bench.writers import greedy_timed
    from qfsum.document import Evidence, Segment
    from qfsum.text import complete_sentences
    from qfsum.writers import WriterConfig, build_writer
    from qfsum.writers.fast_runtime import DecodeStats

    runtime, dtype = VARIANTS[job["variant"]]
    writer = build_writer(WriterConfig(**{**job["writer"], "runtime": runtime, "dtype": dtype}))
    items = [json.loads(line) for line in Path(job["items"]).read_text().splitlines() if line.strip()]
    prompts = [writer.prompt(item["query"], [Evidence(Segment(i, text, start, end), score)
                                             for i, text, start, end, score in item["ranked"]])[0] for item in items]
    max_new = writer.config.new_tokens()
    configured = writer.model.generation_config.eos_token_id
    eos = set(configured if isinstance(configured, list) else [] if configured is None else [configured])

    def decode(ids: list[int]) -> tuple[list[int], float, float, int]:
        processors = writer._processors(len(ids))  # built before the clock: as the bake-off does
        if runtime == "torch":
            new, prefill, rest = greedy_timed(writer.model, ids, max_new, eos, processors)
            return new, prefill, rest, 0  # without its end-of-sequence token, as the answers are compared
        stats = DecodeStats()
        started = time.perf_counter()
        new = writer.model.generate(ids, max_new, processors, writer.config.no_repeat_ngram_size, stats=stats)
        total = time.perf_counter() - started
        return new, stats.prefill_seconds, total - stats.prefill_seconds, stats.restarts

    decode(prompts[0][1:])  # warm-up, untimed; not a measured prompt, whose state CTranslate2 would then have cached
    answers, prefill, rest, restarts = [], 0.0, 0.0, 0
    for ids in prompts:
        new, seconds_prefill, seconds_rest, resumed = decode(ids)
        answers.append([t for t in new if t not in eos])
        prefill, rest, restarts = prefill + seconds_prefill, rest + seconds_rest, restarts + resumed
    peak_rss_mb = _peak_rss_mb()  # before agreement's passes
    n = len(prompts)
    prompt_tokens, new_tokens = sum(map(len, prompts)), sum(map(len, answers))
    row = {
        "variant": job["variant"], "runtime": runtime, "dtype": dtype, "n": n, "threads": torch.get_num_threads(),
        "prompt_tokens": prompt_tokens / n, "new_tokens": new_tokens / n,
        "prefill_tokens_per_s": prompt_tokens / prefill if prefill else None,
        "decode_tokens_per_s": new_tokens / rest if rest else None,
        "seconds_per_answer": (prefill + rest) / n, "restarts_per_answer": restarts / n, "peak_rss_mb": peak_rss_mb,
        "answers": answers,
        "texts": [complete_sentences(writer.tokenizer.decode(a, skip_special_tokens=True).strip()) for a in answers],
    }
    if job.get("reference"):
        reference = json.loads(Path(job["reference"]).read_text())["answers"]
        row["identical"] = sum(a == r for a, r in zip(answers, reference, strict=True)) / n
        row["token_agreement"] = token_agreement(writer, prompts, reference)
    return row


def _peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss across
    fork and exec, so a row would report the parent's peak (which converts models) when it is larger."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _child(job_file: str) -> int:
    """`python benchmarks/runtimes.py --child JOB`: one row, written next to the job file."""
    from qfsum.errors import QfsumError
    from qfsum.threads import prepare_environment, set_threads

    prepare_environment()
    job = json.loads(Path(job_file).read_text())
    set_threads(job["threads"])  # before torch loads
    try:
        row = measure_row(job)
    except QfsumError as err:
        print(f"error: {' '.join(str(err).splitlines())}", file=sys.stderr)
        return 2
    Path(job["result"]).write_text(json.dumps(row) + "\n")
    return 0


# -- the run and its table ---------------------------------------------------------------------------------


def machine() -> str:
    """CPU model, physical cores and logical CPUs, OS."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from qfsum.threads import _machine_cores, allowed_cpus

    physical, logical = _machine_cores()
    return (f"{model}, {physical or '?'} physical cores, {logical or os.cpu_count()} logical CPUs "
            f"({allowed_cpus()} usable), {platform.system()} {platform.machine()}")


def _ratio(value: float | None, base: float | None, higher_is_better: bool = True) -> str:
    if value is None or not base:
        return "-"
    return f"{(value / base if higher_is_better else base / value):.2f}x"


def format_table(result: dict[str, Any]) -> str:
    """The Markdown table, its header naming the settings, the machine and the date."""
    rows = result["rows"]
    base = next((r for r in rows if r["variant"] == BASELINE), None)
    w = result["writer"]
    lines = [f"Writer runtimes, {result['date']}: `{w['model']}`, {result['prompts']} prompts ({result['data']}), "
             f"at most {w.get('max_new_tokens')} new tokens, grounded numbers {w.get('grounded_numbers')}, names "
             f"{w.get('grounded_names')}, {result['threads']} threads; {result['machine']}. Speed ratios: against "
             f"{BASELINE} (> 1: faster). Identical and agreement: against {REFERENCE}.", "",
             "| runtime | weights | prefill tok/s | decode tok/s | s/answer | peak RSS MB | identical answers "
             "| token agreement | restarts/answer |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        def speed(key: str, higher: bool = True) -> str:
            value = r.get(key)
            text = "-" if value is None else f"{value:.1f}" if key != "seconds_per_answer" else f"{value:.2f}"
            return f"{text} ({_ratio(value, base.get(key) if base else None, higher)})" if base else text
        lines.append(f"| {r['runtime']} | {r['dtype']} | {speed('prefill_tokens_per_s')} | {speed('decode_tokens_per_s')} "
                     f"| {speed('seconds_per_answer', False)} | {r['peak_rss_mb']:.0f} "
                     f"| {r['identical']:.2f} | {r['token_agreement']:.3f} | {r['restarts_per_answer']:.1f} |"
                     if "identical" in r else
                     f"| {r['runtime']} | {r['dtype']} | {speed('prefill_tokens_per_s')} | {speed('decode_tokens_per_s')} "
                     f"| {speed('seconds_per_answer', False)} | {r['peak_rss_mb']:.0f} | (reference) | (reference) "
                     f"| {r['restarts_per_answer']:.1f} |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from qfsum.pipeline import load_config
    from qfsum.threads import parse_threads, prepare_environment, set_threads

    prepare_environment()
    threads = set_threads(parse_threads(args.threads))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    writer = asdict(load_config(args.pipeline).writer)
    if args.model:
        writer["model"] = args.model
    variants = [REFERENCE] + [v for v in args.variants if v != REFERENCE]  # the reference row first
    items = build_items(Path(args.data), args.split, args.limit, args.pipeline)
    (out / "items.jsonl").write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items))
    convert_once(writer, variants)
    rows = []
    for variant in variants:
        job = {"variant": variant, "writer": writer, "items": str(out / "items.jsonl"), "threads": threads,
               "result": str(out / f"{variant}.json"),
               "reference": str(out / f"{REFERENCE}.json") if variant != REFERENCE else None}
        (out / f"{variant}.job.json").write_text(json.dumps(job, indent=1) + "\n")
        done = subprocess.run([sys.executable, __file__, "--child", str(out / f"{variant}.job.json")],
                              capture_output=True, text=True, env=dict(os.environ), check=False)
        (out / f"{variant}.log").write_text(done.stderr)
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            raise SystemExit(f"{variant} failed: {lines[-1] if lines else done.returncode} (see {out / f'{variant}.log'})")
        rows.append(json.loads(Path(job["result"]).read_text()))
        print(f"{variant}: done", file=sys.stderr)
    result = {"date": str(date.today()), "machine": machine(), "threads": threads, "data": f"{args.data}"
              + (f" {args.split}" if Path(args.data).suffix != ".txt" else ""), "prompts": len(items),
              "writer": writer, "rows": rows}
    (out / "runtimes.json").write_text(json.dumps(result, indent=1) + "\n")
    table = format_table(result)
    (out / "runtimes.md").write_text(table + "\n")
    return {**result, "table": table}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT / "examples" / "meeting.txt"),
                        help="a QMSum folder (with --split) or a text file asked the built-in questions (default: examples/meeting.txt)")
    parser.add_argument("--split", default="val", help="QMSum split (default val)")
    parser.add_argument("--limit", type=int, default=20, help="prompts (default 20)")
    parser.add_argument("--pipeline", default="default", help="whose ranking and writer config (default: default)")
    parser.add_argument("--model", default=None, help="writer model instead of the pipeline's")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        help=f"rows (default: all; {REFERENCE} always runs, as the reference)")
    parser.add_argument("--threads", default="auto", help="threads for every row: a number, or auto (qfsum's choice)")
    parser.add_argument("--out", default=str(ROOT / "runs" / "runtimes"), help="output folder (default runs/runtimes)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        raise SystemExit(_child(args.child))
    if args.limit < 1:
        parser.error("--limit must be >= 1")
    print(run(args)["table"])


if __name__ == "__main__":
    main()
