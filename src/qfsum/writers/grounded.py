"""Grounded decoding: the writer may write a number only if its prompt (the evidence) states it.

A logits processor for causal LMs. At each step it reads the answer written so far and bans every
token that would start, continue or close a number that no number of the prompt extends: a number
may only be written along a number of the evidence, digit by digit, and may end only where that
number ends. "120,000" in the evidence allows "120,000" and "120000" (a trailing full stop or comma
is punctuation, not part of the number). A number word ("eight", "twenty") is allowed only if the
evidence has that word or states its value in digits, and a numeric character that is not a digit ("½")
only if the evidence has it; "one" stays free ("no one", "one of them"), and so do scale words, which
only say how large a constrained number is. Other words are never banned, so the model can still say
"a large overrun"; it just cannot invent "1.3 million" when the evidence says 120,000.

It is a pure function of the ids it is given, as greedy decoding's processors must be, so lookahead
decoding with it equals greedy decoding with it.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..grounding import numbers as stated_numbers

if TYPE_CHECKING:  # annotations only: transformers loads when a model does
    from transformers import PreTrainedTokenizerBase

_FREE_WORDS = frozenset({"one", "hundred", "thousand", "million", "billion", "trillion"})
_RUN = re.compile(r"\d[\d.,]*")  # a number as written: digits, with the commas and points inside it
_TRAILING_RUN = re.compile(r"\d[\d.,]*$")


def _bare(run: str) -> str:
    """A run without its trailing punctuation: '120,000.' -> '120,000'."""
    return run.rstrip(".,")


@dataclass(frozen=True)
class _Prompt:
    """What one prompt allows: its numbers as written, their prefixes, and the values it states."""

    text: str
    numbers: frozenset[str]
    prefixes: frozenset[str]
    values: frozenset[str]  # canonical, as `grounding.numbers` gives them: "8", "1300000", "2.5%"
    words: frozenset[str]  # its words, lowercased


def allowed_numbers(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """(numbers, prefixes): the numbers `text` states, as written and without thousands commas, and
    every prefix of them (what a number being written may be so far)."""
    numbers = set()
    for run in _RUN.findall(text):
        bare = _bare(run)
        numbers |= {bare, bare.replace(",", "")}
    prefixes = {n[:i] for n in numbers for i in range(1, len(n) + 1)}
    return frozenset(numbers), frozenset(prefixes)


@dataclass(frozen=True)
class _Vocabulary:
    """What the processor needs to know of each token, computed once per tokenizer."""

    texts: list[str]  # the text a token adds after a word, its leading space included
    has_digit: torch.Tensor  # (V,) bool: the text holds a digit 0-9
    glues: torch.Tensor  # (V,) bool: a digit, '.' or ',' first: it can continue a number being written
    words: list[tuple[int, str, str]]  # (token, word, canonical value) of number words ("eight", "8")
    odd_numerals: list[tuple[int, str]]  # (token, characters) of numerals that are not digits ("½")


@functools.lru_cache(maxsize=8)
def _vocabulary(tokenizer: PreTrainedTokenizerBase) -> _Vocabulary:
    anchor = tokenizer.encode("a", add_special_tokens=False)[:1]
    base = tokenizer.decode(anchor)
    texts = [tokenizer.decode(anchor + [i])[len(base):] for i in range(len(tokenizer))]
    words, odd = [], []
    for token, text in enumerate(texts):
        word = text.strip().lower()
        if word.isalpha() and word not in _FREE_WORDS and (value := stated_numbers(word)):
            words.append((token, word, value[0]))
        numerals = "".join(c for c in text if not "0" <= c <= "9" and unicodedata.numeric(c, None) is not None)
        if numerals:
            odd.append((token, numerals))
    return _Vocabulary(
        texts,
        torch.tensor([any("0" <= c <= "9" for c in t) for t in texts]),
        torch.tensor([bool(t) and ("0" <= t[0] <= "9" or t[0] in ".,") for t in texts]),
        words,
        odd,
    )


class GroundedNumbers:
    """Bans tokens that would write a number absent from the prompt (see the module docstring).

    `prompt_length`: where the answer starts in each row of `input_ids` (left padding included).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, prompt_length: int) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.vocabulary = _vocabulary(tokenizer)
        self._prompts: dict[tuple[int, ...], _Prompt] = {}

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """input_ids (B, T), scores (B, V) -> scores with banned tokens at -inf."""
        vocab = min(scores.shape[1], len(self.vocabulary.texts))
        for row in range(input_ids.shape[0]):
            banned = self._banned(input_ids[row].tolist(), vocab)
            if banned.any():
                scores[row, :vocab] = scores[row, :vocab].masked_fill(banned.to(scores.device), float("-inf"))
        return scores

    def _banned(self, ids: list[int], vocab: int) -> torch.Tensor:
        prompt = self._prompt(tuple(ids[: self.prompt_length]))
        v = self.vocabulary
        answer = self.tokenizer.decode(ids[self.prompt_length :], skip_special_tokens=True)
        trailing = _TRAILING_RUN.search(answer)
        run = trailing.group(0) if trailing else ""
        banned = torch.zeros(vocab, dtype=torch.bool)
        if run and _bare(run) not in prompt.numbers:  # a number not finished yet: only gluing tokens may follow
            banned |= ~v.glues[:vocab]
        candidates = v.has_digit[:vocab] | (v.glues[:vocab] if run else torch.zeros(vocab, dtype=torch.bool))
        for token in torch.nonzero(candidates & ~banned).flatten().tolist():
            text = v.texts[token]
            tail = run + text if run and v.glues[token] else text
            banned[token] = not self._fits(tail, prompt.numbers, prompt.prefixes)
        for token, word, value in v.words:  # the word itself: "twenty" may begin the prompt's "twenty five"
            if token < vocab and value not in prompt.values and word not in prompt.words:
                banned[token] = True
        for token, numerals in v.odd_numerals:
            if token < vocab and not all(c in prompt.text for c in numerals):
                banned[token] = True
        return banned

    def _prompt(self, ids: tuple[int, ...]) -> _Prompt:
        if ids not in self._prompts:
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            self._prompts[ids] = _Prompt(text, *allowed_numbers(text), frozenset(stated_numbers(text)),
                                         frozenset(re.findall(r"[a-z]+", text.lower())))
        return self._prompts[ids]

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
