"""The writer protocol, its config, budget selection, and the registry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..errors import QfsumError
from .draft import Draft, Evidence

WRITER_KINDS = ("extractive", "generative")


class Writer(Protocol):
    """Writes one summary per (query, ranked evidence) pair."""

    def write_batch(self, queries: Sequence[str], ranked: Sequence[Sequence[Evidence]]) -> list[Draft]:
        """`ranked[i]` is every segment for `queries[i]`, most relevant first."""
        ...


@dataclass
class WriterConfig:
    """Which writer to build and its knobs."""

    kind: str = "extractive"  # extractive | generative (any causal or seq2seq LM)
    model: str | None = None  # generative: packaged name (smollm2), local directory or hub id
    budget: int | None = None  # extractive: summary words (default 100); generative: input tokens (1024)
    max_new_tokens: int = 200  # generative: length limit of the answer
    no_repeat_ngram_size: int = 3  # generative: small models loop without it
    repetition_penalty: float = 1.0  # generative: > 1 discourages repeating any earlier token
    num_beams: int = 1  # generative: 1 = greedy
    batch_size: int = 4  # generative: queries per generate() call
    dtype: str = "auto"  # generative: auto (bf16 where the hardware has it), float32, bfloat16, float16

    def __post_init__(self) -> None:
        if self.kind not in WRITER_KINDS:
            raise QfsumError(f"unknown writer '{self.kind}' (choose from {', '.join(WRITER_KINDS)})")
        if self.kind == "generative" and not self.model:
            raise QfsumError("the generative writer needs a model (e.g. smollm2, a directory or a hub id)")
        if self.budget is not None and self.budget < 1:
            raise QfsumError(f"writer budget must be >= 1, got {self.budget}")


def build_writer(config: WriterConfig) -> Writer:
    """Build the writer a config names."""
    if config.kind == "extractive":
        from .extractive import ExtractiveWriter

        return ExtractiveWriter(config.budget or 100)
    from .generative import GenerativeWriter

    return GenerativeWriter(config)
