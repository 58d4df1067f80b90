"""The Ray side of a batch job: Ray Data `map_batches` over an actor pool.

Each actor loads the pipeline once and summarizes whole blocks. The driver consumes finished
blocks as they stream in and writes each as a part file, so a killed job loses at most the blocks
in flight. The same code runs on a local Ray (started here) or on a cluster (`ray_address`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import QfsumError

if TYPE_CHECKING:
    from tqdm import tqdm

    from .job import Record
    from .parts import PartStore


class SummarizeActor:
    """A Ray Data callable class: one pipeline per actor, one model batch per block."""

    def __init__(self, spec: str, threads: int | None = None) -> None:
        from ..threads import set_threads
        from .work import load_pipeline

        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        # actors share the machine, each with one CPU reserved (num_cpus=1): one torch thread each
        # unless asked, before the pipeline loads torch
        set_threads(threads or 1)
        self.pipeline = load_pipeline(spec)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from .work import summarize_block

        # batch: {"id": (B,), "line": (B,)} object arrays of str
        ids, lines = [str(i) for i in batch["id"]], [str(x) for x in batch["line"]]
        out = summarize_block(self.pipeline, ids, lines)  # never raises for a bad record
        return {"id": np.array(ids, dtype=object), "line": np.array(out, dtype=object)}


def connect(address: str | None) -> None:
    """Start a local Ray (address None, no RAY_ADDRESS) or join a cluster, once per process."""
    import ray

    if ray.is_initialized():
        return
    from . import reaper

    local = not (address or os.environ.get("RAY_ADDRESS"))
    if local:
        reaper.start()  # before Ray starts: the local Ray's processes end with this driver, however it ends
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                 configure_logging=True)
    except (ConnectionError, ValueError, RuntimeError) as err:
        where = address or "a local Ray"
        raise QfsumError(f"cannot start or reach {where}: {str(err).splitlines()[0]}") from None
    if local:
        reaper.note()  # Ray's helpers exist now: a kill from here on finds them all


def run_on_ray(pending: Sequence["Record"], store: "PartStore", bar: "tqdm", spec: str, block_size: int,
               workers: int | None, threads: int | None = None) -> int:
    """Summarize the pending records on Ray (`connect` first), writing a part per finished block;
    return the actor count. `threads`: torch threads per actor (default 1)."""
    import ray
    import ray.data
    import ray.exceptions

    from .work import default_workers

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its execution chatter would break our progress bar
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours counts records across runs
    context.print_on_execution_start = False
    workers = workers or default_workers(ray.cluster_resources().get("CPU", 1))
    dataset = ray.data.from_items([{"id": r.id, "line": r.line} for r in pending],
                                  override_num_blocks=max(1, math.ceil(len(pending) / block_size)))
    results = dataset.map_batches(SummarizeActor, fn_constructor_kwargs={"spec": spec, "threads": threads}, batch_size=block_size,
                                  compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1,
                                  batch_format="numpy")
    # prefetch_batches=0: with prefetching a finished block is held back until the next one is
    # done, and a job killed meanwhile would lose (and later recompute) it
    try:
        for block in results.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0):
            lines = [str(x) for x in block["line"]]
            store.write(lines)
            bar.update(len(lines))
    except ray.exceptions.RayError as err:  # an actor died (out of memory, a crash in its set-up): parts so far are kept
        raise QfsumError(f"the Ray job failed, rerun to resume: {_first_line(err)}") from None
    return workers


def _first_line(err: Exception) -> str:
    """Ray's errors carry remote tracebacks: the last non-empty line says what went wrong."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(err).__name__
