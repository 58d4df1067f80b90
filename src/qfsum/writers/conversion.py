"""A model converted for a fast CPU runtime once, kept in the cache directory, checked on every load.

The steps the CTranslate2 (`writers.ct2_convert`) and ONNX Runtime GenAI (`writers.ortgenai_convert`)
conversions share:

- `cached_conversion`: the folder `<parent>/<name>-<fingerprint>-<variant>`, converted into a scratch
  folder that is renamed into place whole, so a half-written folder means damage from outside (a full
  disk, a manual edit); the fingerprint covers the source files (paths, sizes, modification times), the
  adapter's base and the converter's version, so a retrained adapter or a new release converts again;
- `merged_checkpoint`: the model (a packaged name, a directory, a hub id or a LoRA adapter, merged into
  its base as `assets.load_generator` does) saved in float32 to a scratch folder, the folder each
  converter reads (never the hub), its torch copy freed before the converter loads its own;
- `check_record`: the folder's record and the files a load needs, or one line naming the damage and
  the command that clears it (`corrupt`, `unloadable`);
- `require`: the runtime's package, or one line naming the pip extra that installs it.
"""

from __future__ import annotations

import gc
import hashlib
import importlib
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .. import quiet
from ..assets import adapter_base, load_generator_uncached, resolve
from ..errors import QfsumError

HF_FILES = "hf"  # sub-folder: tokenizer and configs (AutoTokenizer would misread a runtime's own config.json)
PIP_EXTRA = "pip install 'qfsum[fast]'"


def require(module: str, runtime: str) -> ModuleType:
    """The module of a runtime's package, or a one-line error naming the pip extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise QfsumError(f"the {runtime} runtime needs the {module} package: {PIP_EXTRA}") from None


def cached_conversion(parent: Path, name: str, variant: str, tag: str, convert: Callable[[Path], None],
                      check: Callable[[Path], dict]) -> Path:
    """The folder `parent/<name>-<fingerprint(name, tag)>-<variant>`: made by `convert(folder)` on the
    first call, `check`ed and reused after."""
    target = parent / f"{_slug(name)}-{fingerprint(name, tag)}-{variant}"
    if target.exists():
        check(target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".converting-"))
    try:
        convert(staging)
        try:
            staging.rename(target)  # atomic: a concurrent first load sees the whole folder or none
        except OSError:
            if not target.exists():
                raise
            # another process converted it first: keep theirs
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    check(target)
    return target


def corrupt(folder: Path, why: str) -> QfsumError:
    """The one-line error for a damaged converted folder, with the command that clears it."""
    return QfsumError(f"the converted model in {folder} is corrupt ({why}); delete it (rm -r '{folder}') "
                      "and qfsum converts the model again")


def unloadable(folder: Path, err: Exception) -> QfsumError:
    """The one-line error for a converted folder its runtime refuses to load."""
    return QfsumError(f"the converted model in {folder} cannot be loaded ({str(err).splitlines()[0][:200]}); "
                      f"delete it (rm -r '{folder}') and qfsum converts the model again")


def check_record(folder: Path, marker: str, needed: Sequence[str], sizes: Mapping[str, str]) -> dict:
    """The folder's record (the JSON file `marker`, written last), after checking that the `needed`
    files exist and each file of `sizes` has the size its record key holds."""
    try:
        record = json.loads((folder / marker).read_text())
    except (OSError, ValueError):
        raise corrupt(folder, f"{marker} is missing or unreadable") from None
    if not isinstance(record, dict):
        raise corrupt(folder, f"{marker} is not a record")
    for file in (*needed, f"{HF_FILES}/config.json"):
        if not (folder / file).is_file():
            raise corrupt(folder, f"{file} is missing")
    for file, key in sizes.items():
        size = (folder / file).stat().st_size if (folder / file).is_file() else None
        if size != record.get(key):
            raise corrupt(folder, f"{file} has {size} bytes, {record.get(key)} were written")
    return record


def fingerprint(name: str, tag: str) -> str:
    """16 hex digits naming the converter (`tag`, e.g. its version) and the source files of model
    `name` (and its adapter's base) as they are now."""
    digest = hashlib.sha256(f"{tag}\n".encode())
    for path in _source_files(name):
        stat = path.stat()
        digest.update(f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _source_files(name: str) -> list[Path]:
    """Every file the model's weights and tokenizer come from: a GGUF file, a folder's files (an
    adapter's base's too), a hub model's cached snapshot; none for a hub model not yet downloaded
    (its name keys it)."""
    ref = resolve(name)
    folder = Path(ref.location)
    if ref.gguf_file is not None:  # the file itself: no need to dequantize it to know it
        return [folder / ref.gguf_file]
    if not folder.is_dir():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(ref.location, "config.json")
        if not isinstance(cached, str):
            return []
        folder = Path(cached).parent
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if (folder / "adapter_config.json").is_file():
        base = adapter_base(folder)
        if not Path(base).resolve().is_relative_to(folder.resolve()):  # a base inside the folder is listed already
            files += _source_files(base)
    return files


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name).name or name).strip("-")[:60] or "model"


@dataclass
class Merged:
    """A merged model saved for a converter: its folder, and what the writer needs besides the weights."""

    folder: Path
    tokenizer: Any
    config: Any
    generation_config: Any

    def save_hf_files(self, out: Path) -> None:
        """The tokenizer, the model's config and generation config, into `out/hf`."""
        for part in (self.config, self.generation_config, self.tokenizer):
            part.save_pretrained(out / HF_FILES)


@contextmanager
def merged_checkpoint(name: str, runtime: str, scratch_parent: Path) -> Iterator[Merged]:
    """Model `name` (a LoRA adapter comes back merged) saved in float32 to a scratch folder under
    `scratch_parent`, removed afterwards; only causal LMs."""
    with quiet.loading():
        model, tokenizer = load_generator_uncached(name, "float32")
    if model.config.is_encoder_decoder:
        raise QfsumError(f"the {runtime} runtime runs causal LMs; '{name}' is a seq2seq model (use runtime torch)")
    with tempfile.TemporaryDirectory(dir=scratch_parent, prefix=".merged-") as scratch:
        with quiet.loading():
            model.save_pretrained(scratch)
            tokenizer.save_pretrained(scratch)
        merged = Merged(Path(scratch), tokenizer, model.config, model.generation_config)
        del model  # the converter loads its own copy: never two in memory
        gc.collect()
        yield merged
