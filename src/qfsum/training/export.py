"""Export a trained model small enough to ship: its weights in half precision, its tokenizer, model
card and training record, nothing of the run's working files (checkpoints, caches, validation state).

Two kinds of run folder are exported:
- a LoRA adapter (`qfsum train sft|distill|dpo`): the adapter's weights and the files to load it;
- a whole sentence-transformers model (`qfsum train extractor`: a bi-encoder with its module
  folders, or a cross-encoder): every file of the model, its `.safetensors` weights cast.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import QfsumError

# What a shipped adapter needs to load and to explain itself; everything else in a run folder stays.
KEPT_FILES = ("adapter_config.json", "README.md", "qfsum_training.json", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json", "chat_template.jinja")
ADAPTER_WEIGHTS = "adapter_model.safetensors"
MODEL_WEIGHTS = "model.safetensors"
# Working folders of an extractor run: trainer checkpoints and the validation cache.
RUN_FOLDERS = ("checkpoints", "eval")
DTYPES = ("float16", "bfloat16", "float32")


def model_name(folder: Path) -> str:
    """How users name the model in `folder`: its packaged name when shipped with qfsum, else its path."""
    from ..assets import SHIPPED_WEIGHTS

    folder = folder.resolve()
    return folder.name if folder.parent == SHIPPED_WEIGHTS.resolve() else str(folder)


def export_model(source: str | Path, target: str | Path, dtype: str = "float16") -> Path:
    """Copy the adapter or whole model in `source` (a `qfsum train ...` output) to `target`, its weights
    cast to `dtype`. Returns the path of the written weights."""
    source, target = Path(source), Path(target)
    if dtype not in DTYPES:
        raise QfsumError(f"unknown dtype '{dtype}' (choose from {', '.join(DTYPES)})")
    if (source / "adapter_config.json").exists() and (source / ADAPTER_WEIGHTS).exists():
        target.mkdir(parents=True, exist_ok=True)
        for name in KEPT_FILES:
            if (source / name).exists():
                shutil.copyfile(source / name, target / name)
        weights = ADAPTER_WEIGHTS
    elif (source / "config.json").exists() and (source / MODEL_WEIGHTS).exists():
        if target.resolve() == source.resolve():
            raise QfsumError(f"{target}: the export must go to another folder than the run")
        shutil.copytree(source, target, dirs_exist_ok=True,
                        ignore=lambda folder, names: [n for n in names if n in RUN_FOLDERS or n == MODEL_WEIGHTS])
        weights = MODEL_WEIGHTS
    else:
        raise QfsumError(f"{source}: not a trained model (no adapter_config.json + {ADAPTER_WEIGHTS}, "
                         f"nor config.json + {MODEL_WEIGHTS})")
    _cast_weights(source / weights, target / weights, dtype)
    _name_the_copy(source, target, weights, dtype)
    return target / weights


def _cast_weights(source: Path, target: Path, dtype: str) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    # Only floating-point tensors are cast: integer buffers (position ids) keep their type.
    tensors = {key: (value.to(getattr(torch, dtype)) if value.is_floating_point() else value).contiguous()
               for key, value in load_file(source).items()}
    save_file(tensors, target, metadata={"format": "pt"})


def _name_the_copy(source: Path, target: Path, weights: str, dtype: str) -> None:
    card = target / "README.md"
    if not card.exists():
        return
    # The card's usage lines name the run folder: name the copy, and say what it is.
    size_mb = (target / weights).stat().st_size / 2**20
    text = card.read_text().replace(str(source.resolve()), model_name(target)).rstrip()
    card.write_text(text + f"\n\n## This copy\n\nThe model's weights in {dtype} ({size_mb:.1f} MB), exported "
                    f"with `qfsum train export --model RUN_DIR --dtype {dtype}`.\n")
