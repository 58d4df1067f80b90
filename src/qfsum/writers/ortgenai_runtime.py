"""The ONNX Runtime GenAI runtime of the generative writer: the same greedy answers, decoded by
onnxruntime-genai on the CPU, the prompts of a batch together.

onnxruntime-genai (0.18) takes no logits processors from Python, but its generator is driven a step
at a time: `append_tokens` runs the model on the prompts (one pass) and keeps their key/value state,
`get_logits` returns each row's logits at its last position, and `set_logits` replaces a step's
logits before `generate_next_token` has its search append one token per row (the model runs on them
when the next logits are asked for). So the writer's processors (`GenerativeWriter._processors`: the
answer-wide n-gram ban, the repetition penalty, grounded decoding, evidence bias) choose every token:
each step takes each row's logits, applies that row's processors in Python to its own prompt and
answer so far, takes their argmax, and hands the runtime logits that leave its greedy search (its own
options neutral) only that token; what it appended is checked. (`append_tokens` cannot append the
chosen tokens itself: it works once per generator of more than one row.) No step is decided without
the processors, and there is nothing to resume. `generate` is a batch of one.

A batch shares one generator. The prompts are padded on the right with the pad token, as
onnxruntime-genai expects: its attention mask leaves out each row's trailing pad tokens, its
attention kernel (GroupQueryAttention, rotary positions included) goes by each row's own length, and
its first logits are each row's last prompt token's. So every row is decoded as it is alone, token
for token in the tests (tests/test_ortgenai_runtime.py). A prompt that ends in the pad token would be
read as padded: it gets a generator of its own. A row that has ended is fed pad tokens (the runtime's
end-of-sequence ids are set to the writer's, so its search ends the same rows) until every row has
ended or the length limit is reached; key/value buffers are sized to the longest prompt plus the answer.

The output is the torch writer's greedy output to the precision of the weights: equal token for
token in fp32 (tests/test_ortgenai_runtime.py); int4 weights change some logits, and with them the
answers (docs/writers.md).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
from .wanted import Wanted, for_positions, unwanted_rows


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
        genai = json.loads((self.folder / "genai_config.json").read_text())["model"]
        self.context_length = int(genai["context_length"])
        self.pad_token_id = int(genai.get("pad_token_id", 0))  # onnxruntime-genai's default
        self._model = self._load()

    def _load(self) -> Any:
        """The model on the CPU (genai_config.json's session options overlaid; the file stays as the
        builder wrote it): `threads` intra-op threads that sleep between runs instead of spinning, as
        torch's OpenMP threads do here (OMP_WAIT_POLICY=PASSIVE): the writer's processors run on torch
        between two model runs, and spinning threads would hold the cores they need; onnxruntime's own
        log lines off (its errors come back as exceptions) unless verbose. Its end-of-sequence ids are
        the writer's (`eos`): a batch row that its search sees end is fed pad tokens from then on."""
        options = {"intra_op_num_threads": self.threads, "inter_op_num_threads": 1,
                   "session.intra_op.allow_spinning": "0", "session.inter_op.allow_spinning": "0",
                   "log_severity_level": 2 if quiet.is_verbose() else 4}
        try:
            config = self._og.Config(str(self.folder))
            config.clear_providers()  # the CPU
            config.overlay(json.dumps({"model": {"eos_token_id": self.eos, "decoder": {"session_options": options}}}))
            return self._og.Model(config)
        except RuntimeError as err:
            raise unloadable(self.folder, err) from None

    def _generator(self, length: int, batch_size: int = 1) -> Any:
        """A generator for `batch_size` sequences of at most `length` tokens each (its key/value buffers'
        size), its own search neutral: it only ever takes the token the logits it is handed leave it."""
        if length > self.context_length:
            raise QfsumError(f"the prompt and answer ({length} tokens) exceed the model's context of "
                             f"{self.context_length} tokens")
        params = self._og.GeneratorParams(self._model)
        params.set_search_options(max_length=length, batch_size=batch_size, num_beams=1, do_sample=False,
                                  min_length=0, repetition_penalty=1.0, no_repeat_ngram_size=0)
        return self._og.Generator(self._model, params)

    def generate(self, prompt: Sequence[int], max_new_tokens: int, processors: Sequence[Processor] = (),
                 no_repeat_ngram_size: int = 0, on_tokens: Callable[[list[int]], None] | None = None,
                 stats: DecodeStats | None = None) -> list[int]:
        """The greedy continuation of `prompt` (ids, no padding) under `processors`, which see the prompt
        and the answer so far: new tokens, up to and including an end-of-sequence token. `on_tokens` gets
        each token as it is chosen. (`no_repeat_ngram_size` is unused: the processors hold the n-gram
        ban; the parameter keeps the CTranslate2 runtime's signature.)"""
        to_row = None if on_tokens is None else (lambda row, tokens: on_tokens(tokens))
        return self.generate_batch([prompt], max_new_tokens, [processors], to_row, stats)[0]

    def generate_batch(self, prompts: Sequence[Sequence[int]], max_new_tokens: int,
                       processors: Sequence[Sequence[Processor]] | None = None,
                       on_tokens: Callable[[int, list[int]], None] | None = None,
                       stats: DecodeStats | None = None, wanted: Wanted | None = None) -> list[list[int]]:
        """The greedy continuation of each prompt (ids, no padding), decoded together: for each, exactly
        what `generate` writes for it alone. `processors[row]` are that row's processors (None: none);
        they see its own prompt and answer so far, never padding. `on_tokens(row, tokens)` gets each
        row's tokens as they are chosen. `stats` counts one call per generator (the batch, or a prompt
        that decodes alone: `_groups`) and its prefill once: the prompts are read together. A row for
        which `wanted(row)` says False ends at the next step (`writers.wanted`)."""
        if any(len(prompt) == 0 for prompt in prompts):
            raise QfsumError(f"the {RUNTIME} runtime needs prompts of at least one token")
        if processors is not None and len(processors) != len(prompts):
            raise QfsumError(f"{len(processors)} processor lists for {len(prompts)} prompts")
        rows = [_Row(list(prompt), processors[i] if processors is not None else ()) for i, prompt in enumerate(prompts)]
        stats = stats if stats is not None else DecodeStats()
        with self._lock:
            for group in self._groups(prompts):
                self._decode(group, [rows[i] for i in group], max_new_tokens, on_tokens, stats, wanted)
        return [row.answer for row in rows]

    def _groups(self, prompts: Sequence[Sequence[int]]) -> list[list[int]]:
        """The rows that share a generator: all of them, but a prompt that ends in the pad token, which
        the runtime would read as padding in a batch (never in a generator of its own)."""
        alone = [i for i, prompt in enumerate(prompts) if len(prompts) > 1 and prompt[-1] == self.pad_token_id]
        together = [i for i in range(len(prompts)) if i not in alone]
        return ([together] if together else []) + [[i] for i in alone]

    def _decode(self, positions: list[int], rows: list["_Row"], max_new_tokens: int,
                on_tokens: Callable[[int, list[int]], None] | None, stats: DecodeStats,
                wanted: Wanted | None = None) -> None:
        """Decode `rows` (batch positions `positions`) in one generator, each step one token per row that
        has not ended. The prompts are padded on the right, as onnxruntime-genai expects: its attention
        mask leaves out each row's trailing pad tokens, its key/value cache and rotary positions go by
        each row's own length, and the first logits are each row's last prompt token's."""
        width = max(len(row.context) for row in rows)
        started = time.perf_counter()
        generator = self._generator(width + max_new_tokens, len(rows))  # the last tokens chosen are never appended
        self._call(generator.append_tokens, np.array([row.context + [self.pad_token_id] * (width - len(row.context))
                                                      for row in rows], dtype=np.int32))
        for step in range(max_new_tokens):
            logits = self._call(generator.get_logits).reshape(len(rows), -1)  # runs the model on the last tokens
            chosen = [row.take(logits[b : b + 1], self.eos, max_new_tokens) for b, row in enumerate(rows)]
            if step == 0:
                stats.prefill_seconds += time.perf_counter() - started
            if on_tokens is not None:
                for position, token in zip(positions, chosen):
                    if token is not None:
                        on_tokens(position, [token])
            for b in unwanted_rows(for_positions(wanted, positions), len(rows)):
                rows[b].done = True
            if all(row.done for row in rows):
                break
            self._append(generator, logits, chosen)
        stats.calls += 1
        stats.tokens += sum(len(row.answer) for row in rows)

    def _append(self, generator: Any, logits: np.ndarray, chosen: list[int | None]) -> None:
        """Feed each row its chosen token (a row that has ended: the pad token, which nothing reads).
        With more than one row onnxruntime-genai appends tokens only from its own search (its
        `append_tokens` works once per generator), so they go in as logits that leave its greedy search
        no other choice; what it took is checked."""
        tokens = [self.pad_token_id if token is None else token for token in chosen]
        forced = np.full_like(logits, -np.inf)
        forced[np.arange(len(tokens)), tokens] = 0.0
        generator.set_logits(forced)
        generator.generate_next_token()
        taken = generator.get_next_tokens().tolist()
        if any(token is not None and token != got for token, got in zip(chosen, taken)):
            raise QfsumError(f"{RUNTIME} did not append the chosen tokens (chose {tokens}, appended {taken})")

    def logits(self, ids: Sequence[int]) -> torch.Tensor:
        """(len(ids), V) float32: the logits after each prefix of `ids`, in one pass (teacher forcing)."""
        with self._lock:
            generator = self._generator(len(ids))
            self._call(generator.append_tokens, np.array(ids, dtype=np.int32))
            return torch.from_numpy(np.array(generator.get_output("logits"), dtype=np.float32)[0])

    def _call(self, run: Callable[..., Any], *args: Any) -> Any:
        """`run(*args)`, a call that runs the model, its failure as one line (e.g. an operator the CPU
        build cannot run on this model: its head size)."""
        try:
            return run(*args)
        except RuntimeError as err:
            raise QfsumError(f"{RUNTIME} cannot run the model in {self.folder}: {str(err).splitlines()[0][:200]}") from None


@dataclass
class _Row:
    """One answer being decoded: its prompt and answer so far (what its processors see) and its processors."""

    context: list[int]
    processors: Sequence[Processor]
    answer: list[int] = field(default_factory=list)
    done: bool = False

    def take(self, logits: np.ndarray, eos: Sequence[int], max_new_tokens: int) -> int | None:
        """Take the next token from this row's step logits (1, V); None once the answer has ended."""
        if self.done:
            return None
        token = choose(self.context, torch.from_numpy(logits), self.processors)
        self.answer.append(token)
        self.context.append(token)
        self.done = token in eos or len(self.answer) >= max_new_tokens
        return token
