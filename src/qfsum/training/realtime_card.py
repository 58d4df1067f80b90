"""The model card (README.md) of a trained real-time writer (SFT, distillation or DPO)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..evaluation.rouge import ROUGE_KEYS
from .card import command_section, history_table
from .runs import took

TITLES = {
    "sft": "supervised fine-tuning on (query, passage, answer) examples, loss on the answer only",
    "distill": "distillation from a teacher",
    "dpo": "direct preference optimisation on its own sampled answers, ranked by a reward",
}



def write_card(out: Path, run: dict[str, Any]) -> Path:
    """Write `out/README.md` from a finished run record (see `sft.run_training`)."""
    config, data = run["config"], run["data"]
    adapter = config["lora"]
    weights = (f"a LoRA adapter (r {config['lora_r']}, alpha {config['lora_alpha']}, {run['size_mb']} MB) on top of "
               f"`{config['base']}`" if adapter else f"every weight of `{config['base']}` ({run['size_mb']} MB)")
    extra = [f"- {key}: {value}" for key, value in data.items() if key not in ("rows", "validation_examples")]
    lines = [
        f"# qfsum real-time writer — {run['kind']}",
        "",
        f"A query-focused summarizer trained by {TITLES[run['kind']]}: {weights}.",
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
        *command_section(run),
        f"{data['validation_examples']} examples of `{config['val_data'] or config['data']}` split "
        f"`{config['val_split']}`; greedy answers of at most {config['val_max_new_tokens']} tokens; ROUGE F1 x 100 "
        "against the reference (rouge-score, stemmed).",
        "",
        *history_table(run, [(key, key) for key in ROUGE_KEYS]),
    ]
    path = out / "README.md"
    path.write_text("\n".join(lines))
    return path
