"""`qfsum bench locost-scaling`: inference time and peak memory of a LOCOST encoder against dense attention.

Each (model, length) point runs in its own child process (fp32, batch 1, `torch.inference_mode`, random
weights and tokens): the child builds the model, warms it up on 256 tokens, then times one forward pass.
Its peak resident memory comes from the kernel (`os.wait4` rusage `ru_maxrss` of that child alone), so
every allocation counts (tracemalloc sees none of torch's). A model stops at its first point that runs out
of memory (the child's address space is capped at `--memory-limit`, so it fails cleanly instead of waking
the OOM killer) or past `--time-limit`; its larger lengths are skipped.

Writes `locost_scaling.json`, `locost_scaling.md` (table, config, fitted time exponent, the issue's targets)
and `locost_scaling.png` (log-log time and memory) under `--out`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import QfsumError

MODELS = ("locost", "dense-sdpa", "dense-eager")
DEFAULT_SIZES = "1K,4K,16K,64K,256K,600K"
WARMUP_TOKENS = 256
TARGET_MEMORY_RATIO = 0.15  # LOCOST peak memory at 16K <= 15 % of the dense encoder's
TARGET_EXPONENT = 1.1  # LOCOST time ~ L^1.1 or better from 16K up
NAME = "locost_scaling"


def parse_sizes(text: str) -> list[int]:
    """"1K,4K,600K" -> [1024, 4096, 614400] (K = 1024); plain integers are token counts."""
    sizes = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        digits, k = (part[:-1], 1024) if part[-1] in "kK" else (part, 1)
        if not digits.isdigit() or int(digits) < 1:
            raise QfsumError(f"bad size '{part}': use token counts like 1024 or 16K")
        sizes.append(int(digits) * k)
    if not sizes:
        raise QfsumError("give at least one size")
    return sorted(set(sizes))


def label(tokens: int) -> str:
    """614400 -> "600K"."""
    return f"{tokens // 1024}K" if tokens % 1024 == 0 else str(tokens)


@dataclass
class ScalingConfig:
    """What to measure: the encoders' shape, the lengths, and the limits per point."""

    sizes: list[int] = field(default_factory=lambda: parse_sizes(DEFAULT_SIZES))
    models: tuple[str, ...] = MODELS
    layers: int = 12
    width: int = 768
    state_size: int = 256  # LOCOST N
    heads: int = 12  # dense attention heads
    locost_d_ff: int | None = None  # gated GeLU, 3 matrices; None: 8/3 x width (2048), as many weights as dense's
    dense_d_ff: int | None = None  # None: 4 x width (3072)
    vocab_size: int = 49152  # the SmolLM2 tokenizer's
    time_limit: float = 300.0  # seconds per point, model build included
    model_time_limits: dict[str, float] = field(default_factory=dict)  # per-model overrides of time_limit
    memory_limit_gb: float | None = None  # address-space cap per child; None: 90 % of the memory available now
    threads: int | None = None  # torch threads in each child; None: torch's default (all cores)
    out: str = "docs"

    def __post_init__(self) -> None:
        unknown = set(self.models) - set(MODELS)
        if unknown:
            raise QfsumError(f"unknown model(s) {', '.join(sorted(unknown))} (choose from {', '.join(MODELS)})")
        if self.time_limit <= 0 or any(v <= 0 for v in self.model_time_limits.values()):
            raise QfsumError("--time-limit must be > 0")
        unknown = set(self.model_time_limits) - set(self.models)
        if unknown:
            raise QfsumError(f"--time-limit names model(s) not measured: {', '.join(sorted(unknown))}")
        if self.width % self.heads:
            raise QfsumError(f"--width {self.width} is not a multiple of --heads {self.heads}")
        self.locost_d_ff = self.locost_d_ff or round(8 * self.width / 3)
        self.dense_d_ff = self.dense_d_ff or 4 * self.width
        if self.memory_limit_gb is None:
            self.memory_limit_gb = round(0.9 * available_memory_gb(), 1)


    def limit_for(self, model: str) -> float:
        """Seconds a point of `model` may take."""
        return self.model_time_limits.get(model, self.time_limit)


def parse_time_limits(text: str) -> tuple[float, dict[str, float]]:
    """"2400,dense-sdpa=600" -> (2400.0, {"dense-sdpa": 600.0}): a default and per-model overrides."""
    default, overrides = 300.0, {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.rpartition("=")
        try:
            seconds = float(value)
        except ValueError:
            raise QfsumError(f"bad --time-limit '{part}': use SECONDS or MODEL=SECONDS") from None
        if name:
            overrides[name.strip()] = seconds
        else:
            default = seconds
    return default, overrides


def available_memory_gb() -> float:
    """MemAvailable from /proc/meminfo, in GiB."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    raise QfsumError("cannot read MemAvailable from /proc/meminfo")


# -- one point, in a child process --------------------------------------------------------------------


def build_model(name: str, config: ScalingConfig) -> Any:
    """The encoder a model name stands for, fp32, eval mode, random weights."""
    import torch

    torch.manual_seed(0)
    if name == "locost":
        from ..models.locost import LocostConfig
        from ..models.locost.modeling import LocostEncoder

        return LocostEncoder(LocostConfig(vocab_size=config.vocab_size, d_model=config.width, encoder_layers=config.layers,
                                          d_ff=config.locost_d_ff, state_size=config.state_size, dropout=0.0,
                                          decoder_attention_heads=config.heads)).eval()
    from .dense_encoder import DenseEncoder

    return DenseEncoder(config.vocab_size, config.width, config.layers, config.heads, config.dense_d_ff,
                        attention=name.removeprefix("dense-")).eval()


def run_point(name: str, tokens: int, config: ScalingConfig) -> dict[str, Any]:
    """Build, warm up, and time one forward pass of `tokens` tokens (run inside the child)."""
    import torch

    if config.threads:
        torch.set_num_threads(config.threads)
    model = build_model(name, config)
    params = sum(p.numel() for p in model.parameters())
    with torch.inference_mode():
        model(torch.randint(3, config.vocab_size, (1, min(WARMUP_TOKENS, tokens))))
        before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ids = torch.randint(3, config.vocab_size, (1, tokens))
        start = time.perf_counter()
        model(ids)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "base_mb": before_mb, "parameters": params, "threads": torch.get_num_threads()}


def _child_main(name: str, tokens: int, config_json: str) -> None:
    config = ScalingConfig(**json.loads(config_json))
    cap = int(config.memory_limit_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    try:
        result = {"status": "ok", **run_point(name, tokens, config)}
    except (MemoryError, RuntimeError) as err:  # torch reports a failed allocation as RuntimeError
        if not isinstance(err, MemoryError) and "alloc" not in str(err).lower() and "memory" not in str(err).lower():
            raise
        result = {"status": "oom", "error": str(err).splitlines()[0][:200]}
    print(json.dumps(result), flush=True)


def measure(name: str, tokens: int, config: ScalingConfig) -> dict[str, Any]:
    """Run one point in a child process; its result plus the child's peak RSS, or why it stopped."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(
            [sys.executable, "-m", "qfsum.bench.locost_scaling", "--child", name, str(tokens), json.dumps(asdict(config))],
            stdout=out, stderr=err,
        )
        start = time.monotonic()
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > config.limit_for(name):
                child.kill()
                _, status, usage = os.wait4(child.pid, 0)
                child.returncode = -signal.SIGKILL
                return {"status": "time limit", "peak_mb": usage.ru_maxrss / 1024}
            time.sleep(0.1)
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        lines = out.read().decode(errors="replace").strip().splitlines()
        peak_mb = usage.ru_maxrss / 1024  # this child alone (kilobytes on Linux)
        if child.returncode == -signal.SIGKILL:
            return {"status": "oom (killed)", "peak_mb": peak_mb}
        if child.returncode != 0 or not lines:
            tail = err.read().decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            return {"status": "error", "error": tail[0][:300], "peak_mb": peak_mb}
        return {**json.loads(lines[-1]), "peak_mb": peak_mb}


# -- the sweep and its report -------------------------------------------------------------------------


def sweep(config: ScalingConfig, progress: bool = True) -> list[dict[str, Any]]:
    """Every (model, size) point, smallest size first; a model stops at its first failure."""
    rows: list[dict[str, Any]] = []
    print(f"{'model':<12}{'tokens':>8}  {'status':<20}{'seconds':>10}{'peak MiB':>10}{'activ. MiB':>12}")
    for name in config.models:
        stopped = None
        for tokens in config.sizes:
            row = {"model": name, "tokens": tokens}
            row.update({"status": f"skipped ({stopped})"} if stopped else measure(name, tokens, config))
            if row["status"] != "ok" and not stopped:
                stopped = row["status"]
            rows.append(row)
            if progress:
                print(_row_text(row), flush=True)
    return rows


def _cells(row: dict[str, Any]) -> tuple[str, str, str]:
    """Seconds, peak MiB and activation MiB of a row, "-" where it has none."""
    seconds = f"{row['seconds']:.2f}" if "seconds" in row else "-"
    peak = f"{row['peak_mb']:.0f}" if "peak_mb" in row else "-"
    activ = f"{row['peak_mb'] - row['base_mb']:.0f}" if "base_mb" in row else "-"
    return seconds, peak, activ


def _row_text(row: dict[str, Any]) -> str:
    seconds, peak, activ = _cells(row)
    error = f"  {row['error']}" if "error" in row else ""
    return f"{row['model']:<12}{label(row['tokens']):>8}  {row['status']:<20}{seconds:>10}{peak:>10}{activ:>12}{error}"


def time_exponent(rows: list[dict[str, Any]], model: str, from_tokens: int = 16384) -> float | None:
    """Least-squares slope of log(seconds) against log(tokens) over a model's completed points >= from_tokens."""
    points = [(math.log(r["tokens"]), math.log(r["seconds"])) for r in rows
              if r["model"] == model and r["status"] == "ok" and r["tokens"] >= from_tokens]
    if len(points) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


def _find(rows: list[dict[str, Any]], model: str, tokens: int) -> dict[str, Any] | None:
    return next((r for r in rows if r["model"] == model and r["tokens"] == tokens and r["status"] == "ok"), None)


def targets(rows: list[dict[str, Any]], config: ScalingConfig) -> list[str]:
    """The issue's three targets, each checked against the measured rows (or why it cannot be)."""
    lines = []
    longest = max(config.sizes)
    done = _find(rows, "locost", longest)
    lines.append(f"- LOCOST reads {label(longest)} tokens under the {config.memory_limit_gb} GiB cap: "
                 + (f"**yes** ({done['seconds']:.0f} s, peak {done['peak_mb'] / 1024:.1f} GiB)" if done else "**no**"))
    locost16 = _find(rows, "locost", 16384)
    for dense in (m for m in config.models if m.startswith("dense")):
        other = _find(rows, dense, 16384)
        if locost16 and other:
            ratio = locost16["peak_mb"] / other["peak_mb"]
            activ = (locost16["peak_mb"] - locost16["base_mb"]) / max(other["peak_mb"] - other["base_mb"], 1e-9)
            verdict = "**met**" if ratio <= TARGET_MEMORY_RATIO else "**not met**"
            lines.append(f"- memory at 16K, LOCOST / {dense}: peak RSS {100 * ratio:.0f} %, activations (peak minus "
                         f"the warmed-up model) {100 * activ:.0f} % (target <= {100 * TARGET_MEMORY_RATIO:.0f} %: {verdict})")
        elif locost16:
            status = next((r["status"] for r in rows if r["model"] == dense and r["tokens"] == 16384), "not run")
            line = (f"- memory at 16K, LOCOST / {dense}: {dense} did not complete 16K ({status}); "
                    f"LOCOST peaked at {locost16['peak_mb'] / 1024:.2f} GiB")
            if status.startswith("oom"):  # the dense encoder needed more than the cap: the ratio is below peak / cap
                bound = locost16["peak_mb"] / 1024 / config.memory_limit_gb
                verdict = "**met**" if bound <= TARGET_MEMORY_RATIO else "**not shown**"
                line += (f", under {100 * bound:.0f} % of what {dense} needs (more than the "
                         f"{config.memory_limit_gb} GiB cap; target <= {100 * TARGET_MEMORY_RATIO:.0f} %: {verdict})")
            lines.append(line)
    slope = time_exponent(rows, "locost")
    lines.append("- LOCOST time exponent from 16K up: "
                 + (f"L^{slope:.2f} (target <= L^{TARGET_EXPONENT}: {'**met**' if slope <= TARGET_EXPONENT else '**not met**'})"
                    if slope is not None else "needs two completed sizes >= 16K"))
    return lines


def machine() -> str:
    """A one-line description of this computer."""
    cpu = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    total = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemTotal:"))) / 2**20
    return f"{os.cpu_count()}-core {platform.machine()} CPU ({cpu}), {total:.0f} GiB RAM"


def write_report(rows: list[dict[str, Any]], config: ScalingConfig, command: str) -> Path:
    """Write the JSON, markdown table and log-log plot under `config.out`; returns the markdown path."""
    import torch

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"machine": machine(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "torch": torch.__version__,
            "command": command, "config": asdict(config)}
    (out / f"{NAME}.json").write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    lines = [
        "# LOCOST encoder vs dense attention: inference time and peak memory",
        "",
        f"{meta['machine']}, {meta['date']}, torch {meta['torch']}; fp32, batch 1, `torch.inference_mode`, random "
        f"weights; each point is one forward pass in a fresh process after a {WARMUP_TOKENS}-token warm-up; peak "
        f"memory is the process's peak RSS (model and Python included), 'activations' that peak minus the RSS "
        f"after the warm-up. Limits per point: {_limits_text(config)}, {config.memory_limit_gb} GiB address space.",
        "",
        f"Encoders: {config.layers} layers, width {config.width}, vocabulary {config.vocab_size}. LOCOST: N = "
        f"{config.state_size}, gated-GeLU d_ff {config.locost_d_ff}. Dense: {config.heads} heads, GeLU d_ff "
        f"{config.dense_d_ff}; `dense-sdpa` lets torch pick its attention kernel (flash attention on CPU, O(L) "
        f"memory), `dense-eager` materialises the (heads, L, L) scores as eager BERT does.",
        "",
        "```bash",
        command,
        "```",
        "",
        "| model | tokens | status | seconds | peak MiB | activations MiB |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['model']} | {label(row['tokens'])} | {row['status']} | " + " | ".join(_cells(row)) + " |")
    lines += ["", "Targets:", "", *targets(rows, config), ""]
    path = out / f"{NAME}.md"
    path.write_text("\n".join(lines))
    plot(rows, config, out / f"{NAME}.png", meta)
    return path


def _limits_text(config: ScalingConfig) -> str:
    """"900 s" or "2400 s (dense-sdpa 600 s)"."""
    overrides = ", ".join(f"{m} {s:.0f} s" for m, s in config.model_time_limits.items())
    return f"{config.time_limit:.0f} s" + (f" ({overrides})" if overrides else "")


def plot(rows: list[dict[str, Any]], config: ScalingConfig, path: Path, meta: dict[str, Any]) -> None:
    """Log-log time and peak memory against tokens, one line per model."""
    from .plotting import loglog_panels

    done = {name: [r for r in rows if r["model"] == name and r["status"] == "ok"] for name in config.models}
    times = {name: ([r["tokens"] for r in d], [r["seconds"] for r in d]) for name, d in done.items()}
    memory = {name: ([r["tokens"] for r in d], [r["peak_mb"] / 1024 for r in d]) for name, d in done.items()}
    loglog_panels(path, [("forward time (s)", times), ("peak memory (GiB)", memory)], "input tokens",
                  f"Encoders, {config.layers} layers x {config.width}, fp32, batch 1 — {meta['machine']}, {meta['date']}")


def run(config: ScalingConfig, command: str) -> Path:
    """Measure every point, print the table, write the report; returns the markdown path."""
    rows = sweep(config)
    path = write_report(rows, config, command)
    print("\n".join(targets(rows, config)))
    print(f"wrote {path}, {path.with_suffix('.json')}, {path.with_suffix('.png')}")
    return path


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `qfsum bench locost-scaling`."""
    p.add_argument("--sizes", default=DEFAULT_SIZES, help=f"input lengths, K = 1024 (default {DEFAULT_SIZES})")
    p.add_argument("--models", default=",".join(MODELS), help=f"encoders to measure (default {','.join(MODELS)})")
    p.add_argument("--layers", type=int, default=12, help="encoder layers of every model measured")
    p.add_argument("--width", type=int, default=768, help="hidden size of every model measured")
    p.add_argument("--state-size", type=int, default=256, help="LOCOST N (default 256)")
    p.add_argument("--heads", type=int, default=12, help="dense attention heads (default 12)")
    p.add_argument("--time-limit", default="300",
                   help="seconds per point before it is stopped, with optional per-model overrides: "
                        "'2400,dense-sdpa=600' (default 300)")
    p.add_argument("--memory-limit", type=float, default=None,
                   help="GiB of address space per point (default: 90 %% of the memory available at start)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per point (default: all cores)")
    p.add_argument("--out", default="docs", help="folder of locost_scaling.{md,json,png} (default docs)")


def config_from_args(args: argparse.Namespace) -> ScalingConfig:
    """A ScalingConfig from parsed `add_arguments` options."""
    time_limit, overrides = parse_time_limits(args.time_limit)
    return ScalingConfig(sizes=parse_sizes(args.sizes), models=tuple(m.strip() for m in args.models.split(",") if m.strip()),
                         layers=args.layers, width=args.width, state_size=args.state_size, heads=args.heads,
                         time_limit=time_limit, model_time_limits=overrides,
                         memory_limit_gb=args.memory_limit, threads=args.threads, out=args.out)


def bench(args: argparse.Namespace) -> None:
    """`qfsum bench locost-scaling`."""
    import shlex

    run(config_from_args(args), "qfsum " + shlex.join(args.argv))


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "--child":
    _child_main(sys.argv[2], int(sys.argv[3]), sys.argv[4])
