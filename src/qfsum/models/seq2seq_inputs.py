"""Encoder inputs of the seq2seq writers and trainer: a query and a document as padded tensors.

An input builder turns `(query, document)` into token-id lists (`encode`) and a list of those into
a padded batch of tensors (`collate`). The trainer and the writers share the builders, so a model is
trained on exactly the inputs it later reads:

- `TruncatedInputs`: `query <delimiter> document`, cut at the model's input limit (the truncating
  BART baseline; LED the same with global attention on the query; long-input models such as LOCOST);
- `qfsum.models.segenc.WindowInputs`: SegEnc's windows, the query prepended to each.

The delimiter is the tokenizer's own pair template (BART: `<s> q </s></s> d </s>`, T5:
`q </s> d </s>`), found by encoding a sample pair, so every tokenizer gets its native layout.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TYPE_CHECKING

import torch

from ..errors import QfsumError
from ..document import Evidence

if TYPE_CHECKING:  # annotations only: transformers loads when a model does
    from transformers import PreTrainedTokenizerBase

MIN_DOCUMENT_SHARE = 4  # the query may take at most 1/4 of an encoder input: the document needs the rest


class InputBuilder(Protocol):
    """Turns a (query, document) pair into model inputs."""

    def encode(self, query: str, document: str) -> dict[str, Any]:
        """Token-id lists (not padded) of one pair."""
        ...

    def collate(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """A padded batch (`input_ids`, `attention_mask`, ...) of `encode` outputs."""
        ...


@dataclass(frozen=True)
class PairTemplate:
    """Where a tokenizer puts its special tokens around a pair: prefix + A + middle + B + suffix."""

    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]

    @property
    def overhead(self) -> int:
        """Special tokens added to a pair."""
        return len(self.prefix) + len(self.middle) + len(self.suffix)

    def join(self, first: Sequence[int], second: Sequence[int]) -> list[int]:
        return [*self.prefix, *first, *self.middle, *second, *self.suffix]


def pair_template(tokenizer: PreTrainedTokenizerBase) -> PairTemplate:
    """The tokenizer's pair layout, read off the encoding of a sample pair.

    A tokenizer whose pair template has no separator (most decoder-only ones) gets its separator or
    end-of-sequence token between query and document: the encoder must see where the query ends.
    """
    first = tokenizer("question", add_special_tokens=False)["input_ids"]
    second = tokenizer("document", add_special_tokens=False)["input_ids"]
    full = tokenizer("question", "document")["input_ids"]
    a = _find(full, first, 0)
    b = _find(full, second, a + len(first)) if a >= 0 else -1
    if a < 0 or b < 0:
        raise QfsumError(f"cannot find how {type(tokenizer).__name__} joins a query and a document")
    middle = tuple(full[a + len(first) : b])
    if not middle:
        separator = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
        if separator is None:
            raise QfsumError(f"{type(tokenizer).__name__} has no separator or end token to delimit the query")
        middle = (separator,)
    return PairTemplate(tuple(full[:a]), middle, tuple(full[b + len(second) :]))


def _find(haystack: Sequence[int], needle: Sequence[int], start: int) -> int:
    for i in range(start, len(haystack) - len(needle) + 1):
        if list(haystack[i : i + len(needle)]) == list(needle):
            return i
    return -1


def query_ids(tokenizer: PreTrainedTokenizerBase, query: str, input_length: int) -> list[int]:
    """The query's token ids; a query longer than a quarter of an encoder input is an error."""
    ids = tokenizer(query, add_special_tokens=False)["input_ids"]
    if len(ids) > input_length // MIN_DOCUMENT_SHARE:
        raise QfsumError(
            f"the query is too long: {len(ids)} tokens, at most {input_length // MIN_DOCUMENT_SHARE} "
            f"of a {input_length}-token input"
        )
    return ids


class DocumentTokens:
    """Token ids of documents without special tokens, the last few cached: a document's queries
    arrive together, and tokenizing a 16K-token document for each would dominate encoding."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, cache_size: int = 8) -> None:
        self._ids = functools.lru_cache(maxsize=cache_size)(
            lambda text: tuple(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
        )

    def __call__(self, text: str) -> tuple[int, ...]:
        return self._ids(text)


def document_text(evidence: Sequence[Evidence]) -> str:
    """The whole document as an end-to-end writer reads it: every segment, in document order."""
    return "\n".join(e.segment.text for e in sorted(evidence, key=lambda e: e.segment.start))


def pad(rows: Sequence[Sequence[int]], value: int, width: int | None = None) -> torch.Tensor:
    """Right-pad lists of ids to one width (default: the longest) as a (B, width) long tensor."""
    width = max(len(r) for r in rows) if width is None else width
    return torch.tensor([list(r) + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def input_limit(model: Any, tokenizer: PreTrainedTokenizerBase) -> int:
    """Tokens the model's encoder reads at most: its position table, else the tokenizer's limit."""
    config = model.config
    for name in ("max_encoder_position_embeddings", "max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 10**8:  # tokenizers without a limit report ~1e30
        return limit
    raise QfsumError(f"cannot tell the input limit of {type(model).__name__}; give it explicitly")


class TruncatedInputs:
    """`query <delimiter> document`, the document cut so the whole input fits `max_length` tokens.

    With `global_query`, a `global_attention_mask` marks the query and the tokens before it, as LED
    needs: without global attention on the query, LED's local windows never see it from afar.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int, global_query: bool = False) -> None:
        self.tokenizer, self.max_length, self.global_query = tokenizer, max_length, global_query
        self.template = pair_template(tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.documents = DocumentTokens(tokenizer)

    def encode(self, query: str, document: str) -> dict[str, Any]:
        question = query_ids(self.tokenizer, query, self.max_length)
        room = self.max_length - len(question) - self.template.overhead
        ids = self.template.join(question, self.documents(document)[:room])
        features: dict[str, Any] = {"input_ids": ids}
        if self.global_query:
            # prefix + query + middle: the query and the special tokens that frame it
            marked = len(self.template.prefix) + len(question) + len(self.template.middle)
            features["global_attention_mask"] = [1] * marked + [0] * (len(ids) - marked)
        return features

    def collate(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        rows = [f["input_ids"] for f in features]
        batch = {"input_ids": pad(rows, self.pad_id), "attention_mask": pad([[1] * len(r) for r in rows], 0)}
        if self.global_query:
            batch["global_attention_mask"] = pad([f["global_attention_mask"] for f in features], 0)
        return batch
