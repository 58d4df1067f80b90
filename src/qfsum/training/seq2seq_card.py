"""The model card (README.md) of a seq2seq model trained by `qfsum train seq2seq`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .card import command_section, history_table
from .runs import took

TITLES = {
    "segenc": "SegEnc: windows of the query and the document, encoded one by one, fused in the decoder",
    "led": "LED: a Longformer-Encoder-Decoder reading the query and the document, global attention on the query",
    "plain": "a seq2seq model reading the query and the document cut at its input limit",
}
COLUMNS = (("rouge1", "R-1"), ("rouge2", "R-2"), ("rougeLsum", "R-Lsum"), ("rougeL", "R-L (no split)"),
           ("rouge_mean", "mean R-1/2/Lsum"))



def write_model_card(out: Path, run: dict[str, Any]) -> Path:
    """Write `out/README.md` from a finished run record (see `seq2seq.train_seq2seq`)."""
    config, data = run["config"], run["data"]
    arch = config["arch"]
    windows = (f"windows of {config['segment_length']} tokens (query included), "
               f"{'50 % overlap' if config['overlap'] else 'disjoint'}, " if arch == "segenc" else "")
    start = f"`{config['init']}` (itself from `{config['base']}`)" if config["init"] else f"`{config['base']}`"
    losses = run.get("train_loss") or []
    loss = f"; training loss {losses[0]['loss']:.3f} -> {losses[-1]['loss']:.3f}" if len(losses) > 1 else ""
    val = config["val_data"] or config["data"]
    lines = [
        f"# qfsum writer — {TITLES.get(arch, arch)}",
        "",
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
        *command_section(run),
        f"{data['validation_examples']} examples of `{val}` split `{config['val_split']}` (whole documents drawn "
        f"with seed {config['seed']}), {config['num_beams']}-beam search, at most {config['max_new_tokens']} new "
        "tokens; ROUGE F1 x 100 (rouge-score, stemmed; R-Lsum splits sentences, the papers' R-L).",
        "",
        *history_table(run, COLUMNS),
    ]
    path = out / "README.md"
    path.write_text("\n".join(lines))
    return path
