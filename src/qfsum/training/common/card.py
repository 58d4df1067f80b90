"""The model card (README.md) of a trained model: one layout, a section per training family.

Every card reads: title; what the model is, how to use it and how it was trained (the family's
section); the command that trained it; how it was validated and the validation history.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...evaluation.rouge import ROUGE_KEYS
from .runs import took

Columns = Sequence[tuple[str, str]]  # (metric key, column title) of the validation table


@dataclass
class Section:
    """A family's part of the card."""

    title: str
    body: list[str]  # from below the title through the training facts
    validation: str  # how validation was run, above the history table
    columns: Columns


def write_model_card(out: Path, run: dict[str, Any], family: str) -> Path:
    """Write `out/README.md` from a finished run record of `family` (extractor, seq2seq, writer)."""
    section = FAMILIES[family](out, run)
    lines = [f"# {section.title}", "", *section.body,
             "", "Command:", "", "```bash", run.get("command") or "(Python API)", "```", "", "## Validation", "",
             section.validation, "", *history_table(run, section.columns)]
    path = out / "README.md"
    path.write_text("\n".join(lines))
    return path


def history_table(run: dict[str, Any], columns: Columns) -> list[str]:
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


# -- extractors (`qfsum train extractor`) ------------------------------------------------------------

EXTRACTOR_TITLES = {
    "relreg": "RelReg: a cross-encoder that regresses ROUGE relevance",
    "relregtt": "RelRegTT: a two-tower encoder whose inner product regresses ROUGE relevance",
    "dpr": "DPR: a dual encoder trained on positives against in-batch and hard negatives",
}
EXTRACTOR_COLUMNS = (
    ("top1_rouge1", "top-1 R-1"),
    ("top1_rouge2", "top-1 R-2"),
    ("top5_rouge1", "top-5 R-1"),
    ("topall_rouge1", "all@budget R-1"),
    ("span_precision", "span P"),
    ("span_recall", "span R"),
)


def _segment_option(segmenter: dict[str, Any]) -> str:
    """The `--segment` value that rebuilds this segmenter."""
    if segmenter["kind"] != "window":
        return segmenter["kind"]
    return f"{segmenter['size']}:{segmenter['tokenizer']}" if segmenter.get("tokenizer") else str(segmenter["size"])


def _extractor_usage(config: dict[str, Any], out: Path) -> list[str]:
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


def _extractor(out: Path, run: dict[str, Any]) -> Section:
    config, data = run["config"], run["data"]
    segment = _segment_option(config["segmenter"])
    pairs = config["pairs"]
    kind = config["kind"]
    validation = (
        f"{data['validation_examples']} examples of `{config['val_data'] or config['data']}` split "
        f"`{config['val_split']}` (whole documents drawn with seed {config['seed']}); ROUGE F1 x 100 against "
        f"the reference; 'all@budget' is every segment in rank order cut at {config['val_budget']} tokens of "
        f"`{config['val_tokenizer']}`, whose gold-span precision/recall is reported.")
    body = [
        f"Scores how relevant each segment of a long document is to a query; trained by "
        f"`qfsum train extractor` from `{config['base']}`.",
        "",
        *_extractor_usage(config, out.resolve()),
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
        f"- {run['step']} steps in {took(run['seconds'])} on {run['machine']} ({run['sessions']} session(s))",
    ]
    return Section(f"qfsum extractor — {EXTRACTOR_TITLES[kind]}", body, validation, EXTRACTOR_COLUMNS)


# -- seq2seq writers (`qfsum train seq2seq`, `qfsum train locost`) -----------------------------------------

SEQ2SEQ_TITLES = {
    "segenc": "SegEnc: windows of the query and the document, encoded one by one, fused in the decoder",
    "led": "LED: a Longformer-Encoder-Decoder reading the query and the document, global attention on the query",
    "plain": "a seq2seq model reading the query and the document cut at its input limit",
}
SEQ2SEQ_COLUMNS = (("rouge1", "R-1"), ("rouge2", "R-2"), ("rougeLsum", "R-Lsum"), ("rougeL", "R-L (no split)"),
                   ("rouge_mean", "mean R-1/2/Lsum"))


def _seq2seq(out: Path, run: dict[str, Any]) -> Section:
    config, data = run["config"], run["data"]
    arch = config["arch"]
    windows = (f"windows of {config['segment_length']} tokens (query included), "
               f"{'50 % overlap' if config['overlap'] else 'disjoint'}, " if arch == "segenc" else "")
    start = f"`{config['init']}` (itself from `{config['base']}`)" if config["init"] else f"`{config['base']}`"
    losses = run.get("train_loss") or []
    loss = f"; training loss {losses[0]['loss']:.3f} -> {losses[-1]['loss']:.3f}" if len(losses) > 1 else ""
    val = config["val_data"] or config["data"]
    validation = (
        f"{data['validation_examples']} examples of `{val}` split `{config['val_split']}` (whole documents drawn "
        f"with seed {config['seed']}), {config['num_beams']}-beam search, at most {config['max_new_tokens']} new "
        "tokens; ROUGE F1 x 100 (rouge-score, stemmed; R-Lsum splits sentences, the papers' R-L).")
    body = [
        f"Answers a query about a long document with a summary; fine-tuned by `qfsum train seq2seq` from {start}.",
        "",
        "## Use",
        "",
        "```bash",
        f"qfsum summarize meeting.json --query 'What was decided?' --pipeline {out.resolve()}",
        f"qfsum evaluate --data {val} --split {config['val_split'] or 'val'} --pipeline {out.resolve()}",
        "```",
        "",
        f'In a pipeline: `"scorer": {{"kind": "lead"}}, "writer": {{"kind": "{run["writer"]}", "model": "{out.resolve()}"}}`.',
        "",
        "## Training",
        "",
        f"- architecture: `{arch}`; {windows}at most {config['max_input']} document tokens; targets cut at "
        f"{config['max_target']} tokens",
        f"- data: `{config['data']}` split `{config['split']}`: {data['examples']} queries over {data['documents']} documents",
        f"- epochs {config['epochs']}, max steps {config['max_steps']}, batch {config['batch_size']} x "
        f"{config['grad_accum']} accumulated, learning rate {config['lr']}, warmup {config['warmup']}, "
        f"label smoothing {config['label_smoothing']}, gradient checkpointing {config['grad_checkpointing']}, "
        f"precision {config['dtype']}",
        f"- {run['step']} steps in {took(run['seconds'])} on {run['machine']} ({run['sessions']} session(s)){loss}",
    ]
    return Section(f"qfsum writer — {SEQ2SEQ_TITLES.get(arch, arch)}", body, validation, SEQ2SEQ_COLUMNS)


# -- the real-time writer (`qfsum train sft|distill|dpo`) -------------------------------------------------

WRITER_TITLES = {
    "sft": "supervised fine-tuning on (query, passage, answer) examples, loss on the answer only",
    "distill": "distillation from a teacher",
    "dpo": "direct preference optimisation on its own sampled answers, ranked by a reward",
}


def _writer(out: Path, run: dict[str, Any]) -> Section:
    config, data = run["config"], run["data"]
    adapter = config["lora"]
    weights = (f"a LoRA adapter (r {config['lora_r']}, alpha {config['lora_alpha']}, {run['size_mb']} MB) on top of "
               f"`{config['base']}`" if adapter else f"every weight of `{config['base']}` ({run['size_mb']} MB)")
    extra = [f"- {key}: {value}" for key, value in data.items() if key not in ("rows", "validation_examples")]
    validation = (
        f"{data['validation_examples']} examples of `{config['val_data'] or config['data']}` split "
        f"`{config['val_split']}`; greedy answers of at most {config['val_max_new_tokens']} tokens; ROUGE F1 x 100 "
        "against the reference (rouge-score, stemmed).")
    body = [
        f"A query-focused summarizer trained by {WRITER_TITLES[run['kind']]}: {weights}.",
        "",
        "## Use",
        "",
        "```bash",
        f"qfsum bench decode --model {out.resolve()} --data {config['val_data'] or config['data']} --limit 10",
        "```",
        "",
        f'In a pipeline: `"writer": {{"kind": "generative", "model": "{out.resolve()}", "decoding": "lookahead"}}`; '
        "`qfsum.assets.load_generator(dir)` loads it"
        + (" (the adapter is merged into its base)." if adapter else "."),
        "",
        "## Training",
        "",
        f"- data: `{config['data']}` split `{config['split']}`, passages from `{config['source']}`; "
        f"{data['rows']} training rows",
        *extra,
        f"- steps {run['step']} (epochs {config['epochs']}, max steps {config['max_steps']}), batch {config['batch_size']}, "
        f"learning rate {config['lr']}, warmup {config['warmup']}, prompt <= {config['max_prompt']} tokens, "
        f"answer <= {config['max_target']} tokens, precision {config['dtype']}, seed {config['seed']}",
        f"- {took(run['seconds'])} on {run['machine']}",
    ]
    return Section(f"qfsum real-time writer — {run['kind']}", body, validation, [(key, key) for key in ROUGE_KEYS])


FAMILIES: dict[str, Callable[[Path, dict[str, Any]], Section]] = {
    "extractor": _extractor, "seq2seq": _seq2seq, "writer": _writer,
}
