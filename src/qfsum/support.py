"""Support scorers: how strongly does an evidence segment support an answer sentence?

A support scorer has a `name` and `scores(sentence, segments) -> list[float]`, one score in [0, 1]
per segment; a sentence counts as supported when its best segment scores at least
`grounding.SUPPORT_THRESHOLD` (0.5). Two kinds:

- `lexical` (the default, `grounding.LexicalSupport`): IDF-weighted coverage of the sentence's
  content words and numbers by the segment; no model.
- any Hugging Face sequence-classification NLI or fact-checking model, by hub id or local
  directory (`NLISupport`): premise = the segment, hypothesis = the sentence, score = the
  probability of the model's "entailment" (or "supported") label. A segment longer than the model
  reads is split into windows of whole sentences; its score is the best window's.

>>> scorer = build_support_scorer("lexical")
>>> scorer.scores("The budget is 120,000.", ["The overrun is 120,000 on the budget.", "Tables."])  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from .errors import QfsumError
from .grounding import LexicalSupport, SupportScorer
from .text import sentence_spans

DEFAULT_SUPPORT_SCORER = "lexical"
# Label names (lowercased, '-' and ' ' read as '_') that mean "the premise supports the hypothesis"
# in a 2-label fact-checking model; NLI models name theirs "entailment".
_SUPPORTED_NAMES = ("supported", "supports", "consistent", "correct", "factual", "faithful", "entailed", "true",
                    "yes", "1", "label_1")
_NEGATION = re.compile(r"^(not|non|no|un|in)_?(?=supported|supports|consistent|correct|factual|faithful|entail|true)")


def build_support_scorer(spec: str = DEFAULT_SUPPORT_SCORER) -> SupportScorer:
    """A support scorer from its spec: "lexical", or an NLI / fact-checking model's hub id or directory.

    Raises QfsumError (one line) for an unknown id or path, pickle-only weights, or a model whose
    labels do not say which one means "supported".
    """
    spec = (spec or DEFAULT_SUPPORT_SCORER).strip()
    if spec == "lexical":
        return LexicalSupport()
    return NLISupport.load(spec)


def _normalise(label: str) -> str:
    return re.sub(r"[\s-]+", "_", str(label).strip().lower())


def entailment_index(id2label: dict[Any, str], model: str = "model") -> int:
    """The class index whose probability is the support score.

    A label containing "entail" (and not "not_entailment"), else, for a 2-label model, one named
    like "supported", "consistent" or "1" (not "unsupported" or "inconsistent"). Anything else is a
    QfsumError naming the labels, since guessing would silently score the wrong class.
    """
    labels = {int(i): _normalise(name) for i, name in id2label.items()}
    positive = {i: name for i, name in labels.items() if not _NEGATION.match(name)}
    entail = [i for i, name in positive.items() if "entail" in name]
    if len(entail) == 1:
        return entail[0]
    if len(labels) == 2 and not entail:
        supported = [i for i, name in positive.items() if name in _SUPPORTED_NAMES]
        if len(supported) == 1:
            return supported[0]
    shown = ", ".join(f"{i}: {id2label[k]!r}" for i, k in sorted((int(k), k) for k in id2label))
    raise QfsumError(
        f"support scorer '{model}': cannot tell which label means 'supported' from its config.id2label "
        f"({{{shown}}}); expected one label containing 'entail' (NLI) or, for a 2-label model, "
        "'supported', 'consistent' or '1'"
    )


class NLISupport:
    """Support by an NLI / fact-checking sequence classifier: P(entailment | segment, sentence).

    `model` and `tokenizer` are a loaded `AutoModelForSequenceClassification` and its tokenizer;
    `NLISupport.load(spec)` builds one from a hub id or directory. `max_length` (tokens of a
    premise-hypothesis pair) defaults to what the tokenizer and model allow, at most 512.
    """

    def __init__(self, model: Any, tokenizer: Any, name: str, max_length: int | None = None,
                 batch_size: int = 16) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.label = entailment_index(model.config.id2label, name)
        self.max_length = max_length or _model_max_length(model, tokenizer)
        self.batch_size = batch_size
        self._units: OrderedDict[str, list[tuple[int, int, int]]] = OrderedDict()  # segment -> sentence units

    @classmethod
    def load(cls, spec: str, **kwargs: Any) -> "NLISupport":
        """Load a sequence-classification model by hub id or local directory (safetensors only)."""
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        from .assets import default_device, require_safetensors, resolve

        ref = resolve(spec)  # unknown name / missing path / unreachable hub: one-line QfsumError
        require_safetensors(ref.location)
        try:
            config = AutoConfig.from_pretrained(ref.location)
        except (OSError, ValueError) as err:
            raise QfsumError(f"support scorer '{spec}': cannot read its config: {str(err).splitlines()[0][:300]}") from None
        entailment_index(config.id2label, spec)  # fail on the labels before loading any weights
        try:
            tokenizer = AutoTokenizer.from_pretrained(ref.location)
            model = AutoModelForSequenceClassification.from_pretrained(ref.location, use_safetensors=True)
        except (OSError, ValueError) as err:
            raise QfsumError(f"support scorer '{spec}': cannot load it: {str(err).splitlines()[0][:300]}") from None
        return cls(model.to(default_device()), tokenizer, spec, **kwargs)

    # -- scoring ------------------------------------------------------------------------------
    def scores(self, sentence: str, segments: Sequence[str]) -> list[float]:
        """P(entailment) of `sentence` given each segment (its best window when it is long)."""
        if not segments:
            return []
        if not sentence.strip():
            return [0.0] * len(segments)
        hypothesis = len(self.tokenizer(sentence, add_special_tokens=False)["input_ids"])
        special = self.tokenizer.num_special_tokens_to_add(pair=True)
        budget = max(self.max_length - hypothesis - special, 16)  # premise tokens per window
        pairs: list[tuple[int, str]] = []  # (segment index, premise window)
        for i, segment in enumerate(segments):
            pairs.extend((i, window) for window in self.windows(segment, budget))
        probabilities = self._entailment([p for _, p in pairs], sentence)
        best = [0.0] * len(segments)
        for (i, _), p in zip(pairs, probabilities, strict=True):
            best[i] = max(best[i], p)
        return best

    def windows(self, segment: str, budget: int) -> list[str]:
        """`segment` as premises of at most `budget` tokens: consecutive whole sentences (lines), each
        window after the first starting at the previous one's last sentence, so a claim that spans
        two sentences is read whole at least once. A sentence longer than `budget` is cut into
        pieces of `budget` tokens. Without a fast tokenizer (no offsets), the segment whole
        (the tokenizer then truncates it)."""
        units = self._sentence_units(segment)
        if units is None:
            return [segment]
        pieces: list[tuple[int, int, int]] = []  # (start, end, tokens)
        for start, end, count in units:
            if count <= budget:
                pieces.append((start, end, count))
            else:
                pieces.extend(self._cut(segment, start, end, budget))
        if not pieces:
            return [segment] if segment.strip() else []
        if sum(c for _, _, c in pieces) <= budget:
            return [segment]
        windows, first = [], 0
        while first < len(pieces):
            last, total = first, pieces[first][2]
            while last + 1 < len(pieces) and total + pieces[last + 1][2] <= budget:
                last += 1
                total += pieces[last][2]
            windows.append(segment[pieces[first][0] : pieces[last][1]])
            if last == len(pieces) - 1:
                break
            first = last if last > first else last + 1  # overlap by one sentence, always moving on
        return windows

    def _sentence_units(self, segment: str) -> list[tuple[int, int, int]] | None:
        """(start, end, token count) of each sentence or line of `segment`; cached per segment."""
        if segment in self._units:
            self._units.move_to_end(segment)
            return self._units[segment]
        if not getattr(self.tokenizer, "is_fast", False):
            return None
        offsets = self.tokenizer(segment, add_special_tokens=False, return_offsets_mapping=True,
                                 verbose=False)["offset_mapping"]
        starts = [a for a, b in offsets if b > a]
        units = []
        for line in re.finditer(r"[^\n]+", segment):
            for a, b in sentence_spans(line.group(0), any_case=True):
                a, b = line.start() + a, line.start() + b
                units.append((a, b, sum(a <= s < b for s in starts)))
        self._units[segment] = units
        if len(self._units) > 512:  # one answer's evidence is a handful of segments
            self._units.popitem(last=False)
        return units

    def _cut(self, segment: str, start: int, end: int, budget: int) -> list[tuple[int, int, int]]:
        """An over-long sentence as consecutive pieces of at most `budget` tokens."""
        text = segment[start:end]
        offsets = [(a, b) for a, b in self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                                                     verbose=False)["offset_mapping"] if b > a]
        pieces = []
        for i in range(0, len(offsets), budget):
            chunk = offsets[i : i + budget]
            pieces.append((start + chunk[0][0], start + chunk[-1][1], len(chunk)))
        return pieces

    def _entailment(self, premises: Sequence[str], hypothesis: str) -> list[float]:
        """P(entailment label) for each (premise, hypothesis) pair, in batches."""
        import torch

        device = next(self.model.parameters()).device
        out: list[float] = []
        with torch.no_grad():
            for i in range(0, len(premises), self.batch_size):
                chunk = list(premises[i : i + self.batch_size])
                inputs = self.tokenizer(chunk, [hypothesis] * len(chunk), truncation=True, padding=True,
                                        max_length=self.max_length, return_tensors="pt").to(device)
                logits = self.model(**inputs).logits.float()  # (B, labels)
                out.extend(torch.softmax(logits, dim=-1)[:, self.label].tolist())
        return out


def _model_max_length(model: Any, tokenizer: Any) -> int:
    """Tokens the model reads in one pair: the tokenizer's limit, the model's positions, at most 512."""
    limits = [512]
    if 0 < getattr(tokenizer, "model_max_length", 0) < 100_000:  # unset: a huge sentinel
        limits.append(int(tokenizer.model_max_length))
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions:
        # RoBERTa-style models keep 2 positions for the padding offset
        limits.append(int(positions) - (2 if getattr(model.config, "pad_token_id", None) == 1 else 0))
    return max(min(limits), 32)
