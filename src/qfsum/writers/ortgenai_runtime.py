"""The ONNX Runtime GenAI runtime of the generative writer: the same greedy answers, decoded by
onnxruntime-genai on the CPU.

onnxruntime-genai (0.18) takes no logits processors from Python, but its generator is driven a token
at a time: `append_tokens` runs the model on new tokens (the prompt: one pass) and keeps their
key/value state, `get_logits` returns the last position's logits. So the writer's processors
(`GenerativeWriter._processors`: the answer-wide n-gram ban, the repetition penalty, grounded
decoding, evidence bias) choose every token: each step takes the logits, applies the processors in
Python, takes their argmax and appends it. Nothing of the runtime's own search is used (its
`generate_next_token` would apply genai_config.json's search options instead), so no step is ever
decided without the processors, and there is nothing to resume.

The output is the torch writer's greedy output to the precision of the weights: equal token for
token in fp32 (tests/test_ortgenai_runtime.py); int4 weights change some logits, and with them the
answers (docs/writers.md). Each answer decodes alone (batch 1), in a generator of its own whose
key/value buffers are sized to that prompt plus its answer.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import quiet
from ..errors import QfsumError
from .base import WriterConfig
from .conversion import unloadable
from .fast_runtime import ConvertedCausalLM, DecodeStats, Processor, choose, require_greedy
from .ortgenai_convert import RUNTIME, check_converted, converted_model, require_ortgenai


def precision_of(dtype: str) -> str:
    """The builder's precision for a writer's `dtype`: auto means int4."""
    return {"auto": "int4", "int4": "int4", "float32": "fp32"}[dtype]


def load_for_writer(config: WriterConfig) -> tuple["OrtGenaiCausalLM", Any]:
    """(model, tokenizer) of a generative writer with `runtime: onnxruntime-genai`."""
    require_greedy(config)
    model = load_ortgenai(config.model, precision_of(config.dtype))
    return model, model.tokenizer


@functools.cache
def load_ortgenai(name: str, precision: str = "int4") -> "OrtGenaiCausalLM":
    """Model `name` on ONNX Runtime GenAI (built once, then from the cache directory); one copy per process."""
    return OrtGenaiCausalLM(converted_model(name, precision))


class OrtGenaiCausalLM(ConvertedCausalLM):
    """A converted causal LM (`writers.ortgenai_convert`) that decodes greedily under logits processors
    (its configs, tokenizer and thread count: `ConvertedCausalLM`)."""

    def __init__(self, folder: Path, threads: int | None = None) -> None:
        self._og = require_ortgenai()
        self.precision = check_converted(Path(folder))["precision"]
        super().__init__(folder, threads)
        self.context_length = int(json.loads((self.folder / "genai_config.json").read_text())["model"]["context_length"])
        self._model = self._load()

    def _load(self) -> Any:
        """The model on the CPU (genai_config.json's session options overlaid; the file stays as the
        builder wrote it): `threads` intra-op threads that sleep between runs instead of spinning, as
        torch's OpenMP threads do here (OMP_WAIT_POLICY=PASSIVE): the writer's processors run on torch
        between two model runs, and spinning threads would hold the cores they need; onnxruntime's own
        log lines off (its errors come back as exceptions) unless verbose."""
        options = {"intra_op_num_threads": self.threads, "inter_op_num_threads": 1,
                   "session.intra_op.allow_spinning": "0", "session.inter_op.allow_spinning": "0",
                   "log_severity_level": 2 if quiet.is_verbose() else 4}
        try:
            config = self._og.Config(str(self.folder))
            config.clear_providers()  # the CPU
            config.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
            return self._og.Model(config)
        except RuntimeError as err:
            raise unloadable(self.folder, err) from None

    def _generator(self, length: int) -> Any:
        """A generator for a sequence of at most `length` tokens (its key/value buffers' size)."""
        if length > self.context_length:
            raise QfsumError(f"the prompt and answer ({length} tokens) exceed the model's context of "
                             f"{self.context_length} tokens")
        params = self._og.GeneratorParams(self._model)
        params.set_search_options(max_length=length, batch_size=1)
        return self._og.Generator(self._model, params)

    def generate(self, prompt: Sequence[int], max_new_tokens: int, processors: Sequence[Processor] = (),
                 no_repeat_ngram_size: int = 0, on_tokens: Callable[[list[int]], None] | None = None,
                 stats: DecodeStats | None = None) -> list[int]:
        """The greedy continuation of `prompt` (ids, no padding) under `processors`, which see the prompt
        and the answer so far: new tokens, up to and including an end-of-sequence token. `on_tokens` gets
        each token as it is chosen. (`no_repeat_ngram_size` is unused: the processors hold the n-gram
        ban; the parameter keeps the CTranslate2 runtime's signature.)"""
        if not prompt:
            raise QfsumError(f"the {RUNTIME} runtime needs a prompt of at least one token")
        stats = stats if stats is not None else DecodeStats()
        context, answer, eos = list(prompt), [], set(self.eos)
        with self._lock:
            started = time.perf_counter()
            generator = self._generator(len(prompt) + max_new_tokens)  # the last token chosen is never appended
            self._run(generator, context)
            while len(answer) < max_new_tokens:
                scores = torch.from_numpy(generator.get_logits().reshape(1, -1))
                token = choose(context, scores, processors)
                if not answer:
                    stats.prefill_seconds += time.perf_counter() - started
                answer.append(token)
                context.append(token)
                if on_tokens is not None:
                    on_tokens([token])
                if token in eos or len(answer) >= max_new_tokens:
                    break
                self._run(generator, [token])
        stats.calls += 1
        stats.tokens += len(answer)
        return answer

    def logits(self, ids: Sequence[int]) -> torch.Tensor:
        """(len(ids), V) float32: the logits after each prefix of `ids`, in one pass (teacher forcing)."""
        with self._lock:
            generator = self._generator(len(ids))
            self._run(generator, list(ids))
            return torch.from_numpy(np.array(generator.get_output("logits"), dtype=np.float32)[0])

    def _run(self, generator: Any, tokens: list[int]) -> None:
        try:
            generator.append_tokens(np.array(tokens, dtype=np.int32))
        except RuntimeError as err:  # an operator the CPU build cannot run on this model (e.g. its head size)
            raise QfsumError(f"{RUNTIME} cannot run the model in {self.folder}: {str(err).splitlines()[0][:200]}") from None
