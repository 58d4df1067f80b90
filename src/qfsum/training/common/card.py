"""The model card (README.md) of a trained extractor: what it is, how it was trained, how it scored."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TITLES = {
    "relreg": "RelReg: a cross-encoder that regresses ROUGE relevance",
    "relregtt": "RelRegTT: a two-tower encoder whose inner product regresses ROUGE relevance",
    "dpr": "DPR: a dual encoder trained on positives against in-batch and hard negatives",
}
COLUMNS = (
    ("top1_rouge1", "top-1 R-1"),
    ("top1_rouge2", "top-1 R-2"),
    ("top5_rouge1", "top-5 R-1"),
    ("topall_rouge1", "all@budget R-1"),
    ("span_precision", "span P"),
    ("span_recall", "span R"),
)


def command_section(run: dict[str, Any]) -> list[str]:
    """Model-card lines: the command that trained the model, then the validation heading."""
    return ["", "Command:", "", "```bash", run.get("command") or "(Python API)", "```", "", "## Validation", ""]


def _segment_option(segmenter: dict[str, Any]) -> str:
    """The `--segment` value that rebuilds this segmenter."""
    if segmenter["kind"] != "window":
        return segmenter["kind"]
    return f"{segmenter['size']}:{segmenter['tokenizer']}" if segmenter.get("tokenizer") else str(segmenter["size"])


def _usage(config: dict[str, Any], out: Path) -> list[str]:
    kind, segmenter = config["kind"], config["segmenter"]
    scorer_kind = "relreg" if kind == "relreg" else "dense"
    segment = _segment_option(segmenter)
    data = config["val_data"] or config["data"]
    window = segmenter["kind"] == "window"
    shown = json.dumps({k: v for k, v in segmenter.items() if v is not None and (window or k == "kind")})
    return [
        "## Use",
        "",
        "```bash",
        f"qfsum evaluate-extractor --data {data} --split {config['val_split'] or 'val'} --scorer {out} --segment {segment}",
        "```",
        "",
        f'In a pipeline: `"segmenter": {shown}, "scorer": {{"kind": "{scorer_kind}", "model": "{out}"}}`.',
        "It loads with sentence-transformers "
        + ("(`CrossEncoder(dir).predict([(query, segment)])`)." if kind == "relreg"
           else '(`SentenceTransformer(dir)`; encode queries with `prompt_name="query"`, segments with `prompt_name="passage"`).'),
        "",
    ]


def history_table(run: dict[str, Any], columns: Sequence[tuple[str, str]] = COLUMNS) -> list[str]:
    """Model-card lines: the validation history as a table of `(key, title)` columns, the kept step marked."""
    if not run["history"]:
        return ["No validation (the last model was kept).", ""]
    best_step = (run.get("best") or {}).get("step")
    lines = ["| step | " + " | ".join(title for _, title in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row in sorted(run["history"], key=lambda h: h["step"]):
        mark = " (kept)" if row["step"] == best_step else ""
        cells = [f"{row[key]:.2f}" if key in row else "-" for key, _ in columns]
        lines.append(f"| {row['step']}{mark} | " + " | ".join(cells) + " |")
    return lines + [""]


def write_model_card(out: Path, run: dict[str, Any]) -> Path:
    """Write `out/README.md` from a finished run record (see `extractor.train_extractor`)."""
    config, data = run["config"], run["data"]
    segment = _segment_option(config["segmenter"])
    pairs = config["pairs"]
    kind = config["kind"]
    val = (f"{data['validation_examples']} examples of `{config['val_data'] or config['data']}` split "
           f"`{config['val_split']}` (whole documents drawn with seed {config['seed']}); ROUGE F1 x 100 against "
           f"the reference; 'all@budget' is every segment in rank order cut at {config['val_budget']} tokens of "
           f"`{config['val_tokenizer']}`, whose gold-span precision/recall is reported")
    seconds = run["seconds"]
    took = f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
    lines = [
        f"# qfsum extractor — {TITLES[kind]}",
        "",
        f"Scores how relevant each segment of a long document is to a query; trained by "
        f"`qfsum train extractor` from `{config['base']}`.",
        "",
        *_usage(config, out.resolve()),
        "## Training",
        "",
        f"- kind: `{kind}`; base model: `{config['base']}`",
        f"- data: `{config['data']}` split `{config['split']}`: {data['examples']} queries over "
        f"{data['documents']} documents, {data['segments']} (query, segment) pairs",
        f"- segments: `--segment {segment}`",
        f"- labels: mean F1 of {', '.join(config['label_metrics'])} between segment and reference (rouge-score, stemmed)",
        f"- positives: label >= {pairs['positive_threshold']} and among the query's best {pairs['max_positives']} "
        f"({data['positives']} in all); "
        + (f"one {pairs['hard_negatives']} hard negative each" if kind == "dpr"
           else f"{pairs['negatives_per_positive'] if pairs['negatives_per_positive'] is not None else 'all'} "
                f"other segments per positive"),
        f"- training rows: {data['rows']} (max pairs: {pairs['max_pairs']}, seed {pairs['seed']})",
        f"- epochs {config['epochs']}, max steps {config['max_steps']}, batch {config['batch_size']}, "
        f"learning rate {config['lr']}, warmup {config['warmup']}, max length {config['max_length']}, "
        f"precision {config['dtype']}",
        f"- {run['step']} steps in {took} on {run['machine']} ({run['sessions']} session(s))",
        *command_section(run),
        val + ".",
        "",
        *history_table(run),
    ]
    path = out / "README.md"
    path.write_text("\n".join(lines))
    return path
