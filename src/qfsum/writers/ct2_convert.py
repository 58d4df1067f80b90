"""A causal LM converted to CTranslate2 once, kept in the cache directory, checked on every load.

`converted_model(name, quantization)` returns the folder of the model `name` (a packaged name, a
directory, a hub id or a LoRA adapter, merged into its base first, as `assets.load_generator` does)
converted to CTranslate2 with weights in `quantization` ("int8" or "float32"). The folder is
`$QFSUM_CACHE/ct2/<name>-<fingerprint>-<quantization>`; the fingerprint covers the source files
(paths, sizes, modification times), the adapter's base and the ctranslate2 version, so a retrained
adapter or a new release converts again instead of loading a stale copy.

A folder holds `model.bin`, `vocabulary.json` and `config.json` (CTranslate2's), `hf/` (the
tokenizer, the model's config and generation config: everything the writer needs besides the
weights) and `qfsum-ct2.json`, written last, which records what was converted and `model.bin`'s size.
A folder is only ever renamed into place whole, so a half-written one means damage from outside
(a full disk, a manual edit); it is reported as corrupt, with the command that clears it.
"""

from __future__ import annotations

import gc
import hashlib
import json
import re
import shutil
import tempfile
from pathlib import Path

from .. import quiet
from ..assets import adapter_base, cache_dir, load_generator_uncached, resolve
from ..errors import QfsumError

QUANTIZATIONS = ("int8", "float32")
MARKER = "qfsum-ct2.json"
HF_FILES = "hf"  # sub-folder: tokenizer and configs (AutoTokenizer would misread CTranslate2's config.json)
PIP_EXTRA = "pip install 'qfsum[fast]'"


def require_ctranslate2() -> object:
    """The ctranslate2 module, or a one-line error naming the pip extra that installs it."""
    try:
        import ctranslate2
    except ImportError:
        raise QfsumError(f"the ctranslate2 runtime needs the ctranslate2 package: {PIP_EXTRA}") from None
    return ctranslate2


def converted_model(name: str, quantization: str = "int8") -> Path:
    """The CTranslate2 folder of model `name`: converted on the first call, checked and reused after."""
    if quantization not in QUANTIZATIONS:
        raise QfsumError(f"ctranslate2 quantization must be one of {', '.join(QUANTIZATIONS)}, got '{quantization}'")
    ctranslate2 = require_ctranslate2()
    target = cache_dir() / "ct2" / f"{_slug(name)}-{fingerprint(name, ctranslate2.__version__)}-{quantization}"
    if target.exists():
        check_converted(target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".converting-"))
    try:
        _convert(name, quantization, staging)
        try:
            staging.rename(target)  # atomic: a concurrent first load sees the whole folder or none
        except OSError:
            if not target.exists():
                raise
            # another process converted it first: keep theirs
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    check_converted(target)
    return target


def check_converted(folder: Path) -> dict:
    """The folder's record, after checking the files a load needs; one clear error if they are damaged."""
    def corrupt(why: str) -> QfsumError:
        return QfsumError(f"the converted model in {folder} is corrupt ({why}); delete it (rm -r '{folder}') "
                          "and qfsum converts the model again")

    try:
        record = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        raise corrupt(f"{MARKER} is missing or unreadable") from None
    for needed in ("model.bin", "config.json", "vocabulary.json", f"{HF_FILES}/config.json"):
        if not (folder / needed).is_file():
            raise corrupt(f"{needed} is missing")
    size = (folder / "model.bin").stat().st_size
    if size != record.get("model_bytes"):
        raise corrupt(f"model.bin has {size} bytes, {record.get('model_bytes')} were written")
    return record


def fingerprint(name: str, version: str) -> str:
    """16 hex digits naming the source files of model `name` (and its adapter's base) as they are now."""
    digest = hashlib.sha256(f"ctranslate2 {version}\n".encode())
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


def _convert(name: str, quantization: str, out: Path) -> None:
    """Convert into `out`: the merged model saved in full precision to a scratch folder, then
    CTranslate2's converter on that folder (its public entry point: it loads the model itself)."""
    from ctranslate2.converters import TransformersConverter

    with quiet.loading():
        model, tokenizer = load_generator_uncached(name, "float32")  # a LoRA adapter comes back merged
    if model.config.is_encoder_decoder:
        raise QfsumError(f"the ctranslate2 runtime runs causal LMs; '{name}' is a seq2seq model (use runtime torch)")
    kept = (model.config, model.generation_config, tokenizer)  # what the writer needs besides the weights
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".merged-") as scratch:
        with quiet.loading():
            model.save_pretrained(scratch)
            tokenizer.save_pretrained(scratch)
        del model  # the converter loads its own copy: never two in memory
        gc.collect()
        try:
            with quiet.loading():  # force: `out` exists (empty); the converter replaces it
                TransformersConverter(scratch).convert(str(out), quantization=quantization, force=True)
        except (ValueError, NotImplementedError) as err:  # an architecture or option it does not know
            raise QfsumError(f"ctranslate2 cannot convert '{name}': {str(err).splitlines()[0][:200]}") from None
    for part in kept:
        part.save_pretrained(out / HF_FILES)
    _check_vocabulary(out, tokenizer, name)
    record = {"model": name, "quantization": quantization, "model_bytes": (out / "model.bin").stat().st_size}
    (out / MARKER).write_text(json.dumps(record, indent=1) + "\n")


def _check_vocabulary(out: Path, tokenizer: object, name: str) -> None:
    """CTranslate2 maps tokens by string; the writer passes ids. Its vocabulary must list the
    tokenizer's tokens at their ids, or every prompt would be read as other tokens."""
    vocabulary = json.loads((out / "vocabulary.json").read_text())
    size = len(tokenizer)  # type: ignore[arg-type]
    if tokenizer.convert_ids_to_tokens(list(range(size))) != vocabulary[:size]:  # type: ignore[attr-defined]
        raise QfsumError(f"ctranslate2 cannot run '{name}': its tokenizer's ids are not contiguous")
