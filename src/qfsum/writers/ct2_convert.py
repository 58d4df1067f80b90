"""A causal LM converted to CTranslate2 once, kept in the cache directory, checked on every load.

`converted_model(name, quantization)` returns the folder of the model `name` (a packaged name, a
directory, a hub id or a LoRA adapter, merged into its base first, as `assets.load_generator` does)
converted to CTranslate2 with weights in `quantization` ("int8" or "float32"). The folder is
`$QFSUM_CACHE/ct2/<name>-<fingerprint>-<quantization>`; the fingerprint covers the source files
(paths, sizes, modification times), the adapter's base and the ctranslate2 version, so a retrained
adapter or a new release converts again instead of loading a stale copy (`writers.conversion`).

A folder holds `model.bin`, `vocabulary.json` and `config.json` (CTranslate2's), `hf/` (the
tokenizer, the model's config and generation config: everything the writer needs besides the
weights) and `qfsum-ct2.json`, written last, which records what was converted and `model.bin`'s size.
A folder is only ever renamed into place whole, so a half-written one means damage from outside
(a full disk, a manual edit); it is reported as corrupt, with the command that clears it.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

from .. import quiet
from ..assets import cache_dir
from ..errors import QfsumError
from .conversion import cached_conversion, check_record, merged_checkpoint, require

QUANTIZATIONS = ("int8", "float32")
MARKER = "qfsum-ct2.json"


def require_ctranslate2() -> ModuleType:
    """The ctranslate2 module, or a one-line error naming the pip extra that installs it."""
    return require("ctranslate2", "ctranslate2")


def converted_model(name: str, quantization: str = "int8") -> Path:
    """The CTranslate2 folder of model `name`: converted on the first call, checked and reused after."""
    if quantization not in QUANTIZATIONS:
        raise QfsumError(f"ctranslate2 quantization must be one of {', '.join(QUANTIZATIONS)}, got '{quantization}'")
    ctranslate2 = require_ctranslate2()
    return cached_conversion(cache_dir() / "ct2", name, quantization, f"ctranslate2 {ctranslate2.__version__}",
                             lambda out: _convert(name, quantization, out), check_converted)


def check_converted(folder: Path) -> dict:
    """The folder's record, after checking the files a load needs; one clear error if they are damaged."""
    return check_record(folder, MARKER, ("model.bin", "config.json", "vocabulary.json"), {"model.bin": "model_bytes"})


def _convert(name: str, quantization: str, out: Path) -> None:
    """Convert into `out`: the merged model saved in full precision to a scratch folder, then
    CTranslate2's converter on that folder (its public entry point: it loads the model itself)."""
    from ctranslate2.converters import TransformersConverter

    with merged_checkpoint(name, "ctranslate2", out.parent) as merged:
        try:
            with quiet.loading():  # force: `out` exists (empty); the converter replaces it
                TransformersConverter(str(merged.folder)).convert(str(out), quantization=quantization, force=True)
        except (ValueError, NotImplementedError) as err:  # an architecture or option it does not know
            raise QfsumError(f"ctranslate2 cannot convert '{name}': {str(err).splitlines()[0][:200]}") from None
    merged.save_hf_files(out)
    _check_vocabulary(out, merged.tokenizer, name)
    record = {"model": name, "quantization": quantization, "model_bytes": (out / "model.bin").stat().st_size}
    (out / MARKER).write_text(json.dumps(record, indent=1) + "\n")


def _check_vocabulary(out: Path, tokenizer: object, name: str) -> None:
    """CTranslate2 maps tokens by string; the writer passes ids. Its vocabulary must list the
    tokenizer's tokens at their ids, or every prompt would be read as other tokens."""
    vocabulary = json.loads((out / "vocabulary.json").read_text())
    size = len(tokenizer)  # type: ignore[arg-type]
    if tokenizer.convert_ids_to_tokens(list(range(size))) != vocabulary[:size]:  # type: ignore[attr-defined]
        raise QfsumError(f"ctranslate2 cannot run '{name}': its tokenizer's ids are not contiguous")
