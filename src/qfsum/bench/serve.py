"""`qfsum bench serve`: load on loopback, micro-batched server versus a naive one, same run.

For each pipeline, server mode (naive, batched) and client count, a fresh `qfsum serve` process
starts (so no backlog leaks between points), takes one warm-up request, then N closed-loop clients
send requests for `--duration` seconds (or until `--requests` were sent). Requests still open when
the time is up get as long again to finish; the rest are cancelled and counted as unfinished.

Mode `python` is the same requests through the Python API in this process, no HTTP: with 1 "client"
each request is one `Pipeline.summarize_batch` call of its own; with N, N requests go in one call
(the latency of each is that call's). `--passage-words N` turns QMSum / JSONL examples into the
short-passage task (a query and the first N words of its gold evidence spans).

`--abandon-after S` makes some clients impatient (`--impatient`, default half of them): such a client
hangs up on a request not answered within S seconds, counts it as abandoned and sends its next one.
Whether the server then stops working for it shows in what the patient clients get.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import math
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import QfsumError
from ..threads import add_threads_argument, parse_threads, set_threads

MEETING_QUERIES = [
    "What did the meeting decide about the budget?",
    "When will the reading room close?",
    "What will replace the reading room while it is closed?",
    "What did the group say about the children's section?",
    "Who will place the order, and when?",
    "Summarize the whole meeting.",
    "What risks were raised about the schedule?",
    "What did the survey find?",
]
MODES = ("naive", "batched", "python")  # a naive server, the micro-batching one, the Python API
START_TIMEOUT_S = 600  # the default pipeline loads two models on a busy CPU


@dataclass
class Point:
    """One measurement: a pipeline, a server mode, a client count."""

    pipeline: str
    mode: str
    clients: int
    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # status code (or exception name) -> count
    unfinished: int = 0
    abandoned: int = 0  # requests an impatient client hung up on
    seconds: float = 0.0
    throughput: float = 0.0  # answered requests per second
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    mean_batch: float = 0.0


def payloads(data: str, split: str | None = None, passage_words: int | None = None) -> list[dict]:
    """Request bodies: a text file with the meeting questions above, or QMSum / JSONL examples (whole
    meetings, or with `passage_words` short passages)."""
    path = Path(data)
    if path.suffix.lower() in (".txt", ".md"):
        from ..readers import read_text_file

        text = read_text_file(path)
        return [{"document": text, "queries": [q]} for q in MEETING_QUERIES]
    if passage_words is not None:
        return short_passages(data, split, passage_words)
    from .batch import qmsum_requests

    return [{"segments": r["segments"], "queries": [r["query"]]} for r in qmsum_requests(data, split, 64)]


def short_passages(data: str, split: str | None, words: int) -> list[dict]:
    """The short-passage task: each example's query with the first `words` words of the text its gold
    evidence spans cover, line breaks kept (examples without spans are skipped)."""
    from ..readers import read_examples
    from ..training.writer.taskdata import span_passage

    path = Path(data)
    if split is None and path.is_dir() and (path / "val").is_dir():
        split = "val"
    bodies = []
    for example in read_examples(path, split):
        lines, left = [], words
        for line in span_passage(example).splitlines():
            kept = line.split()[:left]
            if kept:
                lines.append(" ".join(kept))
                left -= len(kept)
            if left <= 0:
                break
        if lines:
            bodies.append({"document": "\n\n".join(lines), "queries": [example.query]})
    if not bodies:
        raise QfsumError(f"{data}: no example with gold evidence spans, so no short passages")
    return bodies


def _percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else 0.0


@dataclass(frozen=True)
class Impatience:
    """The first `clients` clients of a point hang up on a request after `after_s` seconds."""

    clients: int = 0
    after_s: float | None = None


async def _load(url: str, bodies: list[dict], clients: int, duration: float, limit: int, point: Point,
                impatience: Impatience = Impatience(), transport: object | None = None) -> None:
    import httpx

    latencies: list[float] = []
    sent = itertools.count()
    stop_at = time.perf_counter() + duration
    errors = point.errors

    async def client(http: httpx.AsyncClient, patience_s: float | None) -> None:
        while time.perf_counter() < stop_at:
            n = next(sent)
            if n >= limit:
                return
            point.sent += 1
            started = time.perf_counter()
            try:
                # wait_for cancels the request on time-out: httpx then closes its connection, which the
                # server sees as a client that went away.
                response = await asyncio.wait_for(http.post(f"{url}/v1/summarize", json=bodies[n % len(bodies)]),
                                                  patience_s)
                status = str(response.status_code)
            except TimeoutError:
                point.abandoned += 1
                continue
            except httpx.HTTPError as err:
                status = type(err).__name__
            if status == "200":
                point.ok += 1
                latencies.append((time.perf_counter() - started) * 1e3)
            else:
                errors[status] = errors.get(status, 0) + 1
                if status == "429":  # honour the server's back-off, as a real client would
                    await asyncio.sleep(float(response.headers.get("Retry-After", 1)))

    began = time.perf_counter()
    timeout = httpx.Timeout(duration * 2 + 120)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    options = {"transport": transport} if transport is not None else {}  # tests answer in-process
    async with httpx.AsyncClient(timeout=timeout, limits=limits, **options) as http:
        tasks = [asyncio.create_task(client(http, impatience.after_s if k < impatience.clients else None))
                 for k in range(clients)]
        _, late = await asyncio.wait(tasks, timeout=duration * 2)  # open requests get `duration` more
        for task in late:
            task.cancel()
        point.unfinished = len(late)
    point.seconds = time.perf_counter() - began
    point.throughput = point.ok / point.seconds
    point.p50_ms, point.p95_ms, point.p99_ms = (_percentile(latencies, q) for q in (50, 95, 99))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A `qfsum serve` child process on a free loopback port."""

    def __init__(self, pipeline: str, naive: bool, server_args: list[str], log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "qfsum.cli", "serve", "--pipeline", pipeline, "--port", str(self.port),
                   "--log-level", "warning", *server_args] + (["--naive"] if naive else [])
        self.log = log.open("a")
        env = {k: v for k, v in os.environ.items() if k != "QFSUM_API_KEY"}
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self) -> None:
        import httpx

        give_up = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < give_up:
            if self.process.poll() is not None:
                raise QfsumError(f"the server exited with code {self.process.returncode}; see {self.log.name}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise QfsumError(f"the server did not start within {START_TIMEOUT_S} s; see {self.log.name}")

    def batch_sizes(self) -> tuple[float, float]:
        """(sum, count) of the batch-size histogram so far."""
        import httpx

        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        found = {m.group(1): float(m.group(2)) for m in re.finditer(r"^qfsum_batch_size_(sum|count) (\S+)$", text, re.M)}
        return found.get("sum", 0.0), found.get("count", 0.0)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def measure(pipeline: str, mode: str, clients: int, args: argparse.Namespace, bodies: list[dict], out: Path) -> Point:
    """Start a fresh server, warm it up, load it, read its batch sizes, stop it."""
    import httpx

    server_args = ["--max-batch-size", str(args.max_batch_size), "--deadline", str(args.deadline),
                   "--max-queue", str(args.max_queue)]
    server = ServerProcess(pipeline, mode == "naive", server_args, out / f"server-{Path(pipeline).name}-{mode}.log")
    try:
        server.wait_ready()
        warm_up = httpx.post(f"{server.url}/v1/summarize", json=bodies[0], timeout=START_TIMEOUT_S)
        if warm_up.status_code != 200:  # e.g. 504: one request took longer than --deadline
            raise QfsumError(f"{Path(pipeline).name} ({mode} server): the warm-up request got HTTP {warm_up.status_code}; "
                             f"is the machine busy? (--deadline is {args.deadline:g} s)")
        before = server.batch_sizes()
        point = Point(pipeline, mode, clients)
        asyncio.run(_load(server.url, bodies, clients, args.duration, args.requests, point, _impatience(args, clients)))
        after = server.batch_sizes()
        calls = after[1] - before[1]
        point.mean_batch = (after[0] - before[0]) / calls if calls else 0.0
        return point
    finally:
        server.stop()


def measure_python(pipeline: str, batch: int, args: argparse.Namespace, bodies: list[dict]) -> Point:
    """The same requests through `Pipeline.summarize_batch` in this process, `batch` at a time, for
    `--duration` seconds (or `--requests` requests), after one warm-up call."""
    from ..pipeline import Pipeline
    from ..serving.models import DocumentIn

    loaded = Pipeline.load(pipeline)
    items = [(DocumentIn(**{k: v for k, v in body.items() if k != "queries"}).to_document(), query)
             for body in bodies for query in body["queries"]]
    loaded.summarize_batch(items[:1])
    point, latencies, calls = Point(pipeline, "python", batch), [], 0
    began = time.perf_counter()
    while time.perf_counter() - began < args.duration and point.sent < args.requests:
        chunk = [items[(point.sent + i) % len(items)] for i in range(min(batch, args.requests - point.sent))]
        started = time.perf_counter()
        loaded.summarize_batch(chunk)
        latencies += [(time.perf_counter() - started) * 1e3] * len(chunk)
        point.sent += len(chunk)
        point.ok += len(chunk)
        calls += 1
    point.seconds = time.perf_counter() - began
    point.throughput = point.ok / point.seconds
    point.p50_ms, point.p95_ms, point.p99_ms = (_percentile(latencies, q) for q in (50, 95, 99))
    point.mean_batch = point.ok / calls if calls else 0.0
    return point


def _impatience(args: argparse.Namespace, clients: int) -> Impatience:
    """How many of a point's `clients` hang up, and after how long (none without --abandon-after)."""
    if args.abandon_after is None:
        return Impatience()
    share = args.impatient if args.impatient is not None else (clients + 1) // 2
    return Impatience(min(share, clients), args.abandon_after)


def _table(points: list[Point]) -> str:
    rows = ["| pipeline | server | clients | answered | req/s | p50 ms | p95 ms | p99 ms | errors | unfinished | abandoned | mean batch |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |"]
    for p in points:
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(p.errors.items())) or "0"
        rows.append(f"| {p.pipeline} | {p.mode} | {p.clients} | {p.ok} | {p.throughput:.2f} | {p.p50_ms:.0f} | "
                    f"{p.p95_ms:.0f} | {p.p99_ms:.0f} | {errors} | {p.unfinished} | {p.abandoned} | {p.mean_batch:.1f} |")
    return "\n".join(rows)


def _speedups(points: list[Point]) -> list[str]:
    lines = []
    for (pipeline, clients), group in itertools.groupby(points, key=lambda p: (p.pipeline, p.clients)):
        by_mode = {p.mode: p for p in group}
        if {"naive", "batched"} <= by_mode.keys() and by_mode["naive"].throughput > 0:
            ratio = by_mode["batched"].throughput / by_mode["naive"].throughput
            lines.append(f"{pipeline}, {clients} clients: batched/naive throughput {ratio:.2f}x")
    return lines


def bench_serve(args: argparse.Namespace) -> None:
    """`qfsum bench serve`: the body of the command."""
    try:
        clients = [int(c) for c in str(args.clients).split(",") if c.strip()]
    except ValueError:
        raise QfsumError(f"--clients must list whole numbers, got '{args.clients}'") from None
    pipelines = [p.strip() for p in args.pipelines.split(",") if p.strip()]
    if not clients or min(clients) < 1 or args.duration <= 0 or args.requests < 1:
        raise QfsumError("--clients must list counts >= 1; --duration and --requests must be positive")
    threads = set_threads(parse_threads(args.threads))  # this process (python mode) and every server it starts
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - set(MODES):
        raise QfsumError(f"--modes must list some of {', '.join(MODES)}, got '{args.modes}'")
    if args.passage_words is not None and args.passage_words < 1:
        raise QfsumError("--passage-words must be >= 1")
    abandon_after, impatient = args.abandon_after, args.impatient
    if abandon_after is not None and not (math.isfinite(abandon_after) and abandon_after > 0):
        raise QfsumError("--abandon-after must be a positive number of seconds")
    if impatient is not None and (abandon_after is None or impatient < 0):
        raise QfsumError("--impatient needs --abandon-after, and a count >= 0")
    if abandon_after is not None and "python" in modes:
        raise QfsumError("--abandon-after applies to the HTTP modes (naive, batched), not to python")
    bodies = payloads(args.data, args.split, args.passage_words)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    points = []
    for pipeline in pipelines:
        for n in clients:
            for mode in modes:
                point = (measure_python(pipeline, n, args, bodies) if mode == "python"
                         else measure(pipeline, mode, n, args, bodies, out))
                print(f"{pipeline:<12} {mode:<8} {n:>3} clients: {point.throughput:7.2f} req/s  "
                      f"p99 {point.p99_ms:8.0f} ms  errors {sum(point.errors.values())}  batch {point.mean_batch:.1f}",
                      file=sys.stderr, flush=True)
                points.append(point)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}"
    data = f"{args.data}" + (f", the first {args.passage_words} words of each query's gold spans" if args.passage_words else "")
    header = (f"`qfsum bench serve` on {dt.date.today().isoformat()} ({machine}, {threads} torch threads); data {data}; "
              f"{args.duration:g} s or {args.requests} requests per point; max batch {args.max_batch_size}, "
              f"deadline {args.deadline:g} s")
    if abandon_after is not None:
        header += (f"; {impatient if impatient is not None else 'half'} of the clients of each point hang up "
                   f"after {abandon_after:g} s (answered, req/s and latency count every answered request)")
    report = "\n".join([header, "", _table(points), "", *_speedups(points)]) + "\n"
    (out / "results.md").write_text(report)
    (out / "results.json").write_text(json.dumps({"header": header, "points": [asdict(p) for p in points]}, indent=2))
    print(report)
    print(f"wrote {out}/results.md and {out}/results.json")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of `qfsum bench serve`."""
    p.add_argument("--pipelines", default="extractive,default", help="comma-separated (default extractive,default)")
    p.add_argument("--clients", default="1,8,64", help="concurrent clients per point, comma-separated (default 1,8,64)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load per point (default 60)")
    p.add_argument("--requests", type=int, default=5000, help="at most this many requests per point (default 5000)")
    p.add_argument("--data", default="examples/meeting.txt",
                   help="a .txt/.md document (asked the built-in meeting questions), or QMSum / JSONL examples")
    p.add_argument("--split", default=None, help="the QMSum split (default: every split; val with --passage-words)")
    p.add_argument("--passage-words", type=int, default=None,
                   help="the short-passage task: each query with the first N words of its gold evidence spans")
    p.add_argument("--modes", default="naive,batched",
                   help=f"comma-separated, of {', '.join(MODES)} (default naive,batched; python: the Python API in-process, "
                        "CLIENTS queries per call)")
    p.add_argument("--max-batch-size", type=int, default=16, help="the batched server's --max-batch-size")
    p.add_argument("--max-queue", type=int, default=256, help="the batched server's --max-queue")
    p.add_argument("--deadline", type=float, default=60.0, help="both servers' --deadline in seconds")
    p.add_argument("--abandon-after", type=float, default=None, metavar="S",
                   help="impatient clients hang up on a request not answered within S seconds and send the next")
    p.add_argument("--impatient", type=int, default=None, metavar="N",
                   help="with --abandon-after: how many clients of each point are impatient (default: half, rounded up)")
    add_threads_argument(p)
    p.add_argument("--out", default="runs/bench-serve", help="folder for results.md, results.json and server logs")
