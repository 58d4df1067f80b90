"""A causal LM converted to ONNX Runtime GenAI once, kept in the cache directory, checked on every load.

`converted_model(name, precision)` returns the folder of the model `name` (a packaged name, a directory,
a hub id or a LoRA adapter, merged into its base first, as `assets.load_generator` does) built by
onnxruntime-genai's model builder for the CPU with weights in `precision`: "int4" (its `-p int4`:
4-bit blockwise MatMul weights, float32 activations) or "fp32". The folder is
`$QFSUM_CACHE/ortgenai/<name>-<fingerprint>-<precision>`; the fingerprint covers the source files, the
adapter's base and the onnxruntime-genai and onnxruntime versions (the builder quantizes with
onnxruntime's quantizer), so a retrained adapter or a new release builds again (`writers.conversion`).

The builder reads the merged model from a local scratch folder, never from the hub. A folder holds
`model.onnx`, `model.onnx.data` (the weights), `genai_config.json` (the builder's), `hf/` (the
tokenizer, the model's config and generation config) and `qfsum-ortgenai.json`, written last, which
records what was converted and the ONNX files' sizes. A damaged folder is reported as corrupt, with the
command that clears it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
from importlib.metadata import version
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from .. import quiet
from ..assets import cache_dir
from ..errors import QfsumError
from .conversion import PIP_EXTRA, cached_conversion, check_record, merged_checkpoint, require

RUNTIME = "onnxruntime-genai"
# onnxruntime and onnxruntime-genai send usage events to Microsoft by default (outside CI): onnxruntime
# from its import on, onnxruntime-genai from its first model on, each writing a device id and an event
# queue under ~/.cache/Microsoft/DeveloperTools/.onnxruntime. This variable, set before either starts,
# keeps both uploaders from starting at all (docs/writers.md, vetting); a user's own setting wins.
TELEMETRY_OFF = ("ORT_DISABLE_TELEMETRY", "1")
PRECISIONS = ("int4", "fp32")
MARKER = "qfsum-ortgenai.json"
SIZES = {"model.onnx": "onnx_bytes", "model.onnx.data": "data_bytes"}  # file -> record key of its size


def require_ortgenai() -> ModuleType:
    """The onnxruntime_genai module, or a one-line error naming the pip extra that installs it; its
    telemetry (and onnxruntime's) off unless the user asked for it."""
    os.environ.setdefault(*TELEMETRY_OFF)
    return require("onnxruntime_genai", RUNTIME)


def converted_model(name: str, precision: str = "int4") -> Path:
    """The ONNX Runtime GenAI folder of model `name`: built on the first call, checked and reused after."""
    if precision not in PRECISIONS:
        raise QfsumError(f"{RUNTIME} precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    og = require_ortgenai()
    tag = f"onnxruntime-genai {og.__version__} onnxruntime {version('onnxruntime')}"
    return cached_conversion(cache_dir() / "ortgenai", name, precision, tag,
                             lambda out: _convert(name, precision, out), check_converted)


def check_converted(folder: Path) -> dict:
    """The folder's record, after checking the files a load needs; one clear error if they are damaged."""
    return check_record(folder, MARKER, ("model.onnx", "genai_config.json"), SIZES)


def _convert(name: str, precision: str, out: Path) -> None:
    """Build into `out`: the merged model saved in float32 to a scratch folder, then the model builder
    (its Python entry points, as its command line calls them) on that folder, for the CPU."""
    with _builder_quiet() as builder, merged_checkpoint(name, RUNTIME, out.parent) as merged, \
            tempfile.TemporaryDirectory(dir=out.parent, prefix=".builder-cache-") as builder_cache:
        args = (None, str(merged.folder), str(out), precision, "cpu", builder_cache)
        try:
            options = builder.parse_extra_options(*args, ["hf_token=false"])  # a local folder: no hub login
            builder.create_model(*args, **options)
        except Exception as err:  # noqa: BLE001 - any failure inside the builder means it cannot build this model
            raise QfsumError(f"{RUNTIME} cannot convert '{name}': {_first_line(err)}") from None
    merged.save_hf_files(out)
    record = {"model": name, "precision": precision,
              **{key: (out / file).stat().st_size for file, key in SIZES.items() if (out / file).is_file()}}
    (out / MARKER).write_text(json.dumps(record, indent=1) + "\n")


@contextlib.contextmanager
def _builder_quiet() -> Iterator[ModuleType]:
    """The builder module (first: a missing package fails before the model is merged), imported and run
    without its prints and progress bars (unless verbose), and with the root logger as it was:
    onnxruntime's quantizer calls logging.basicConfig(level=INFO) when it is imported, which would print
    every later INFO line of every library."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    sink = io.StringIO()
    output = contextlib.nullcontext() if quiet.is_verbose() else _redirected(sink)
    try:
        with output, quiet.loading():
            try:
                from onnxruntime_genai.models import builder
            except ImportError as err:  # onnx or onnx-ir, which only the builder needs
                raise QfsumError(f"the {RUNTIME} model builder needs the {err.name or 'onnx'} package: "
                                 f"{PIP_EXTRA}") from None
            yield builder
    finally:
        root.handlers[:], root.level = handlers, level


@contextlib.contextmanager
def _redirected(sink: io.StringIO) -> Iterator[None]:
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


def _first_line(err: BaseException) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return (lines[0] if lines else type(err).__name__)[:200]
