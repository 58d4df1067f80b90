"""Teacher-forced token agreement: how closely a writer's runtime follows reference answers.

Two runtimes' free-running answers drift apart after their first different token, so comparing whole
answers says little about how close they are. Teacher forcing asks instead, at every token of the
reference answer: given the prompt and the reference answer before this token, does this writer (its
processors applied, as it decodes) choose the same next token?
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def sequence_logits(writer: Any, ids: Sequence[int]) -> Any:
    """(len(ids), V) float32 logits after each prefix of `ids` from a generative writer's model, in one
    pass: `logits(ids)` of a fast runtime's model (`writers.fast_runtime`), a forward pass of torch's."""
    import torch

    if writer.runtime != "torch":
        return writer.model.logits(ids)
    with torch.inference_mode():
        return writer.model(torch.tensor([list(ids)], device=writer.model.device)).logits[0].float().cpu()


def token_agreement(writer: Any, prompts: Sequence[Sequence[int]], reference: Sequence[Sequence[int]]) -> float:
    """The share of the `reference` answers' tokens (without end-of-sequence tokens) that `writer`
    chooses next, given its prompt and the reference answer before that token; 1.0 when there are none."""
    from ..writers.fast_runtime import choose

    hits = total = 0
    for ids, answer in zip(prompts, reference, strict=True):
        if not answer:
            continue
        sequence = list(ids) + list(answer)
        logits = sequence_logits(writer, sequence)
        processors = writer._processors(len(ids))
        for t, token in enumerate(answer):
            scores = logits[len(ids) + t - 1].reshape(1, -1).clone()
            hits += choose(sequence[: len(ids) + t], scores, processors) == token
            total += 1
    return hits / total if total else 1.0
