"""Extractive writer: the best segments under a word budget, in document order, filler left out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..budget import WordCounter, select_under_budget
from ..document import Draft, Evidence, Segment
from ..grounding import content_words
from .lengths import Words, per_item

if TYPE_CHECKING:
    from .base import WriterConfig
    from .streaming import TextCallback
    from .wanted import Wanted

# A segment needs this many distinct content words to be shown. On QMSum val, the turns the hybrid
# scorer ranks high with fewer are backchannels and fragments ("Yeah .", "SRI .", "Huh ? A cat .",
# "Was there any conclusion about that ?"); two already keep short factual turns ("Twelve fifty .").
MIN_CONTENT_WORDS = 2

# Backchannels, hesitations and contractions of speech. `content_words` keeps them (they are not
# stop words of written text), but a turn made only of them answers nothing.
FILLER_WORDS = frozenset(
    """yeah yes yep yup yea no nope nah okay ok alright right sure um umm uh uhm er erm ah oh ooh hmm hm mm
    mm-hmm mhm uh-huh huh wow cool whoa hey hi hello bye thanks gonna wanna kinda sorta like well anyway
    i'm i've i'd i'll it's that's there's here's what's let's you're we're they're he's she's don't doesn't
    didn't can't won't isn't aren't wasn't weren't haven't hasn't wouldn't couldn't shouldn't think know mean
    guess""".split()
)


def informative_words(segment: Segment) -> set[str]:
    """The distinct content words of a segment, without its speaker label and without filler words."""
    text = segment.text
    if segment.speaker and text.startswith(f"{segment.speaker}:"):
        text = text[len(segment.speaker) + 1 :]  # "Industrial Designer: Yeah ." is not two content words
    # a lone letter is a transcript's fragment ("That 's", "The d What ?"); a lone digit is a number
    return {w for w in content_words(text) if w not in FILLER_WORDS and (len(w) > 1 or w.isdigit())}


class ExtractiveWriter:
    """Shows the most relevant segments verbatim, at most `budget` words, in document order.

    Segments with fewer than `min_content_words` informative words (see `informative_words`) are
    skipped, so a meeting's "Wow ." does not take the place of a turn with content; 0 keeps every
    segment. If every segment is filler, the ranking is used as it is: the answer is never empty.
    """

    def __init__(self, budget: int = 100, min_content_words: int = MIN_CONTENT_WORDS) -> None:
        self.budget = budget
        self.min_content_words = min_content_words
        self.counter = WordCounter()

    def write_batch(self, queries: Sequence[str], ranked: Sequence[Sequence[Evidence]], words: Words = None,
                    on_text: "TextCallback | None" = None, wanted: "Wanted | None" = None) -> list[Draft]:
        """One draft per query: its best segments under `words` words (one for all or one per query; None:
        the writer's budget). Nothing is decoded, so `on_text` and `wanted` are never called."""
        budgets = per_item(words, len(ranked)) or [None] * len(ranked)
        drafts = []
        for items, budget in zip(ranked, budgets, strict=True):
            chosen = select_under_budget(self._without_filler(items), budget or self.budget, self.counter)
            drafts.append(Draft("\n".join(e.segment.text for e in chosen), chosen))
        return drafts

    def _without_filler(self, items: Sequence[Evidence]) -> Sequence[Evidence]:
        if self.min_content_words <= 0:
            return items
        kept = [e for e in items if len(informative_words(e.segment)) >= self.min_content_words]
        return kept or items


def build_extractive_writer(config: "WriterConfig") -> ExtractiveWriter:
    """The registry's factory: `budget` is in summary words (default 100); segments with fewer than
    `min_content_words` informative words (default 2; 0 = keep all) are skipped."""
    minimum = MIN_CONTENT_WORDS if config.min_content_words is None else config.min_content_words
    return ExtractiveWriter(config.summary_words or 100, minimum)
