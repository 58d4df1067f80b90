"""Grounded decoding: the writer may write a number (or, optionally, a name) only if its evidence states it.

Logits processors for causal and seq2seq LMs. At each step they read the answer written so far and ban
every token that would start, continue or close a number phrase that the evidence does not state:

- a number phrase is digits with their points and commas ("120,000", "2.5"), number words ("twenty
  five", "two hundred and twenty"), scale words ("1.3 million") and a percent sign or word;
- a phrase may grow only while it is the start of a phrase of the evidence (as written, or as the digits
  of a value the evidence states: "twenty five" in the evidence allows "25"), or while its value is one
  the evidence states;
- a phrase may end only when its value is one the evidence states ("twenty" may not end where the
  evidence says "twenty five"; "1.3" may not go on to " million" unless 1,300,000 is stated);
- a point after a whole number that no number of the evidence continues ends the sentence: no digit may
  follow it, so "2." cannot turn into "2. 1 million" when the writer wanted an unstated "2.5";
- the day of a stated date is stated only with its month ("14 March", "March 14"), not alone: the
  evidence's "15 April" does not allow "a 15-year plan", nor "1 J" (the start of "1 June") to go on as
  "1 Jumping" (a bare "1" and a word); and straight after a month only a day the
  evidence dates in that month, or a year it states, may be written: its "twenty" allows "20 people",
  not "July 20th".

If a row has nothing left to write (the answer's n-gram ban took the rest), the answer ends there.

A lone "one" stays free ("no one", "one of them"): `grounding.numbers` does not count it either.
Other words are never banned, so the model can still say "a large overrun"; it just cannot invent
"1.3 million" when the evidence says 120,000. The check is the one `grounding.numbers` makes when it
measures `number_precision`, so an answer written under it states only numbers its evidence states.

`GroundedNames` does the same for capitalised words that do not start a sentence: each must be a word
the evidence capitalises.

Both are pure functions of the ids they are given, as greedy decoding's processors must be, so lookahead
decoding with them equals greedy decoding with them.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..grounding import NUMBER_WORDS, PRONOUN_ONE, numbers as stated_numbers
from .prompt import evidence_in_prompt

_MONTH_NAMES = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
                "november", "december")  # a stated date "date:03-14" is the 14th of _MONTH_NAMES[2]

if TYPE_CHECKING:  # annotations only: transformers loads when a model does
    from transformers import PreTrainedTokenizerBase

_JOINERS = ("and", "per", "cent", "percent")  # words that may sit inside a number phrase
_PHRASE_WORDS = "|".join(sorted([*NUMBER_WORDS, *_JOINERS], key=len, reverse=True))
_UNIT = rf"(?:\d+(?:[.,]\d+)*[.,]?|(?:{_PHRASE_WORDS})\b|%)"
# number units joined by nothing ("2.5%") or one space ("1.3 million"); a trailing space is a phrase going on
_PHRASE = re.compile(rf"(?<![\w.,]){_UNIT}(?: ?{_UNIT})*( ?)")
_TAIL_CHARS = 80  # a number phrase is never longer: only the answer's tail is read
_DAY_AND_WORD = re.compile(r"(?<![\d.,])(\d{1,2}) ([a-z]+)$")  # normalised "... 1 jun": a day, a word begun


def normalise(text: str) -> str:
    """Lowercase, hyphens as spaces, no thousands commas, one space between words, "%" for "percent"."""
    text = re.sub(r"(?<=\d),(?=\d)", "", text.lower().replace("-", " "))
    text = re.sub(r"\s+", " ", text)
    return re.sub(r" ?(?:per ?cent|%)\b|(?<=\d) %", "%", text)


def _phrases(text: str) -> list[tuple[int, int, str]]:
    """(start, end, phrase) of the number phrases of normalised `text`; joiner words never start or end one."""
    found = []
    for match in _PHRASE.finditer(text):
        words = match.group(0).split(" ")
        while words and words[0] in _JOINERS:
            words.pop(0)
        if not words or not any(w and w not in _JOINERS for w in words):
            continue
        phrase = " ".join(words)
        found.append((match.end() - len(phrase), match.end(), phrase))
    return found


def _month_ending(text: str) -> str | None:
    """The month `text` ends with, written out or cut to three letters or more ("Sept."), or None."""
    word = text.rstrip(". ").rsplit(" ", 1)[-1]
    return next((month for month in _MONTH_NAMES if month.startswith(word)), None) if len(word) >= 3 else None


def _value_stated(phrase: str, values: frozenset[str]) -> bool:
    """The phrase, as complete, states one value and the evidence states it (a lone "one" is free)."""
    phrase = phrase.strip().rstrip(".,")
    if phrase in ("", PRONOUN_ONE) or all(w in _JOINERS for w in phrase.split()):
        return True
    found = stated_numbers(phrase)
    return len(found) == 1 and found[0] in values


@dataclass(frozen=True)
class Source:
    """What one evidence text allows: its number phrases and every start of them, and the values it states."""

    text: str
    prefixes: frozenset[str]
    values: frozenset[str]  # canonical, as `grounding.numbers` gives them: "8", "1300000", "2.5%"
    capitalised: frozenset[str]  # words the evidence writes with a capital
    dates: frozenset[tuple[str, str]]  # (day, month name) of each date stated: "14 March" -> ("14", "march")

    @classmethod
    def of(cls, text: str) -> "Source":
        values = set(stated_numbers(text))
        dates = frozenset((str(int(v[-2:])), _MONTH_NAMES[int(v[5:7]) - 1]) for v in values if v.startswith("date:"))
        surfaces = {phrase.strip() for _, _, phrase in _phrases(normalise(text))}
        surfaces |= {v for v in values if not v.startswith("date:")}  # "twenty five" may be written "25"
        surfaces |= {day for day, _ in dates}  # "14" may begin "14 March" (but not stand alone: see `_date_day`)
        prefixes = {s[:i] for s in surfaces for i in range(1, len(s) + 1)}
        capitalised = frozenset(re.findall(r"\b[A-Z][\w'’]*", text))
        return cls(text, frozenset(prefixes), frozenset(values), capitalised, dates)

    def months_of(self, day: str) -> frozenset[str]:
        """The month names that `day` is the day of, in the dates stated."""
        return frozenset(month for d, month in self.dates if d == day)

    def after_month(self, month: str) -> tuple[frozenset[str], frozenset[str]]:
        """(values, prefixes) a number written straight after `month` may have: a day the evidence dates
        in that month, or a year it states ("March 2021"). A plain number of the evidence is no day:
        its "twenty" does not make "July 20th" a stated date."""
        allowed = {day for day, m in self.dates if m == month}
        allowed |= {v for v in self.values if v.isdigit() and len(v) == 4}
        return frozenset(allowed), frozenset(v[:i] for v in allowed for i in range(1, len(v) + 1))


def allowed_numbers(text: str) -> frozenset[str]:
    """Every number phrase `text` states, normalised, and the digits of every value it states."""
    source = Source.of(text)
    return frozenset(p for p in source.prefixes if _value_stated(p, source.values))


@dataclass(frozen=True)
class _Vocabulary:
    """What the processors need to know of each token, computed once per tokenizer."""

    texts: list[str]  # the text a token adds after a word, its leading space included
    numeric: torch.Tensor  # (V,) bool: may start or continue a number phrase (digits, points, number words, %)
    starts: torch.Tensor  # (V,) bool: holds a number phrase of its own: may start one
    digit_led: torch.Tensor  # (V,) bool: its first non-space character is a digit
    odd_numerals: list[tuple[int, str]]  # (token, characters) of numerals that are not digits ("½")
    capital_led: list[int]  # tokens that start a new capitalised word (" Paris")


_NUMERIC_TOKEN = re.compile(rf"^ ?(?:\d|[.,%-]|(?:{_PHRASE_WORDS})$)|^ $", re.I)


@functools.lru_cache(maxsize=8)
def _vocabulary(tokenizer: PreTrainedTokenizerBase) -> _Vocabulary:
    anchor = tokenizer.encode("a", add_special_tokens=False)[:1]
    base = tokenizer.decode(anchor)
    texts = [tokenizer.decode(anchor + [i])[len(base):] for i in range(len(tokenizer))]
    odd, capital_led = [], []
    for token, text in enumerate(texts):
        numerals = "".join(c for c in text if not "0" <= c <= "9" and unicodedata.numeric(c, None) is not None)
        if numerals:
            odd.append((token, numerals))
        if len(text) > 1 and text[0] == " " and text[1].isupper():
            capital_led.append(token)
    return _Vocabulary(
        texts,
        torch.tensor([bool(_NUMERIC_TOKEN.match(t.lower())) for t in texts]),
        torch.tensor([bool(_phrases(normalise(t))) for t in texts]),
        torch.tensor([t.lstrip()[:1].isdigit() for t in texts]),
        odd,
        capital_led,
    )


class _Grounded:
    """Reads, for each row, the answer written so far and the evidence it must keep to.

    Causal LMs: `prompt_length` is where the answer starts in each row (left padding included) and the
    prompt holds the evidence. Seq2seq LMs: the rows are the decoder's ids (`prompt_length` 0, or 1 to skip
    the start token) and `sources[i]` is input i (its evidence), shared by its `num_beams` beams. Of a prompt
    or input our template built, only the evidence counts, not the question (`prompt.evidence_in_prompt`).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, prompt_length: int,
                 sources: Sequence[str] | None = None, num_beams: int = 1) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.vocabulary = _vocabulary(tokenizer)
        self._given = [Source.of(evidence_in_prompt(s)) for s in sources] if sources is not None else None
        self.num_beams = max(num_beams, 1)
        self._sources: dict[tuple[int, ...], Source] = {}
        self._cached: dict[tuple[int, str], torch.Tensor] = {}  # per source: what the vocabulary may do
        end = tokenizer.eos_token_id
        self.end: int | None = end[0] if isinstance(end, list) else end

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """input_ids (B, T), scores (B, V) -> scores with banned tokens at -inf."""
        vocab = min(scores.shape[1], len(self.vocabulary.texts))
        for row in range(input_ids.shape[0]):
            ids = input_ids[row].tolist()
            answer = self.tokenizer.decode(ids[self.prompt_length:], skip_special_tokens=True)
            banned = self._banned(answer, self._source(row, ids), vocab)
            if banned.any() and not banned.all():  # never leave a row nothing to write
                scores[row, :vocab] = scores[row, :vocab].masked_fill(banned.to(scores.device), float("-inf"))
            if self.end is not None and not torch.isfinite(scores[row]).any():
                # with the n-gram ban, nothing is left: end the answer here (greedy would otherwise take
                # token 0, which may be an invisible special token, and write on after it)
                scores[row, self.end] = 0.0
        return scores

    def _source(self, row: int, ids: list[int]) -> Source:
        if self._given is not None:
            return self._given[row // self.num_beams]
        key = tuple(ids[: self.prompt_length])
        if key not in self._sources:
            self._sources[key] = Source.of(evidence_in_prompt(self.tokenizer.decode(key, skip_special_tokens=True)))
        return self._sources[key]

    def _banned(self, answer: str, source: Source, vocab: int) -> torch.Tensor:
        raise NotImplementedError


class GroundedNumbers(_Grounded):
    """Bans tokens that would write a number its evidence does not state (see the module docstring)."""

    def _banned(self, answer: str, source: Source, vocab: int) -> torch.Tensor:
        v = self.vocabulary
        tail = answer[-_TAIL_CHARS:]
        norm = normalise(tail)
        month_begun = self._month_begun(norm, source)
        if month_begun is not None:  # "1 J" stands for a date only if "une" or "uly" follows
            return month_begun[:vocab]
        banned = torch.zeros(vocab, dtype=torch.bool)
        open_phrase = next((p for p in reversed(_phrases(norm)) if p[1] == len(norm)), None)
        values, prefixes = source.values, source.prefixes
        month = _month_ending(norm[: open_phrase[0]] if open_phrase else norm)
        if month:  # "March 14" is a date: only a day the evidence dates in March (or a year) may follow
            values, prefixes = source.after_month(month)
        months = source.months_of(open_phrase[2].strip()) if open_phrase else frozenset()
        if open_phrase and not _value_stated(open_phrase[2], values):
            banned |= ~v.numeric[:vocab]  # an unfinished number: only number tokens may follow
            if months:  # the day of a stated date: its month may follow ("14" -> "14 March")
                banned &= ~self._month_led(source, months)[:vocab]
        if re.search(r"\d\. ?$", norm) and open_phrase and open_phrase[2].rstrip(" ") not in prefixes:
            banned |= v.digit_led[:vocab]  # the point ended a sentence: no number straight after it
        if open_phrase:
            for token in torch.nonzero(v.numeric[:vocab] & ~banned).flatten().tolist():
                banned[token] = not self._fits(normalise(tail + v.texts[token])[open_phrase[0]:], prefixes, values)
        else:  # a new phrase: whether a token may start one depends on the token and the character before it
            banned |= self._start_bans(source, "a" if norm[-1:].isalnum() else " ", month)[:vocab]
        for token, numerals in v.odd_numerals:
            if token < vocab and not all(c in source.text for c in numerals):
                banned[token] = True
        return banned

    def _month_begun(self, norm: str, source: Source) -> torch.Tensor | None:
        """After the day of a stated date that is no stated value alone, and the first letters of one of its
        months (allowed by `_month_led`): the tokens that do not go on to write that month (a whole name, or
        three letters or more and then no letter). None when the answer does not end so."""
        found = _DAY_AND_WORD.search(norm)
        if found is None or found.group(1) in source.values:
            return None
        day, word = found.groups()
        months = [m for m in source.months_of(day) if m.startswith(word)]
        if not months:
            return None
        key = (id(source), "month-begun", day, word)
        if key not in self._cached:
            banned = torch.ones(len(self.vocabulary.texts), dtype=torch.bool)
            for token, text in enumerate(self.vocabulary.texts):
                going_on = word + text.lower()
                letters = len(going_on) - len(going_on.lstrip("abcdefghijklmnopqrstuvwxyz"))
                head = going_on[:letters]
                if any(m.startswith(head) for m in months) and (letters == len(going_on) or letters >= 3):
                    banned[token] = False
            self._cached[key] = banned
        return self._cached[key]

    def _month_led(self, source: Source, months: frozenset[str]) -> torch.Tensor:
        """Tokens that begin one of `months` after a space ("14" + " March", " Mar" + "ch", " Sept")."""
        key = (id(source), " ".join(sorted(months)))
        if key not in self._cached:
            led = torch.zeros(len(self.vocabulary.texts), dtype=torch.bool)
            for token, text in enumerate(self.vocabulary.texts):
                word = text.lower()
                if word.startswith(" ") and len(word) > 1 and any(m.startswith(word[1:]) or word[1:].startswith(m)
                                                                   for m in months):
                    led[token] = True
            self._cached[key] = led
        return self._cached[key]

    def _start_bans(self, source: Source, before: str, month: str | None = None) -> torch.Tensor:
        """Tokens that may not start a number phrase after `before` (straight after `month`, if given)."""
        key = (id(source), before, month or "")
        if key not in self._cached:
            v = self.vocabulary
            prefixes, values = (source.after_month(month)[::-1] if month else (source.prefixes, source.values))
            banned = torch.zeros(len(v.texts), dtype=torch.bool)
            for token in torch.nonzero(v.starts).flatten().tolist():
                banned[token] = not self._fits(normalise(before + v.texts[token])[len(before):], prefixes, values)
            self._cached[key] = banned
        return self._cached[key]

    @staticmethod
    def _fits(written: str, prefixes: frozenset[str], values: frozenset[str]) -> bool:
        """Every phrase of `written` (the current phrase on) states one of `values`; the last may still be
        growing along `prefixes` (the evidence's, or after a month its dates' days and its years)."""
        for start, end, phrase in _phrases(written):
            growing = end == len(written)
            if not (_value_stated(phrase, values) or (growing and phrase in prefixes)):
                return False
        return True


class GroundedNames(_Grounded):
    """Bans a capitalised word inside a sentence unless the evidence capitalises that word too.

    A sentence's first word, "I" and words the evidence writes with a capital stay free; a name is
    checked when its first token is written, so a name must begin like one of the evidence's words.
    """

    def _banned(self, answer: str, source: Source, vocab: int) -> torch.Tensor:
        if not answer.strip() or re.search(r"[.!?:\n]\W*$", answer):
            return torch.zeros(vocab, dtype=torch.bool)  # a sentence starts here: its first word is free
        key = (id(source), "names")
        if key not in self._cached:
            starts = {w[:i] for w in source.capitalised for i in range(1, len(w) + 1)} | {"I"}
            banned = torch.zeros(len(self.vocabulary.texts), dtype=torch.bool)
            for token in self.vocabulary.capital_led:
                word = re.match(r"[\w'’]+", self.vocabulary.texts[token][1:])
                banned[token] = bool(word) and word.group(0) not in starts
            self._cached[key] = banned
        return self._cached[key][:vocab]


class EvidenceBias:
    """Adds `bias` to the logits of every token the prompt (the evidence) holds: a soft push to copy the
    evidence's words rather than invent others. It bans nothing, so it goes before the banning processors.
    The end-of-answer token is raised too, so the answer is not made longer (its odds against the words
    the model copies stay as they were); the prompt's other special tokens (chat markers) are not.

    Rows as in `_Grounded`: causal LMs read the prompt of each row (`prompt_length` ids, left padding
    included); seq2seq LMs get `sources[i]` for input i, shared by its `num_beams` beams.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, bias: float, prompt_length: int,
                 sources: Sequence[str] | None = None, num_beams: int = 1) -> None:
        self.tokenizer = tokenizer
        self.bias = bias
        self.prompt_length = prompt_length
        self.num_beams = max(num_beams, 1)
        ends = tokenizer.eos_token_id if isinstance(tokenizer.eos_token_id, list) else [tokenizer.eos_token_id]
        self._ends = [i for i in ends if i is not None]
        self._special = frozenset(tokenizer.all_special_ids)
        self._given = [tokenizer(s, add_special_tokens=False)["input_ids"] for s in sources] if sources is not None else None
        self._masks: dict[tuple[int, ...], torch.Tensor] = {}

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """input_ids (B, T), scores (B, V) -> scores raised by `bias` on the evidence's tokens."""
        for row in range(input_ids.shape[0]):
            ids = self._given[row // self.num_beams] if self._given is not None else input_ids[row, : self.prompt_length].tolist()
            key = tuple(ids)
            if key not in self._masks:
                held = sorted({i for i in [*ids, *self._ends] if (i not in self._special or i in self._ends)
                               and i < scores.shape[1]})
                mask = torch.zeros(scores.shape[1], dtype=scores.dtype)
                mask[held] = self.bias
                self._masks[key] = mask
            scores[row] += self._masks[key].to(scores.device)
        return scores


def grounding_processors(tokenizer: PreTrainedTokenizerBase, numbers: bool, names: bool, prompt_length: int,
                         sources: Sequence[str] | None = None, num_beams: int = 1,
                         evidence_bias: float = 0.0) -> list:
    """The grounded-decoding processors a writer's config asks for (see `_Grounded` for the arguments):
    the evidence bias first when asked for (it only raises scores), then the banning ones."""
    kinds = [kind for kind, wanted in ((GroundedNumbers, numbers), (GroundedNames, names)) if wanted]
    processors: list = [EvidenceBias(tokenizer, evidence_bias, prompt_length, sources, num_beams)] if evidence_bias else []
    return processors + [kind(tokenizer, prompt_length, sources, num_beams) for kind in kinds]
