"""`qfsum bench segenc`: encoder time and peak memory of SegEnc against full attention, same backbone.

Both encoders are the same random BART encoder (fp32, batch 1, `torch.inference_mode`): `full`
reads `query <sep> document` as one sequence (its position table is grown to fit), `segenc` reads
SegEnc's windows (`--segment-length` tokens, 50 % overlap, the query in each) as one batch. Each
(encoder, length) point runs in a fresh child process that builds the model, warms it up on a short
input, then times one encoder pass; the child reports its own peak resident memory (`ru_maxrss`, so
every allocation of torch counts) and, on a GPU, `torch.cuda.max_memory_allocated`. A child past
`--time-limit` is stopped and the encoder's longer lengths are skipped.

Writes `segenc_scaling.json`, `segenc_scaling.md` (the table) and `segenc_scaling.png` (log-log
time and memory) under `--out`.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import QfsumError
from .locost_scaling import label, machine, parse_sizes

ENCODERS = ("segenc", "full")
DEFAULT_SIZES = "1K,4K,16K,64K"
QUERY_TOKENS = 16  # a typical QMSum query
WARMUP_TOKENS = 256
NAME = "segenc_scaling"


@dataclass
class SegEncBenchConfig:
    """The backbone's shape, the lengths, and the limits per point."""

    sizes: list[int] = field(default_factory=lambda: parse_sizes(DEFAULT_SIZES))
    encoders: tuple[str, ...] = ENCODERS
    segment_length: int = 512  # SegEnc window, query included
    window_batch_size: int | None = None  # SegEnc windows per encoder call; None: all at once
    layers: int = 2  # the tiny backbone's encoder
    width: int = 256
    heads: int = 4
    ffn: int = 1024
    vocab_size: int = 8192
    attention: str = "sdpa"  # sdpa (torch picks the kernel) or eager (materialises the scores)
    device: str = "auto"  # auto: cuda when there is one
    time_limit: float = 600.0  # seconds per point, model build included
    out: str = "runs/bench-segenc"

    def __post_init__(self) -> None:
        unknown = set(self.encoders) - set(ENCODERS)
        if unknown:
            raise QfsumError(f"unknown encoder(s) {', '.join(sorted(unknown))} (choose from {', '.join(ENCODERS)})")
        if self.attention not in ("sdpa", "eager") or self.device not in ("auto", "cpu", "cuda"):
            raise QfsumError("--attention is sdpa or eager; --device auto, cpu or cuda")
        if self.width % self.heads or self.time_limit <= 0:
            raise QfsumError("--width must be a multiple of --heads, and --time-limit > 0")


# -- one point, in a child process --------------------------------------------------------------------


def encoder_input(name: str, tokens: int, config: SegEncBenchConfig) -> tuple[Any, Any]:
    """(input_ids, attention_mask) of a random `tokens`-token document and query, as each encoder reads it."""
    import torch

    from ..models.seq2seq_inputs import PairTemplate
    from ..models.segenc import make_windows

    generator = torch.Generator().manual_seed(0)
    document = torch.randint(4, config.vocab_size, (tokens,), generator=generator).tolist()
    question = torch.randint(4, config.vocab_size, (QUERY_TOKENS,), generator=generator).tolist()
    template = PairTemplate((0,), (2, 2), (2,))  # BART's <s> q </s></s> d </s>
    if name == "full":
        ids = torch.tensor([template.join(question, document)])
        return ids, torch.ones_like(ids)
    windows = make_windows(question, document, template, config.segment_length, True, max_input=tokens)
    length = config.segment_length
    ids = [t for w in windows for t in w.input_ids + [1] * (length - len(w.input_ids))]
    mask = [m for w in windows for m in [1] * len(w.input_ids) + [0] * (length - len(w.input_ids))]
    return torch.tensor([ids]), torch.tensor([mask])  # (1, W * L)


def build_encoder(name: str, tokens: int, config: SegEncBenchConfig) -> Any:
    """The encoder under test: the BART encoder alone (full) or SegEnc's window encoder around it."""
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    from ..models.segenc import SegEncForConditionalGeneration

    positions = tokens + QUERY_TOKENS + 8 if name == "full" else config.segment_length
    torch.manual_seed(0)
    backbone = BartForConditionalGeneration(BartConfig(
        vocab_size=config.vocab_size, d_model=config.width, encoder_layers=config.layers, decoder_layers=1,
        encoder_attention_heads=config.heads, decoder_attention_heads=config.heads, encoder_ffn_dim=config.ffn,
        decoder_ffn_dim=config.ffn, max_position_embeddings=max(positions, WARMUP_TOKENS + 64), dropout=0.0,
        attn_implementation=config.attention))
    if name == "full":
        return backbone.get_encoder().eval()
    segenc = SegEncForConditionalGeneration.from_backbone(backbone, config.segment_length,
                                                          window_batch_size=config.window_batch_size)
    return segenc.eval().get_encoder()


def run_point(name: str, tokens: int, config: SegEncBenchConfig) -> dict[str, Any]:
    """Build, warm up and time one encoder pass (run inside the child)."""
    import torch

    from ..assets import default_device

    device = default_device() if config.device == "auto" else config.device
    encoder = build_encoder(name, tokens, config).to(device)
    ids, mask = encoder_input(name, tokens, config)
    with torch.inference_mode():
        encoder(input_ids=ids[:, :WARMUP_TOKENS].to(device), attention_mask=mask[:, :WARMUP_TOKENS].to(device))
        base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ids, mask = ids.to(device), mask.to(device)
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base_gpu = torch.cuda.memory_allocated() / 2**20
        start = time.perf_counter()
        encoder(input_ids=ids, attention_mask=mask)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    result = {"status": "ok", "seconds": seconds, "encoded_tokens": ids.shape[1], "device": device,
              "base_mb": base_mb, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device == "cuda":
        result.update(gpu_peak_mb=torch.cuda.max_memory_allocated() / 2**20, gpu_base_mb=base_gpu,
                      gpu=torch.cuda.get_device_name(0))
    return result


def measure(name: str, tokens: int, config: SegEncBenchConfig) -> dict[str, Any]:
    """One point in a fresh child process: its result, or why it stopped."""
    command = [sys.executable, "-m", "qfsum.bench.segenc_scaling", "--child", name, str(tokens), json.dumps(asdict(config))]
    try:
        done = subprocess.run(command, capture_output=True, timeout=config.time_limit)
    except subprocess.TimeoutExpired:
        return {"status": "time limit"}
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        return {"status": "error", "error": tail[0][:300]}
    return json.loads(lines[-1])


# -- the sweep and its report -------------------------------------------------------------------------


def _cells(row: dict[str, Any]) -> list[str]:
    """Table cells: encoder, tokens, encoded tokens, status, seconds, peak MiB, activation MiB."""
    ok = row["status"] == "ok"
    gpu = "gpu_peak_mb" in row
    peak = row.get("gpu_peak_mb" if gpu else "peak_mb")
    base = row.get("gpu_base_mb" if gpu else "base_mb")
    return [row["encoder"], label(row["tokens"]), str(row.get("encoded_tokens", "-")), row["status"],
            f"{row['seconds']:.3f}" if ok else "-", f"{peak:.0f}" if ok else "-", f"{peak - base:.0f}" if ok else "-"]


def sweep(config: SegEncBenchConfig) -> list[dict[str, Any]]:
    """Every (encoder, length) point, shortest first; an encoder stops at its first failure."""
    rows: list[dict[str, Any]] = []
    print(f"{'encoder':<8}{'tokens':>8}{'encoded':>9}{'status':>12}{'seconds':>10}{'peak MiB':>10}{'activ. MiB':>11}")
    for name in config.encoders:
        stopped = None
        for tokens in config.sizes:
            row = {"encoder": name, "tokens": tokens}
            row.update({"status": f"skipped ({stopped})"} if stopped else measure(name, tokens, config))
            stopped = stopped or (row["status"] if row["status"] != "ok" else None)
            rows.append(row)
            cells = _cells(row)
            print(f"{cells[0]:<8}{cells[1]:>8}{cells[2]:>9}{cells[3]:>12}{cells[4]:>10}{cells[5]:>10}{cells[6]:>11}", flush=True)
    return rows


def write_report(rows: list[dict[str, Any]], config: SegEncBenchConfig, command: str) -> Path:
    """Write the JSON, the markdown table and the plot under `config.out`; returns the markdown path."""
    import torch

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    gpu = next((r["gpu"] for r in rows if "gpu" in r), None)
    meta = {"machine": f"{gpu} GPU" if gpu else machine(), "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "torch": torch.__version__, "command": command, "config": asdict(config)}
    (out / f"{NAME}.json").write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    memory = "GPU memory (`torch.cuda.max_memory_allocated`)" if gpu else "peak RSS of the process (model and Python included)"
    lines = [
        f"{meta['machine']}, {meta['date']}, torch {meta['torch']}; fp32, batch 1, random BART encoder "
        f"({config.layers} layers, width {config.width}, {config.heads} heads, FFN {config.ffn}, `{config.attention}` "
        f"attention), {QUERY_TOKENS}-token query; SegEnc windows of {config.segment_length} tokens, 50 % overlap, "
        f"{config.window_batch_size or 'all'} windows per encoder call. One "
        f"encoder pass per fresh process after a {WARMUP_TOKENS}-token warm-up; peak is the {memory}, activations "
        f"that peak minus the level after the warm-up.",
        "",
        "```bash",
        command,
        "```",
        "",
        "| encoder | document tokens | encoded tokens | status | seconds | peak MiB | activations MiB |",
        "|---|---:|---:|---|---:|---:|---:|",
        *("| " + " | ".join(_cells(r)) + " |" for r in rows),
        "",
    ]
    path = out / f"{NAME}.md"
    path.write_text("\n".join(lines))
    plot(rows, config, out / f"{NAME}.png", meta)
    return path


def plot(rows: list[dict[str, Any]], config: SegEncBenchConfig, path: Path, meta: dict[str, Any]) -> None:
    """Log-log encoder time and activation memory against document tokens, one line per encoder."""
    from .plotting import loglog_panels

    done = {name: [r for r in rows if r["encoder"] == name and r["status"] == "ok"] for name in config.encoders}
    time_lines = {name: ([r["tokens"] for r in d], [r["seconds"] for r in d]) for name, d in done.items()}
    memory_lines = {name: ([r["tokens"] for r in d], [max(float(_cells(r)[6]), 1.0) for r in d]) for name, d in done.items()}
    loglog_panels(path, [("encoder time (s)", time_lines), ("activation memory (MiB)", memory_lines)], "document tokens",
                  f"SegEnc ({config.segment_length}-token windows) vs full attention, same encoder — "
                  f"{meta['machine']}, {meta['date']}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `qfsum bench segenc`."""
    p.add_argument("--sizes", default=DEFAULT_SIZES, help=f"document lengths, K = 1024 (default {DEFAULT_SIZES})")
    p.add_argument("--encoders", default=",".join(ENCODERS), help="segenc, full or both (default both)")
    p.add_argument("--segment-length", type=int, default=512, help="SegEnc window, query included (default 512)")
    p.add_argument("--window-batch", type=int, default=None, help="SegEnc windows per encoder call (default: all)")
    p.add_argument("--layers", type=int, default=2, help="encoder layers of the random test model")
    p.add_argument("--width", type=int, default=256, help="hidden size of the random test model")
    p.add_argument("--heads", type=int, default=4, help="attention heads of the random test model")
    p.add_argument("--attention", default="sdpa", choices=("sdpa", "eager"), help="attention kernel (default sdpa)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: the GPU when there is one")
    p.add_argument("--time-limit", type=float, default=600.0, help="seconds per point before it is stopped (default 600)")
    p.add_argument("--out", default="runs/bench-segenc", help="folder of segenc_scaling.{md,json,png}")


def bench_segenc(args: argparse.Namespace) -> None:
    """`qfsum bench segenc`."""
    import shlex

    config = SegEncBenchConfig(
        sizes=parse_sizes(args.sizes), encoders=tuple(e.strip() for e in args.encoders.split(",") if e.strip()),
        segment_length=args.segment_length, window_batch_size=args.window_batch, layers=args.layers, width=args.width, heads=args.heads,
        attention=args.attention, device=args.device, time_limit=args.time_limit, out=args.out)
    rows = sweep(config)
    path = write_report(rows, config, "qfsum " + shlex.join(args.argv))
    print(f"wrote {path}, {path.with_suffix('.json')}, {path.with_suffix('.png')}")


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "--child":
    print(json.dumps(run_point(sys.argv[2], int(sys.argv[3]), SegEncBenchConfig(**json.loads(sys.argv[4])))), flush=True)
