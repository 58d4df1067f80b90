"""The CTranslate2 runtime of the generative writer: the same greedy answers, decoded by CTranslate2 on the CPU.

CTranslate2 (4.8.5) takes no logits processors from Python: its own per-step options are fixed bans
(`suppress_sequences`), a repetition penalty and an n-gram ban over the tokens it wrote, none of which
can express grounded decoding (a ban that depends on the answer's text and the evidence). What it does
offer is a callback that sees each chosen token with that step's logits and may stop the decoding.
So the writer's processors keep the last word, step by step:

- CTranslate2 decodes greedily, banning repeated n-grams among the tokens of its own call and, in a
  resumed call, the answer's earlier n-grams (`suppress_sequences`): a subset of what the writer's
  answer-wide ban removes, so it never bans a token the writer would allow;
- at each step the callback applies the writer's processors (`GenerativeWriter._processors`: the
  answer-wide n-gram ban, the repetition penalty, grounded decoding) to that step's logits and takes
  their argmax, which is the token greedy decoding with those processors writes;
- where that token is not CTranslate2's, the callback stops the call, and decoding resumes from the
  prompt plus the answer so far. The prompt's key/value state is kept as CTranslate2's cached static
  prompt, so a resumed call reads only the answer so far, in one pass.

With no processor but the n-gram ban (no grounding), no call is ever resumed: CTranslate2 decodes
alone, no logits reach Python. The output is the torch writer's greedy output to the precision of the
weights: equal token for token in float32 (tests/test_ct2_runtime.py, and the shipped writer on
examples/meeting.txt); int8 weights change some logits, and with them the answers (docs/writers.md).
Each answer decodes alone (batch 1): prompts of different lengths never wait on each other, and each
keeps its cached prompt.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import QfsumError
from .base import WriterConfig
from .conversion import unloadable
from .ct2_convert import check_converted, converted_model, require_ctranslate2
from .fast_runtime import ConvertedCausalLM, DecodeStats, Processor, choose, require_greedy
# CTranslate2 never evicts a cached prompt state, and one is large (RSS grew ~150 MB per 1000-token
# prompt with SmolLM2-135M int8: keys and values in float32), so the generator is reloaded, emptying
# its cache, when a new prompt would make more than this many. A reload reads model.bin again (135 MB
# int8, from the page cache), far less work than reading a 1000-token prompt again at each restart.
MAX_PROMPT_STATES = 1
# What decoding did (its prefill includes reloading the model when a new prompt state needs the room).
Ct2Stats = DecodeStats


def quantization_of(config: WriterConfig) -> str:
    """The CTranslate2 weights a writer config asks for: `dtype` auto means int8."""
    return "int8" if config.dtype == "auto" else config.dtype


def load_for_writer(config: WriterConfig) -> tuple["Ct2CausalLM", Any]:
    """(model, tokenizer) of a generative writer with `runtime: ctranslate2`."""
    require_greedy(config)
    model = load_ct2(config.model, quantization_of(config))
    return model, model.tokenizer


@functools.cache
def load_ct2(name: str, quantization: str = "int8") -> "Ct2CausalLM":
    """Model `name` on CTranslate2 (converted once, then from the cache directory); one copy per process."""
    return Ct2CausalLM(converted_model(name, quantization))


class Ct2CausalLM(ConvertedCausalLM):
    """A converted causal LM (`writers.ct2_convert`) that decodes greedily under logits processors
    (its configs, tokenizer and thread count: `ConvertedCausalLM`; one decode at a time, so the reload
    below never cuts one short)."""

    def __init__(self, folder: Path, threads: int | None = None) -> None:
        self._ct2 = require_ctranslate2()
        self.quantization = check_converted(Path(folder))["quantization"]
        super().__init__(folder, threads)
        self._cached: set[tuple[int, ...]] = set()
        self._generator = self._load()

    def _load(self) -> Any:
        try:
            return self._ct2.Generator(str(self.folder), device="cpu", compute_type=self.quantization,
                                       intra_threads=self.threads, inter_threads=1)
        except (RuntimeError, ValueError) as err:
            raise unloadable(self.folder, err) from None

    def _remember(self, static: tuple[int, ...]) -> None:
        """Count a prompt whose state CTranslate2 will cache; reload the generator (emptying its
        cache) before it holds more than MAX_PROMPT_STATES."""
        if static in self._cached:
            return
        if len(self._cached) >= MAX_PROMPT_STATES:
            self._generator = None  # freed now (no reference cycles): never two models in memory
            self._generator = self._load()
            self._cached.clear()
        self._cached.add(static)

    def generate(self, prompt: Sequence[int], max_new_tokens: int, processors: Sequence[Processor] = (),
                 no_repeat_ngram_size: int = 0, on_tokens: Callable[[list[int]], None] | None = None,
                 stats: DecodeStats | None = None) -> list[int]:
        """The greedy continuation of `prompt` (ids, no padding) under `processors`, which see the prompt
        and the answer so far (`no_repeat_ngram_size` must be their n-gram ban's, 0 for none):
        new tokens, up to and including an end-of-sequence token. `on_tokens` gets each token as it is
        chosen."""
        if not prompt:
            raise QfsumError("the ctranslate2 runtime needs a prompt of at least one token")
        stats = stats if stats is not None else DecodeStats()
        processors = _not_its_own(processors, no_repeat_ngram_size)
        tokens = self.tokenizer.convert_ids_to_tokens
        static, last = list(prompt[:-1]), tokens([prompt[-1]])
        static_tokens = tokens(static) or None
        answer: list[int] = []
        with self._lock:
            started = time.perf_counter()  # a reload for a new prompt state counts as reading the prompt
            if processors:  # a call may be resumed: keep the prompt's state (without processors none is)
                self._remember(tuple(static))
            while len(answer) < max_new_tokens and not (answer and answer[-1] in self.eos):
                step = _Step(list(prompt), answer, processors, self.eos, max_new_tokens, on_tokens)
                self._generator.generate_batch(
                    [last + tokens(answer)], static_prompt=static_tokens, cache_static_prompt=bool(processors),
                    include_prompt_in_result=False, max_length=max_new_tokens - len(answer), beam_size=1,
                    no_repeat_ngram_size=no_repeat_ngram_size, end_token=self.eos,
                    suppress_sequences=[tokens(g) for g in ngrams(answer, no_repeat_ngram_size)] or None,
                    return_logits_vocab=bool(processors), callback=step)
                if step.error is not None:
                    raise step.error
                if step.chosen and len(answer) == step.chosen:  # this call wrote the answer's first token
                    stats.prefill_seconds += step.first_at - started
                stats.calls += 1
                stats.tokens += step.chosen
                if not step.overruled:
                    break  # CTranslate2 ended the answer itself: an end-of-sequence token or the length limit
                stats.restarts += 1
        return answer


    def logits(self, ids: Sequence[int]) -> torch.Tensor:
        """(len(ids), V) float32: the logits after each prefix of `ids`, in one pass (teacher forcing;
        nothing is cached)."""
        import numpy as np

        with self._lock:
            return torch.from_numpy(np.array(self._generator.forward_batch([list(ids)]), dtype=np.float32))[0]


def _not_its_own(processors: Sequence[Processor], no_repeat_ngram_size: int) -> list[Processor]:
    """The processors, or none when they are only the answer-only n-gram ban CTranslate2 applies itself
    (its ban covers the tokens of its call, which are the whole answer when no call is resumed): then
    it decodes alone, with no logits copied to Python and no prompt state kept."""
    from .lookahead import AnswerNoRepeatNGram

    if all(isinstance(p, AnswerNoRepeatNGram) and p.ban.ngram_size == no_repeat_ngram_size for p in processors):
        return []
    return list(processors)


def ngrams(tokens: Sequence[int], n: int) -> list[list[int]]:
    """The distinct n-grams of `tokens`. Passed to a resumed call as sequences to suppress, they ban what
    the answer-wide n-gram ban bans among the new tokens (CTranslate2's own ban sees only those), so fewer
    steps need a restart; the n-grams that straddle the resume point are left to the processors."""
    if n < 1:
        return []
    return [list(g) for g in dict.fromkeys(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))]


class _Step:
    """CTranslate2's per-token callback for one call: applies the processors to the step's logits,
    appends their choice to the answer, and stops the call where the choice is not CTranslate2's."""

    def __init__(self, prompt: list[int], answer: list[int], processors: Sequence[Processor], eos: list[int],
                 max_new_tokens: int, on_tokens: Callable[[list[int]], None] | None) -> None:
        self.prompt, self.answer, self.processors = prompt, answer, processors
        self.eos, self.max_new_tokens, self.on_tokens = set(eos), max_new_tokens, on_tokens
        self.chosen = 0  # tokens this call appended
        self.overruled = False
        self.first_at = 0.0
        self.error: BaseException | None = None

    def __call__(self, step: Any) -> bool:
        """True stops the call (CTranslate2's convention)."""
        try:
            token = self._choose(step)
        except BaseException as err:  # noqa: BLE001 - an exception cannot cross CTranslate2's C++ loop: re-raised after it
            self.error = err
            return True
        if not self.chosen:
            self.first_at = time.perf_counter()
        self.chosen += 1
        self.answer.append(token)
        if self.on_tokens is not None:
            self.on_tokens([token])
        self.overruled = token != step.token_id
        return self.overruled or token in self.eos or len(self.answer) >= self.max_new_tokens

    def _choose(self, step: Any) -> int:
        if not self.processors:
            return int(step.token_id)
        import numpy as np

        scores = torch.from_numpy(np.array(step.logits, dtype=np.float32, copy=True)).reshape(1, -1)
        return choose(self.prompt + self.answer, scores, self.processors)
