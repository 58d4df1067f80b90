"""Is an answer grounded in its evidence? Numbers, names and sentence support, offline.

Three checks that need no model:
- `numbers(text)`: every number a text states, normalised so that "1.3 million", "1,300,000" and
  "1300000" are one value, "2.5%" and "2.5 percent" another, "fifty" is 50 and "14 March" a date;
- `names(text)`: capitalised terms (people, places, products, acronyms), sentence-initial words only
  when the text also capitalises them elsewhere;
- `LexicalSupport`: how much of a sentence one evidence segment covers: the IDF-weighted share of the
  sentence's content words and numbers found in the segment (IDF over the evidence segments).

A sentence that cites no segment covering most of it, or states a number no segment holds, is the
kind of error ROUGE cannot see.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .text import sentence_spans

SUPPORT_THRESHOLD = 0.5  # a sentence is supported when one segment covers this share of its IDF weight
_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * (i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
_SCALES = {"hundred": 100, "thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}
_MONTHS = {m[:3]: i + 1 for i, m in enumerate(  # by their first three letters
    "january february march april may june july august september october november december".split())}
_MONTH = r"(?P<{}>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
_ORDINALS = {w: i + 1 for i, w in enumerate(
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth fourteenth "
    "fifteenth sixteenth seventeenth eighteenth nineteenth twentieth".split())} | {"thirtieth": 30}
# a day in digits ("14", "14th") or in words ("fifth", "twenty-fifth", the transcripts' "twenty - fifth")
_DAY = (r"(?:(?P<{0}>[0-3]?\d)(?:st|nd|rd|th)?"
        rf"|(?P<{{0}}_words>(?:(?:twenty|thirty)\s*-?\s*)?(?:{'|'.join(sorted(_ORDINALS, key=len, reverse=True))})))")
# "14 March", "14th of March", "the fifth of March", "March 14th", "March the fifth": the groups of the
# second form carry a 2
_DATE = re.compile(rf"\b(?:{_DAY.format('day')}(?:\s+of)?\s+{_MONTH.format('month')}"
                   rf"|{_MONTH.format('month2')}\s+(?:the\s+)?{_DAY.format('day2')})\b", re.I)
_NUMERAL = re.compile(
    r"(?<![\w.,])(?P<value>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?P<percent>\s?%|\s+per\s?cent\b)?"
    r"(?:\s*(?P<scale>hundred|thousand|million|billion|trillion|bn|k)\b)?",
    re.I,
)
NUMBER_WORDS = frozenset([*_UNITS, *_TENS, *_SCALES, "dozen"])
_NUMBER_WORDS = "|".join(sorted(NUMBER_WORDS, key=len, reverse=True))
# A lone "one" is a pronoun or determiner ("no one", "one of them", "a long one") far more often than
# a figure: it is not counted as a number, nor held to the evidence; "one million", "one percent" are.
PRONOUN_ONE = "one"
_WORDED = re.compile(rf"\b(?:{_NUMBER_WORDS})(?:[\s-]+(?:and\s+)?(?:{_NUMBER_WORDS}))*\b(?P<percent>\s?%|\s+per\s?cent\b)?",
                     re.I)  # "fifty%" as "50%": grounded decoding reads "percent" as "%" (writers.grounded.normalise)
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*|\d+(?:[.,]\d+)*")
_CAPITALISED = re.compile(r"\b[A-Z][A-Za-z0-9'’&-]*[A-Za-z0-9]\b|\b[A-Z]\b")
_NOT_NAMES = frozenset("I I'm I've I'd I'll OK Okay Mr Mrs Ms Dr Q A".split())
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having
    he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
    nor not now of off on once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours yourself yourselves
    said says say also discussed discuss mentioned meeting team group will would going go went get got""".split()
)


def _format(value: float) -> str:
    """A canonical text for a value: integers without decimals, others to 6 significant digits."""
    return str(int(round(value))) if abs(value - round(value)) < 1e-9 else f"{value:.6g}"


def _worded_value(words: str) -> float | None:
    """'twenty-five' -> 25, 'two hundred and ten' -> 210, 'three million' -> 3e6 (None if not a number)."""
    total, current, seen = 0.0, 0.0, False
    for word in re.split(r"[\s-]+", words.lower()):
        if word == "and":
            continue
        seen = True
        if word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "dozen":
            current = (current or 1) * 12
        elif word == "hundred":
            current = (current or 1) * 100
        elif word in _SCALES:
            total += (current or 1) * _SCALES[word]
            current = 0.0
        else:
            return None
    return total + current if seen else None


def _ordinal_value(words: str) -> int:
    """'fifth' -> 5, 'twenty-fifth' and 'twenty - fifth' -> 25 (the words match `_DAY`'s ordinal form)."""
    *tens, last = re.split(r"[\s-]+", words.lower())
    return sum(_TENS[t] for t in tens) + _ORDINALS[last]


def numbers(text: str) -> list[str]:
    """Every number `text` states, canonical: '1300000', '2.5%', 'date:03-14' (in order, with repeats)."""
    found: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []
    for match in _DATE.finditer(text):
        month_word = match.group("month") or match.group("month2")
        digits = match.group("day") or match.group("day2")
        words = match.group("day_words") or match.group("day2_words")
        if words and month_word.islower():  # "we may first check", "march second": a verb, not a month
            continue
        day = int(digits) if digits else _ordinal_value(words)
        month = _MONTHS[month_word.lower()[:3]]
        if 1 <= day <= 31:
            found.append((match.start(), f"date:{month:02d}-{day:02d}"))
            taken.append(match.span())

    def free(span: tuple[int, int]) -> bool:
        return all(span[1] <= a or span[0] >= b for a, b in taken)

    for match in _NUMERAL.finditer(text):
        if not free(match.span()):
            continue
        value = float(match.group("value").replace(",", ""))
        scale = (match.group("scale") or "").lower()
        value *= {"bn": 10**9, "k": 10**3}.get(scale, _SCALES.get(scale, 1))
        found.append((match.start(), _format(value) + ("%" if match.group("percent") else "")))
        taken.append(match.span())  # "1.3 million": the scale word is not a number of its own
    rest = text
    for a, b in taken:  # blank what is read already, so "3 million and two million" reads both
        rest = rest[:a] + " " * (b - a) + rest[b:]
    for match in _WORDED.finditer(rest):
        if match.group(0).lower() == PRONOUN_ONE:
            continue
        value = _worded_value(match.group(0).removesuffix(match.group("percent") or ""))
        if value is not None:
            found.append((match.start(), _format(value) + ("%" if match.group("percent") else "")))
    return [value for _, value in sorted(found)]


def names(text: str) -> list[str]:
    """Capitalised terms of `text`, lowercased, in order; a sentence's first word only if `text`
    also capitalises it where no sentence starts."""
    starts = {a for a, _ in sentence_spans(text, any_case=True)}
    terms = [(m.start(), m.group(0)) for m in _CAPITALISED.finditer(text) if m.group(0) not in _NOT_NAMES]
    inside = {term.lower() for start, term in terms if start not in starts}
    return [term.lower() for start, term in terms if start not in starts or term.lower() in inside]


def content_words(text: str) -> list[str]:
    """Lowercased words and numerals of `text` without stop words: what support is measured on."""
    return [w for w in (m.group(0).lower().strip("'’-") for m in _WORD.finditer(text)) if w and w not in STOPWORDS]


def precision(claimed: Sequence[str], source: str, extract: Callable[[str], list[str]]) -> float | None:
    """The share of `claimed` items (numbers or names) that `extract(source)` also finds; None if none claimed."""
    if not claimed:
        return None
    present = set(extract(source))
    return sum(item in present for item in claimed) / len(claimed)


@dataclass(frozen=True)
class SentenceSupport:
    """One answer sentence: its offsets in the answer, the evidence it cites, and how well they support it."""

    text: str
    start: int
    end: int
    citations: list[int]  # indices into the answer's evidence, best first
    support: float  # 0..1, the support scorer's score of the best cited segment
    quote: tuple[int, int] | None = None  # the sentence of the first cited segment that supports it best (offsets in it)


class LexicalSupport:
    """Support of a sentence by a segment: the IDF-weighted share of the sentence's content words
    that the segment holds (IDF over the segments given, so words every segment has count little),
    times the share of the sentence's numbers the segment states, halved when any is missing: a figure
    the segment does not give cannot be supported by it (the score stays under the 0.5 threshold),
    however many other words match."""

    name = "lexical"

    def scores(self, sentence: str, segments: Sequence[str]) -> list[float]:
        """One score in [0, 1] per segment."""
        words, figures = set(content_words(sentence)), set(numbers(sentence))
        if not (words or figures) or not segments:
            return [0.0] * len(segments)
        bags = [set(content_words(s)) for s in segments]
        frequency = Counter(w for bag in bags for w in bag & words)
        idf = {w: math.log((1 + len(bags)) / (1 + frequency[w])) + 1 for w in words}
        total = sum(idf.values())
        scores = []
        for bag, segment in zip(bags, segments, strict=True):
            coverage = sum(idf[w] for w in words & bag) / total if total else 1.0
            if figures:
                stated = len(figures & set(numbers(segment))) / len(figures)
                coverage *= stated if stated == 1 else stated / 2
            scores.append(coverage)
        return scores


def cite(answer: str, evidence: Sequence[str], scorer: "SupportScorer | None" = None,
         threshold: float = SUPPORT_THRESHOLD) -> list[SentenceSupport]:
    """Split `answer` into sentences and cite, for each, the evidence segments that score at least
    `threshold` (the best one always, so a reader sees where the sentence comes closest), and quote the
    sentence of the best segment that supports it most: what a reader should check first."""
    scorer = scorer or LexicalSupport()
    cited = []
    for start, end in sentence_spans(answer, any_case=True):
        sentence = answer[start:end]
        scores = scorer.scores(sentence, evidence)
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        citations = [i for i in order if scores[i] >= threshold] or order[:1]
        quote = best_quote(sentence, evidence[order[0]], scorer) if order else None
        cited.append(SentenceSupport(sentence, start, end, citations, round(scores[order[0]], 4) if order else 0.0, quote))
    return cited


def best_quote(sentence: str, segment: str, scorer: "SupportScorer") -> tuple[int, int] | None:
    """(start, end) in `segment` of its sentence that supports `sentence` most (None if none shares a word)."""
    spans = list(sentence_spans(segment, any_case=True))
    if not spans:
        return None
    scores = scorer.scores(sentence, [segment[a:b] for a, b in spans])
    best = max(range(len(spans)), key=lambda i: scores[i])
    return spans[best] if scores[best] > 0 else None


class SupportScorer(Protocol):
    """What `cite` and the faithfulness metrics need of a support scorer (`LexicalSupport`, or the
    NLI scorers of `qfsum.support`)."""

    name: str

    def scores(self, sentence: str, segments: Sequence[str]) -> list[float]:
        """One score in [0, 1] per segment: how strongly it supports `sentence`."""
        ...
