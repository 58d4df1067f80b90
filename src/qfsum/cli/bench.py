"""`qfsum bench ...`: benchmarks that print figures (not tests); their bodies live in `qfsum.bench`."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    """Add `bench WHICH` to the top-level subparsers (each body imports its heavy libraries when it runs)."""
    from ..bench import batch, decode_command, locost_scaling, segenc_scaling, serve, task, writers

    bench = sub.add_parser("bench", help="benchmarks that print figures (not tests)").add_subparsers(
        dest="which", required=True)
    p = bench.add_parser("segenc", help="SegEnc vs full attention: encoder time and peak memory at 1K-64K tokens")
    segenc_scaling.add_arguments(p)
    p.set_defaults(func=segenc_scaling.bench_segenc)
    p = bench.add_parser("locost-scaling", help="LOCOST vs dense-attention encoder: time and peak memory, 1K-600K tokens")
    locost_scaling.add_arguments(p)
    p.set_defaults(func=locost_scaling.bench)
    p = bench.add_parser("serve", help="HTTP load on loopback: micro-batched vs naive server, 1/8/64 clients")
    serve.add_arguments(p)
    p.set_defaults(func=serve.bench_serve)
    decode_command.add_arguments(bench.add_parser("decode", help="lookahead vs greedy decoding: speedup, identical outputs, batched throughput"))
    task.add_arguments(bench.add_parser("task", help="ROUGE of a writer model on (query, passage) task examples"))
    writers.add_arguments(bench.add_parser("writers", help="writer bake-off: ROUGE, faithfulness, prefill/decode speed, "
                                           "memory of candidate models, zero-shot and after short SFT"))
    p = bench.add_parser("batch", help="batch-job throughput: one process vs local Ray, on QMSum requests")
    batch.add_bench_arguments(p)
    p.set_defaults(func=batch.bench_batch)
