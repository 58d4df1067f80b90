"""Draw answer sentences from several runs for a blind reader, and split the reader's labels back.

    python benchmarks/blind_sample.py draw runs/v60-a runs/v60-b --per-run 40 --out /tmp/blind
    # a reader labels /tmp/blind/sheet.jsonl (adds "supported": true/false and "reason" to each line),
    # seeing only the question, the sentence and its evidence: not which run wrote it
    python benchmarks/blind_sample.py split /tmp/blind/labelled.jsonl /tmp/blind/key.json \
        --name runs/v60-a=benchmarks/labels/a.jsonl --name runs/v60-b=benchmarks/labels/b.jsonl

`draw` takes `--per-run` sentences of each run's answers at random (seeded), shuffles them together
(seeded) and writes `sheet.jsonl` (item, question, sentence, numbered evidence segments) and
`key.json` (which run each item came from), to be kept from the reader. `split` writes one label file
per run in the format `support_agreement.py` reads (id, sentence, supported, reason).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from qfsum.errors import QfsumError
from qfsum.evaluation.runs import evidence_texts, load_run
from qfsum.readers import read_examples
from qfsum.text import split_sentences


def draw(runs: list[Path], per_run: int, data: str, split: str, seed: int, out: Path) -> None:
    examples = {e.id: e for e in read_examples(data, split)}
    items = []
    for run_path in runs:
        run = load_run(run_path)
        sentences = [(row, s) for row in run.rows for s in split_sentences(row["prediction"], any_case=True)]
        if len(sentences) < per_run:
            raise QfsumError(f"{run_path}: {len(sentences)} answer sentences, fewer than --per-run {per_run}")
        for row, sentence in random.Random(seed).sample(sentences, per_run):
            evidence = evidence_texts(row, examples.get(row["id"]), run.config.get("pipeline"))
            items.append({"run": str(run_path), "id": row["id"], "question": row["query"],
                          "sentence": sentence, "evidence": evidence})
    random.Random(seed + 1).shuffle(items)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "sheet.jsonl").open("w", encoding="utf-8") as sheet:
        for number, item in enumerate(items):
            segments = {f"[{k + 1}]": text for k, text in enumerate(item["evidence"])}
            sheet.write(json.dumps({"item": number, "question": item["question"], "sentence": item["sentence"],
                                    "evidence": segments}, ensure_ascii=False) + "\n")
    key = [{"item": n, "run": i["run"], "id": i["id"], "sentence": i["sentence"]} for n, i in enumerate(items)]
    (out / "key.json").write_text(json.dumps(key, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"{len(items)} sentences from {len(runs)} runs: {out / 'sheet.jsonl'} (for the reader), {out / 'key.json'} (not)")


def split_labels(labelled: Path, key_path: Path, names: dict[str, Path]) -> None:
    key = {k["item"]: k for k in json.loads(key_path.read_text(encoding="utf-8"))}
    per_run: dict[str, list[dict]] = {run: [] for run in names}
    for line in labelled.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        label = json.loads(line)
        source = key[label["item"]]
        if label.get("sentence", source["sentence"]) != source["sentence"]:
            raise QfsumError(f"item {label['item']}: the labelled sentence is not the one drawn")
        if not isinstance(label.get("supported"), bool):
            raise QfsumError(f"item {label['item']}: 'supported' must be true or false")
        if source["run"] in per_run:
            per_run[source["run"]].append({"id": source["id"], "sentence": source["sentence"],
                                           "supported": label["supported"], "reason": label.get("reason", "")})
    for run, labels in per_run.items():
        names[run].write_text("".join(json.dumps(l, ensure_ascii=False) + "\n" for l in labels), encoding="utf-8")
        share = sum(l["supported"] for l in labels) / len(labels) if labels else float("nan")
        print(f"{run}: {len(labels)} labels, {share:.3f} supported by the reader -> {names[run]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("draw", help="sample sentences of several runs for a blind reader")
    p.add_argument("runs", nargs="+", type=Path, help="evaluate run folders (same split)")
    p.add_argument("--per-run", type=int, default=40)
    p.add_argument("--data", default="../shared/data/qmsum")
    p.add_argument("--split", default="val")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, required=True)
    s = commands.add_parser("split", help="one label file per run from the reader's labelled sheet")
    s.add_argument("labelled", type=Path, help="the sheet with 'supported' and 'reason' added to each line")
    s.add_argument("key", type=Path, help="key.json written by draw")
    s.add_argument("--name", action="append", required=True, help="RUN=LABELS.jsonl, once per run")
    args = parser.parse_args()
    try:
        if args.command == "draw":
            draw(args.runs, args.per_run, args.data, args.split, args.seed, args.out)
        else:
            names = dict(n.split("=", 1) for n in args.name)
            split_labels(args.labelled, args.key, {run: Path(path) for run, path in names.items()})
    except (QfsumError, OSError, ValueError, KeyError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
