"""`--help` that stays true: every command shows its defaults and one or two examples.

The examples live here, one entry per command; `tests/test_cli.py` parses each one with the real
parser (a renamed flag breaks the test, not the user) and fails on a command without examples or
an option without help text.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

EXAMPLES: dict[str, tuple[str, ...]] = {
    "summarize": (
        'qfsum summarize report.txt -q "What was decided about the budget?" -q "Who owns the next steps?"',
        "qfsum summarize meeting.json --jsonl --pipeline extractive   # its own queries, one JSON line per answer",
    ),
    "pipelines list": ("qfsum pipelines list",),
    "pipelines save": (
        "qfsum pipelines save default my-pipeline/ --copy-models   # loads where the packaged weights are not",
        "qfsum pipelines save runs/segenc-bart-large shipped/segenc",
    ),
    "evaluate": (
        "qfsum evaluate --data ../shared/data/qmsum --split val -p extractive --limit 20",
        "qfsum evaluate --data data.jsonl -p default --support-scorer path/to/nli-model --out runs/nli",
    ),
    "report": ("qfsum report runs/evaluate-default-val",),
    "compare": ("qfsum compare runs/evaluate-extractive-val runs/evaluate-default-val --metrics rouge1,rougeLsum",),
    "evaluate-extractor": (
        "qfsum evaluate-extractor --data ../shared/data/qmsum --split val --scorer hybrid --segment 256",
        "qfsum evaluate-extractor --data ../shared/data/qmsum --split val --scorer minilm-dpr-qmsum --out runs/dpr",
    ),
    "train extractor": (
        "qfsum train extractor --kind dpr --data ../shared/data/qmsum --max-pairs 20000 --out models/dpr",
        "qfsum train extractor --kind relreg --data ../shared/data/qmsum --segment sentence --out models/relreg",
    ),
    "train seq2seq": (
        "qfsum train seq2seq --arch segenc --base facebook/bart-large --data ../shared/data/qmsum "
        "--out runs/segenc-bart-large --max-input 16384 --segment-length 512",
    ),
    "train locost": (
        "qfsum train locost --objective gsg --config tiny --data ../shared/data/qmsum --out runs/locost-gsg",
        "qfsum train locost --objective summarize --init runs/locost-gsg --data ../shared/data/qmsum "
        "--out runs/locost-qmsum",
    ),
    "train sft": ("qfsum train sft --base smollm2 --data ../shared/data/qmsum --out runs/rt-sft",),
    "train distill": (
        "qfsum train distill --teacher pipeline:default --student smollm2 --data ../shared/data/qmsum "
        "--out runs/rt-distill",
    ),
    "train dpo": ("qfsum train dpo --model runs/rt-sft --data ../shared/data/qmsum --out runs/rt-dpo",),
    "train export": ("qfsum train export --model runs/rt-sft --out my-writer/",),
    "bench segenc": ("qfsum bench segenc --sizes 1024,4096,16384",),
    "bench locost-scaling": ("qfsum bench locost-scaling --sizes 1024,16384 --threads 2",),
    "bench serve": ("qfsum bench serve --pipelines extractive --clients 1,8 --duration 20",),
    "bench decode": ("qfsum bench decode --data ../shared/data/qmsum --limit 100",),
    "bench task": ("qfsum bench task --model runs/rt-sft --data ../shared/data/qmsum --split val",),
    "bench writers": (
        "qfsum bench writers --candidates smollm2,qwen2.5-coder-0.5b --data ../shared/data/qmsum --limit 60",
        "qfsum bench writers --candidates smollm2,qwen2.5-coder-0.5b --data ../shared/data/qmsum --limit 20 --sft-steps 50",
    ),
    "bench batch": ("qfsum bench batch --data ../shared/data/qmsum --split val --requests 64",),
    "serve": (
        "qfsum serve --pipeline default --threads 2",
        "QFSUM_API_KEY=s3cret qfsum serve --host 0.0.0.0 --port 8080",
    ),
    "batch": (
        "qfsum batch --input requests.jsonl --output answers.jsonl --pipeline extractive",
        "qfsum batch -i requests.jsonl -o answers.jsonl --executor ray --workers 4   # one thread per actor",
    ),
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks and adds "(default: X)" to options that have a default and do
    not already say it (a None or False default, meaning "not given", is not shown)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if ("default" in text.lower() or default in (None, False, argparse.SUPPRESS)
                or isinstance(action, (argparse._HelpAction, argparse._VersionAction))):
            return text
        if not action.option_strings and action.nargs not in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return text  # a required positional has no default to show
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


def leaf_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
                 ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """(command path, parser) of every runnable command, e.g. (("train", "locost"), parser)."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        yield path, parser
    for group in groups:
        for name, sub in group.choices.items():
            yield from leaf_parsers(sub, (*path, name))


def finish_help(parser: argparse.ArgumentParser) -> None:
    """Give every command the shared formatter (one look for all), its examples (after any epilog
    it has, unless that already shows examples) and `-v`."""
    parser.formatter_class = HelpFormatter
    for path, sub in leaf_parsers(parser):
        sub.formatter_class = HelpFormatter
        examples = EXAMPLES.get(" ".join(path))
        if examples and "example" not in (sub.epilog or "").lower():  # a command may bring its own
            block = "examples:\n" + "\n".join(f"  {line}" for line in examples)
            sub.epilog = f"{sub.epilog}\n\n{block}" if sub.epilog else block
        if not any("--verbose" in a.option_strings for a in sub._actions):
            # SUPPRESS: when absent here, the top-level `qfsum -v` value is kept
            sub.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="show library warnings, progress bars and log lines (default: off)")
