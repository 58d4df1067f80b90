"""`qfsum compare RUN_A RUN_B`: is B better than A on the same examples? (paired bootstrap)"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import QfsumError

# evaluate runs: ROUGE and the faithfulness metrics; evaluate-extractor runs: top-k ROUGE and spans
EVALUATE_METRICS = ("rouge1", "rouge2", "rougeL", "rougeLsum", "number_precision", "name_precision",
                    "supported_sentences")
EXTRACTOR_METRICS = ("top1_rouge1", "top5_rouge1", "topall_rouge1", "topall_rougeLsum", "span_recall")


def _numeric_keys(rows: dict[str, dict]) -> set[str]:
    return {k for row in rows.values() for k, v in row.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seconds"}


def _support_scorer(run: Path) -> str | None:
    """The support scorer recorded in a run folder's metrics.json (None when not recorded)."""
    path = run / "metrics.json"
    try:
        return json.loads(path.read_text()).get("support_scorer") if path.is_file() else None
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return None


def cmd_compare(args: argparse.Namespace) -> None:
    from ..evaluation.bootstrap import check_same_examples, format_differences, paired_differences, read_rows

    if args.seed < 0:
        raise QfsumError(f"--seed must be >= 0, got {args.seed}")
    if args.draws < 100:
        raise QfsumError(f"--draws must be >= 100, got {args.draws}")
    run_a, run_b = Path(args.run_a), Path(args.run_b)
    a, b = read_rows(run_a), read_rows(run_b)
    shared = check_same_examples(a, b, (str(run_a), str(run_b)))
    available = _numeric_keys({i: a[i] for i in shared}) & _numeric_keys({i: b[i] for i in shared})
    if args.metrics:
        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
        unknown = [m for m in metrics if m not in available]
        if unknown:
            raise QfsumError(f"metric {', '.join(unknown)} is not in both runs; they share: "
                             f"{', '.join(sorted(available)) or 'none'}")
    else:
        metrics = [m for m in (*EVALUATE_METRICS, *EXTRACTOR_METRICS) if m in available]
        if not metrics:
            raise QfsumError("the runs share none of the usual metrics; name some with --metrics")
    scorers = {_support_scorer(p) or "lexical" for p in (run_a, run_b) if p.is_dir()}
    differences = paired_differences({i: a[i] for i in shared}, {i: b[i] for i in shared}, metrics,
                                     draws=args.draws, seed=args.seed)
    if args.json:
        print(json.dumps([d.__dict__ for d in differences], indent=2))
        return
    print(f"A = {run_a}\nB = {run_b}")
    only_a, only_b = len(a) - len(shared), len(b) - len(shared)
    note = f" (left out: {only_a} only in A, {only_b} only in B)" if only_a or only_b else ""
    print(f"{len(shared)} shared examples{note}; {args.draws:,} paired bootstrap draws, seed {args.seed}")
    if "supported_sentences" in metrics and len(scorers) > 1:
        print(f"note: supported_sentences was judged by different support scorers ({', '.join(sorted(scorers))})")
    for line in format_differences(differences):
        print(line)
    missing = [m for m in metrics if m not in {d.metric for d in differences}]
    if missing:
        print(f"no example has both runs' value of: {', '.join(missing)}")


def register(sub: Any) -> None:
    """Add `compare` to the top-level subparsers."""
    p = sub.add_parser(
        "compare", help="paired differences (B - A) with bootstrap intervals between two runs",
        description="For each metric: the mean of A and of B over the examples both runs scored, B - A, "
                    "its 95 % interval from resampling the examples, and the share of draws where B does "
                    "not beat A (a one-sided p-value).",
        epilog="examples:\n  qfsum compare runs/evaluate-extractive-val runs/evaluate-default-val\n"
               "  qfsum compare runs/A runs/B --metrics rouge1,rougeLsum,supported_sentences --json",
    )
    p.add_argument("run_a", help="baseline: an evaluate or evaluate-extractor run folder (or its .jsonl)")
    p.add_argument("run_b", help="challenger: a run folder (or .jsonl) on the same examples")
    p.add_argument("--metrics", default=None,
                   help="comma-separated per-example metrics (default: ROUGE and faithfulness, or top-k ROUGE and "
                        "span recall for extractor runs, those both runs have)")
    p.add_argument("--draws", type=int, default=10_000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="random seed of the resampling (default: 0)")
    p.add_argument("--json", action="store_true", help="print the differences as JSON")
    p.set_defaults(func=cmd_compare)
