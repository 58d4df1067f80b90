"""Grounded decoding: the writer may write a number only if its prompt (the evidence) states it.

A logits processor for causal LMs. At each step it reads the answer written so far and bans every
token that would start, continue or close a number that no number of the prompt extends: a number
may only be written along a number of the evidence, digit by digit, and may end only where that
number ends. "120,000" in the evidence allows "120,000" and "120000" (a trailing full stop or comma
is punctuation, not part of the number). Words are never banned, so the model can still say "a
large overrun"; it just cannot invent "1.3 million" when the evidence says 120,000.

It is a pure function of the ids it is given, as greedy decoding's processors must be, so lookahead
decoding with it equals greedy decoding with it.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # annotations only: transformers loads when a model does
    from transformers import PreTrainedTokenizerBase

_RUN = re.compile(r"\d[\d.,]*")  # a number as written: digits, with the commas and points inside it
_TRAILING_RUN = re.compile(r"\d[\d.,]*$")


def _bare(run: str) -> str:
    """A run without its trailing punctuation: '120,000.' -> '120,000'."""
    return run.rstrip(".,")


def allowed_numbers(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """(numbers, prefixes): the numbers `text` states, as written and without thousands commas, and
    every prefix of them (what a number being written may be so far)."""
    numbers = set()
    for run in _RUN.findall(text):
        bare = _bare(run)
        numbers |= {bare, bare.replace(",", "")}
    prefixes = {n[:i] for n in numbers for i in range(1, len(n) + 1)}
    return frozenset(numbers), frozenset(prefixes)


@functools.lru_cache(maxsize=8)
def _surfaces(tokenizer: PreTrainedTokenizerBase) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Per token: the text it adds after a word (its leading space included), whether that text has a
    digit, and whether it glues onto what precedes (a digit, '.' or ',' first: it can continue a run)."""
    anchor = tokenizer.encode("a", add_special_tokens=False)[:1]
    base = tokenizer.decode(anchor)
    texts = [tokenizer.decode(anchor + [i])[len(base):] for i in range(len(tokenizer))]
    has_digit = torch.tensor([any(c.isdigit() for c in t) for t in texts])
    glues = torch.tensor([bool(t) and (t[0].isdigit() or t[0] in ".,") for t in texts])
    return texts, has_digit, glues


class GroundedNumbers:
    """Bans tokens that would write a number absent from the prompt (see the module docstring).

    `prompt_length`: where the answer starts in each row of `input_ids` (left padding included).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, prompt_length: int) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.texts, self.has_digit, self.glues = _surfaces(tokenizer)
        self._allowed: dict[tuple[int, ...], tuple[frozenset[str], frozenset[str]]] = {}

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """input_ids (B, T), scores (B, V) -> scores with banned tokens at -inf."""
        vocab = min(scores.shape[1], len(self.texts))
        for row in range(input_ids.shape[0]):
            banned = self._banned(input_ids[row].tolist(), vocab)
            if banned.any():
                scores[row, :vocab] = scores[row, :vocab].masked_fill(banned.to(scores.device), float("-inf"))
        return scores

    def _banned(self, ids: list[int], vocab: int) -> torch.Tensor:
        prompt = tuple(ids[: self.prompt_length])
        if prompt not in self._allowed:
            self._allowed[prompt] = allowed_numbers(self.tokenizer.decode(prompt, skip_special_tokens=True))
        numbers, prefixes = self._allowed[prompt]
        answer = self.tokenizer.decode(ids[self.prompt_length :], skip_special_tokens=True)
        trailing = _TRAILING_RUN.search(answer)
        run = trailing.group(0) if trailing else ""
        banned = torch.zeros(vocab, dtype=torch.bool)
        if run and _bare(run) not in numbers:  # a number not finished yet: only gluing tokens may follow
            banned |= ~self.glues[:vocab]
        candidates = self.has_digit[:vocab] | (self.glues[:vocab] if run else torch.zeros(vocab, dtype=torch.bool))
        for token in torch.nonzero(candidates & ~banned).flatten().tolist():
            text = self.texts[token]
            tail = run + text if run and self.glues[token] else text
            banned[token] = not self._fits(tail, numbers, prefixes)
        return banned

    @staticmethod
    def _fits(tail: str, numbers: frozenset[str], prefixes: frozenset[str]) -> bool:
        """Every run of `tail` is a number of the prompt, the last one possibly still being written."""
        runs = list(_RUN.finditer(tail))
        for k, match in enumerate(runs):
            run = match.group(0)
            open_ended = k == len(runs) - 1 and match.end() == len(tail)
            if not (_bare(run) in numbers or (open_ended and run in prefixes)):
                return False
        return True
