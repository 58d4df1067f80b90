"""Lookahead decoding: greedy decoding sped up by drafts that need no draft model.

Each step feeds, per request, the last chosen token plus up to `max_draft` guessed tokens through
the model in ONE forward pass, and keeps the longest prefix of the guess that greedy decoding
would have produced anyway, plus the model's own next token. The output is therefore the greedy
output, token for token; only the number of forward passes changes. Guesses come from:

1. prompt lookup: the last n tokens (n = `ngram` down to 2) occurred earlier in the prompt or the
   output; guess what followed them there (summaries copy from their passage, so this hits often);
2. an n-gram pool filled Jacobi-style: every verify pass predicts a next token at each draft
   position, accepted or not, and those predictions are kept as continuations of the token they
   followed (a one-iteration Jacobi trajectory, as lookahead decoding collects n-grams, but
   without its separate lookahead branch);
3. a one-token match in the context, the weakest evidence, used last.

Several requests decode together: prompts are left-padded, every row gets its own draft, and
rows accept different numbers of tokens. The KV cache is shared, so it is cropped
(`DynamicCache.crop`) by the rejections common to every row; the rest of a row's rejected
positions stay in the cache as holes masked out by the attention mask, and positions are passed
explicitly so a hole shifts nothing. Finished rows leave the batch.

Written by hand because `transformers`' prompt-lookup decoding handles one request at a time and
has no pool; the verification rule is the same.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import QfsumError
from ..models.kv_cache import cache_kwarg
from .wanted import Wanted, for_positions, unwanted_rows

# A logits processor in the `transformers` convention: (input_ids (1, T), scores (1, V)) -> scores.
Processor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class LookaheadConfig:
    """Knobs of lookahead decoding; none of them changes the output, only the speed."""

    max_draft: int = 12  # tokens guessed per step; 0 = plain greedy, one forward pass per token
    ngram: int = 3  # longest context match tried by prompt lookup (then shorter, down to 2)
    pool_size: int = 8  # tokens kept per entry of the Jacobi n-gram pool; 0 = no pool

    def __post_init__(self) -> None:
        if self.max_draft < 0 or self.ngram < 2 or self.pool_size < 0:
            raise QfsumError("lookahead needs max_draft >= 0, ngram >= 2 and pool_size >= 0")


@dataclass
class DecodeStats:
    """What a decode did: forward passes, tokens emitted, draft tokens proposed and accepted."""

    steps: int = 0
    tokens: int = 0
    drafted: int = 0
    accepted: int = 0
    prefill_seconds: float = 0.0  # reading the prompts: the same work for every decoding method

    @property
    def acceptance(self) -> float:
        """Share of drafted tokens that were kept."""
        return self.accepted / self.drafted if self.drafted else 0.0


class Drafter:
    """Guesses the continuation of one request from its own tokens and its n-gram pool."""

    def __init__(self, tokens: Sequence[int], config: LookaheadConfig) -> None:
        self.config = config
        self.tokens: list[int] = []
        self.index: dict[tuple[int, ...], int] = {}  # n-gram -> where the token after its latest occurrence is
        self.pool: dict[int, list[int]] = {}  # token -> continuation predicted after it (Jacobi)
        self.extend(tokens)

    def extend(self, new: Sequence[int]) -> None:
        """Append tokens to the context, indexing the n-grams that now have a next token."""
        for token in new:
            end = len(self.tokens)  # the new token's position: it follows the n-grams ending just before it
            for n in range(1, self.config.ngram + 1):
                if end >= n:
                    self.index[tuple(self.tokens[end - n : end])] = end
            self.tokens.append(token)

    def remember(self, fed: Sequence[int], predicted: Sequence[int]) -> None:
        """Keep the verify pass's predictions: `predicted[i]` followed `fed[i]` (Jacobi n-grams)."""
        if not self.config.pool_size:
            return
        for i, token in enumerate(fed):
            continuation = list(predicted[i : i + self.config.pool_size])
            if len(continuation) > 1:
                self.pool[token] = continuation

    def draft(self, limit: int) -> list[int]:
        """Up to `limit` guessed next tokens (possibly none)."""
        if limit <= 0 or not self.tokens:
            return []
        for n in range(min(self.config.ngram, len(self.tokens)), 1, -1):
            start = self.index.get(tuple(self.tokens[-n:]))
            if start is not None:
                return self.tokens[start : start + limit]
        last = self.tokens[-1]
        if last in self.pool:
            return self.pool[last][:limit]
        start = self.index.get((last,))
        return self.tokens[start : start + limit] if start is not None else []


class AnswerNoRepeatNGram:
    """No n-gram twice within the answer, while the prompt's n-grams stay allowed.

    `transformers`' `NoRepeatNGramLogitsProcessor` looks at every id it is given, which for a causal LM
    includes the prompt: the answer could then never copy `n` tokens of its evidence in a row, which is
    what a faithful summary does most. This one sees only the ids after `prompt_length`.
    """

    def __init__(self, n: int, prompt_length: int) -> None:
        from transformers import NoRepeatNGramLogitsProcessor

        self.ban = NoRepeatNGramLogitsProcessor(n)
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return self.ban(input_ids[:, self.prompt_length :], scores)


def writer_processors(no_repeat_ngram_size: int = 0, repetition_penalty: float = 1.0,
                      prompt_length: int | None = None) -> list[Processor]:
    """Logits processors for these two knobs (none when off), as `generate()` applies them.

    With `prompt_length` (a causal LM's prompt, padding included), the n-gram ban covers the answer only.
    """
    from transformers import NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor

    processors: list[Processor] = []
    if repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(repetition_penalty))
    if no_repeat_ngram_size > 0:
        processors.append(NoRepeatNGramLogitsProcessor(no_repeat_ngram_size) if prompt_length is None
                          else AnswerNoRepeatNGram(no_repeat_ngram_size, prompt_length))
    return processors


# Processors for every row, or a function of a row's prompt length giving that row's processors.
RowProcessors = Sequence[Processor] | Callable[[int], Sequence[Processor]]


@dataclass
class _Row:
    """One request being decoded."""

    drafter: Drafter
    processors: Sequence[Processor] = ()
    out: list[int] = field(default_factory=list)
    pending: int = -1  # the chosen token not yet fed to the model
    done: bool = False


def _eos_ids(model: Any, eos_token_id: int | Sequence[int] | None) -> set[int]:
    if eos_token_id is None:
        eos_token_id = getattr(model.generation_config, "eos_token_id", None)
    if eos_token_id is None:
        return set()
    return {int(eos_token_id)} if isinstance(eos_token_id, int) else {int(t) for t in eos_token_id}


def _crop(cache: Any, count: int) -> None:
    """Drop the last `count` positions of every layer of the cache."""
    if count <= 0:
        return
    parameter = next(iter(inspect.signature(cache.crop).parameters))
    if parameter == "max_length":  # older transformers: crop to an absolute length
        cache.crop(cache.get_seq_length() - count)
    else:
        cache.crop(-count)


class _Forward:
    """The model's forward pass, asking only for the logits that are used (prefill needs one row)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft model hides it
        self.keeps_logits = "logits_to_keep" in inspect.signature(inner.forward).parameters

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any, keep: int) -> torch.Tensor:
        extra = {"logits_to_keep": keep} if self.keeps_logits else {}
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, **cache_kwarg(cache),
                         use_cache=True, **extra)
        return out.logits[:, -keep:, :].float()  # (B, keep, V)


def _choose(logits: torch.Tensor, context: list[int], draft: list[int], processors: Sequence[Processor]) -> list[int]:
    """Greedy choices after each of `len(draft) + 1` fed positions: logits (k+1, V)."""
    if not processors:
        return logits.argmax(-1).tolist()
    chosen = []
    for i in range(logits.shape[0]):
        ids = torch.tensor([context + draft[:i]], device=logits.device)  # what greedy would have seen here
        scores = logits[i : i + 1]
        for process in processors:
            scores = process(ids, scores)
        chosen.append(int(scores.argmax(-1)))
    return chosen


@torch.inference_mode()
def lookahead_generate(
    model: Any,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    config: LookaheadConfig | None = None,
    pad_token_id: int | None = None,
    eos_token_id: int | Sequence[int] | None = None,
    processors: RowProcessors = (),
    stats: DecodeStats | None = None,
    on_tokens: Callable[[int, list[int]], None] | None = None,
    wanted: Wanted | None = None,
) -> list[list[int]]:
    """Greedy continuations of `prompts` (token ids, no padding), decoded together with lookahead.

    Returns the new tokens of each prompt, up to and including the first EOS, exactly as greedy
    decoding (`model.generate(do_sample=False)` with the same `processors`) writes them. `model` is
    any causal LM of `transformers` that takes `position_ids` and a `DynamicCache`. `processors` is a list
    applied to every row, or a function of a row's prompt length (e.g. for `AnswerNoRepeatNGram`).
    `on_tokens(row, tokens)`, if given, gets each row's tokens as they are accepted (a chunk per step).
    A row for which `wanted(row)` says False ends after the step it is found (`writers.wanted`).
    """
    from transformers import DynamicCache

    config = config or LookaheadConfig()
    if not prompts or any(len(p) == 0 for p in prompts):
        raise QfsumError("every prompt needs at least one token")
    if max_new_tokens < 1:
        return [[] for _ in prompts]
    stats = stats if stats is not None else DecodeStats()
    eos = _eos_ids(model, eos_token_id)
    pad = pad_token_id if pad_token_id is not None else (min(eos) if eos else 0)
    device = model.device
    forward = _Forward(model)

    # Prefill, left-padded: (B, T).
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    started = time.perf_counter()
    logits = forward(ids, mask, positions, cache, keep=1)  # (B, 1, V)
    stats.prefill_seconds += time.perf_counter() - started
    stats.steps += 1
    rows = [_Row(Drafter(p, config), processors(len(p)) if callable(processors) else processors) for p in prompts]
    for b, row in enumerate(rows):
        row.pending = _choose(logits[b], list(prompts[b]), [], row.processors)[0]
        _emit(row, [row.pending], eos, max_new_tokens)
        if on_tokens is not None:
            on_tokens(b, [row.pending])
    stats.tokens += len(rows)

    live = [b for b, row in enumerate(rows) if not row.done]  # batch row -> request
    if live and len(live) < len(rows):
        cache.batch_select_indices(torch.tensor(live, dtype=torch.long, device=device))
        mask = mask[live]
    while live:
        active = [rows[b] for b in live]
        drafts = [row.drafter.draft(min(config.max_draft, max_new_tokens - len(row.out) - 1)) for row in active]
        k = max(len(d) for d in drafts)
        # Fed block: the pending token then the (padded) draft, (B, k+1).
        fed = [[row.pending] + d + [pad] * (k - len(d)) for row, d in zip(active, drafts)]
        block = torch.tensor(fed, device=device)
        start = mask.sum(-1, keepdim=True)  # (B, 1) logical position of the pending token
        positions = start + torch.arange(k + 1, device=device)
        mask = torch.cat([mask, torch.ones_like(block)], dim=-1)
        logits = forward(block, mask, positions, cache, keep=k + 1)  # (B, k+1, V)
        stats.steps += 1

        kept_per_row = []
        for i, (row, draft) in enumerate(zip(active, drafts)):
            chosen = _choose(logits[i, : len(draft) + 1], row.drafter.tokens, draft, row.processors)
            accepted = 0
            while accepted < len(draft) and draft[accepted] == chosen[accepted]:
                accepted += 1
            row.drafter.remember(fed[i][: len(draft) + 1], chosen)
            stats.drafted += len(draft)
            stats.accepted += accepted
            new = chosen[: accepted + 1]  # the accepted draft tokens equal these, plus the model's own next one
            row.pending = new[-1]
            kept = _emit(row, new, eos, max_new_tokens)
            stats.tokens += kept
            if on_tokens is not None:
                on_tokens(live[i], new[:kept])
            kept_per_row.append(accepted + 1)  # cache positions now valid: the old pending + accepted draft

        # Roll back what no row kept; mask the rest of each row's rejections (holes).
        common = k + 1 - max(kept_per_row)
        _crop(cache, common)
        mask = mask[:, : mask.shape[1] - common]
        for i, kept in enumerate(kept_per_row):
            mask[i, mask.shape[1] - (k + 1 - common) + kept :] = 0

        for b in unwanted_rows(for_positions(wanted, live), len(live)):
            rows[live[b]].done = True
        keep = [i for i, row in enumerate(active) if not row.done]
        if len(keep) < len(active):
            if keep:
                index = torch.tensor(keep, dtype=torch.long, device=device)
                cache.batch_select_indices(index)
                mask = mask[index]
            live = [live[i] for i in keep]
    return [row.out for row in rows]


def _emit(row: _Row, tokens: list[int], eos: set[int], max_new_tokens: int) -> int:
    """Append chosen tokens to a row, stopping at EOS or the length limit; returns how many were kept."""
    kept = 0
    for token in tokens:
        row.out.append(token)
        kept += 1
        if token in eos or len(row.out) >= max_new_tokens:
            row.done = True
            break
    row.drafter.extend(tokens[:kept])
    return kept
