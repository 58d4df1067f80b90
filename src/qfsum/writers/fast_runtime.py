"""What the generative writer's fast CPU runtimes (CTranslate2, ONNX Runtime GenAI) share on the
decoding side: the greedy-only check, the converted model's Hugging Face side (configs, tokenizer,
end-of-sequence ids), the thread count, and the writer's processors choosing a token.

A runtime's model (`Ct2CausalLM`, `OrtGenaiCausalLM`) subclasses `ConvertedCausalLM` and offers
`generate(prompt, max_new_tokens, processors, no_repeat_ngram_size, on_tokens, stats)` (the greedy
answer under the writer's processors) and `logits(ids)` (teacher forcing), which the generative writer
and benchmarks/runtimes.py call the same way for either runtime.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import QfsumError
from .base import WriterConfig
from .conversion import HF_FILES

# A logits processor in the `transformers` convention: (input_ids (1, T), scores (1, V)) -> scores.
Processor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class DecodeStats:
    """What decoding did: runtime calls, resumptions after a processor overruled the runtime (CTranslate2),
    tokens, and the seconds until each answer's first token (the prefill: reading the prompt)."""

    calls: int = 0
    restarts: int = 0
    tokens: int = 0
    prefill_seconds: float = 0.0


def require_greedy(config: WriterConfig) -> None:
    """One line refusing what a fast runtime cannot decode: beams and lookahead."""
    if config.num_beams != 1 or config.decoding != "greedy":
        raise QfsumError(f"the {config.runtime} runtime decodes greedily: it needs num_beams 1 and decoding greedy")


def choose(context: Sequence[int], scores: torch.Tensor, processors: Sequence[Processor]) -> int:
    """The token greedy decoding writes after `context` (prompt and answer so far): the argmax of the
    step's logits `scores` (1, V) once every processor has seen them."""
    ids = torch.tensor([list(context)])
    for processor in processors:
        scores = processor(ids, scores)
    return int(scores.argmax(-1))


class ConvertedCausalLM:
    """A causal LM converted for a fast runtime (`writers.conversion`): its Hugging Face side.

    `config` and `generation_config` are the original model's, so code written for a `transformers`
    model can read them; there are no torch weights. `threads` is the runtime's intra-op thread count:
    torch's, which `qfsum.threads` has set for this process (one per worker). One decode at a time
    (`_lock`).
    """

    device = "cpu"

    def __init__(self, folder: Path, threads: int | None = None) -> None:
        from transformers import AutoConfig, AutoTokenizer, GenerationConfig

        self.folder = Path(folder)
        hf = self.folder / HF_FILES
        self.config = AutoConfig.from_pretrained(hf)
        try:
            self.generation_config = GenerationConfig.from_pretrained(hf)
        except OSError:  # the model had none
            self.generation_config = GenerationConfig.from_model_config(self.config)
        self.tokenizer = AutoTokenizer.from_pretrained(hf)
        eos = self.generation_config.eos_token_id
        eos = self.tokenizer.eos_token_id if eos is None else eos
        self.eos: list[int] = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
        self.threads = threads or torch.get_num_threads()
        self._lock = threading.Lock()
