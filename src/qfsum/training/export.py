"""Export a trained LoRA adapter small enough to ship: its weights in half precision, its tokenizer,
model card and training record, nothing of the run's working files (checkpoints, caches)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import QfsumError

# What a shipped adapter needs to load and to explain itself; everything else in a run folder stays.
KEPT_FILES = ("adapter_config.json", "README.md", "qfsum_training.json", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json", "chat_template.jinja")
WEIGHTS = "adapter_model.safetensors"
DTYPES = ("float16", "bfloat16", "float32")


def model_name(folder: Path) -> str:
    """How users name the model in `folder`: its packaged name when shipped with qfsum, else its path."""
    from ..assets import SHIPPED_WEIGHTS

    folder = folder.resolve()
    return folder.name if folder.parent == SHIPPED_WEIGHTS.resolve() else str(folder)


def export_adapter(source: str | Path, target: str | Path, dtype: str = "float16") -> Path:
    """Copy the adapter in `source` (a `qfsum train sft|dpo|distill` output) to `target`, its weights
    cast to `dtype`. Returns the path of the written weights."""
    import torch
    from safetensors.torch import load_file, save_file

    source, target = Path(source), Path(target)
    if not (source / "adapter_config.json").exists() or not (source / WEIGHTS).exists():
        raise QfsumError(f"{source}: not a LoRA adapter (no adapter_config.json and {WEIGHTS})")
    if dtype not in DTYPES:
        raise QfsumError(f"unknown dtype '{dtype}' (choose from {', '.join(DTYPES)})")
    target.mkdir(parents=True, exist_ok=True)
    for name in KEPT_FILES:
        if (source / name).exists():
            shutil.copyfile(source / name, target / name)
    tensors = {key: value.to(getattr(torch, dtype)).contiguous() for key, value in load_file(source / WEIGHTS).items()}
    save_file(tensors, target / WEIGHTS, metadata={"format": "pt"})
    card = target / "README.md"
    if card.exists():  # the card's usage lines name the run folder: name the copy, and say what it is
        size_mb = (target / WEIGHTS).stat().st_size / 2**20
        text = card.read_text().replace(str(source.resolve()), model_name(target)).rstrip()
        card.write_text(text + f"\n\n## This copy\n\nThe adapter's weights in {dtype} ({size_mb:.1f} MB), exported "
                        f"with `qfsum train export --model RUN_DIR --dtype {dtype}`.\n")
    return target / WEIGHTS
