"""Generative writer: any Hugging Face causal or seq2seq LM, prompted with the query and evidence.

The evidence is chosen under an input budget (1024 tokens by default) that covers the whole
prompt, instructions and query included; the prompt is re-measured after it is built, so the
budget holds exactly.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from ..assets import load_generator
from ..errors import QfsumError
from ..budget import TokenizerCounter, select_under_budget
from .base import WriterConfig
from .grounded import grounding_processors
from .lengths import Words, answer_tokens, groups, per_item
from .prompt import prompt_ids
from .streaming import BatchStreamer, TextCallback
from .wanted import Wanted, for_positions, stopping_criteria, unwanted_rows
from ..document import Draft, Evidence
from ..text import complete_sentences

log = logging.getLogger("qfsum.writers")


def load_model(config: WriterConfig) -> tuple[Any, Any, str]:
    """(model, tokenizer, the runtime that decodes) of a generative writer. A fast runtime decodes a
    converted copy of the model (`writers.fast_runtime`; no torch weights). `auto` takes ONNX Runtime
    GenAI in float32 where it is installed and can decode this writer (greedy; a causal LM its builder
    converts), with torch float32's answers token for token (tests/test_ortgenai_runtime.py), and torch
    otherwise: saying why, unless the package is simply not installed."""
    runtime = config.runtime
    if runtime == "auto":
        runtime = "torch"
        if config.num_beams == 1 and config.decoding == "greedy" and importlib.util.find_spec("onnxruntime_genai"):
            from .ortgenai_runtime import load_for_writer as load_ortgenai_writer

            try:
                model, tokenizer = load_ortgenai_writer(replace(config, runtime="onnxruntime-genai"))
                model.generate([tokenizer.eos_token_id or 0], 1)  # a kernel this model's shapes lack fails now, not per request
                return model, tokenizer, "onnxruntime-genai"
            except QfsumError as err:
                log.warning("decoding with torch instead: %s", err)
    if runtime == "torch":
        return (*load_generator(config.model, config.dtype), "torch")
    if runtime == "ctranslate2":
        from .ct2_runtime import load_for_writer
    else:
        from .ortgenai_runtime import load_for_writer
    return (*load_for_writer(config), runtime)


class GenerativeWriter:
    """Writes the summary with a language model from the evidence that fits its input budget."""

    def __init__(self, config: WriterConfig) -> None:
        self.config = config
        self.model, self.tokenizer, self.runtime = load_model(config)
        self.is_seq2seq = bool(self.model.config.is_encoder_decoder)
        self.budget = config.input_tokens or 1024
        self.counter = TokenizerCounter(self.tokenizer)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._overhead = len(self._prompt_ids("", "x")) - 1  # template tokens besides evidence and query
        if config.decoding not in ("greedy", "lookahead") or (config.decoding == "lookahead" and config.num_beams > 1):
            raise QfsumError(f"decoding must be greedy or lookahead (lookahead needs num_beams 1), got '{config.decoding}'")

    # -- prompt ---------------------------------------------------------------------------
    def _prompt_ids(self, evidence: str, query: str) -> list[int]:
        return prompt_ids(self.tokenizer, query, evidence, seq2seq=self.is_seq2seq)  # the one prompt training uses too

    def prompt(self, query: str, ranked: Sequence[Evidence]) -> tuple[list[int], list[Evidence]]:
        """The prompt token ids for a query and the evidence (document order) that fits the budget."""
        query_tokens = len(self.tokenizer(query, add_special_tokens=False)["input_ids"])
        room = self.budget - self._overhead - query_tokens
        if room < 16:
            raise QfsumError(f"the query is too long: {query_tokens} tokens leave no room in the {self.budget}-token budget")
        while room > 0:
            chosen = select_under_budget(ranked, room, self.counter, cut_last=True)
            ids = self._prompt_ids("\n".join(e.segment.text for e in chosen), query)
            excess = len(ids) - self.budget
            if excess <= 0:
                return ids, chosen
            room -= excess  # tokens merged differently at the joins: select again, a little tighter
        raise QfsumError(f"no evidence fits the {self.budget}-token budget")

    # -- generation -----------------------------------------------------------------------
    @torch.inference_mode()
    def write_batch(self, queries: Sequence[str], ranked: Sequence[Sequence[Evidence]], words: Words = None,
                    on_text: TextCallback | None = None, wanted: Wanted | None = None) -> list[Draft]:
        """One draft per query. `words` sets the answers' length (one for all or one per query, None: the
        config's); `on_text(i, text)` gets answer i's new text while it is decoded (greedy or lookahead);
        answer i stops being decoded once `wanted(i)` says False (`writers.wanted`)."""
        prompts = [self.prompt(q, r) for q, r in zip(queries, ranked, strict=True)]
        lengths = per_item(words, len(prompts)) or [None] * len(prompts)
        limits = [answer_tokens(self.config, length) for length in lengths]
        drafts: list[Draft | None] = [None] * len(prompts)
        for chunk in groups(limits, self.config.batch_size):  # one generate() per length and batch
            chunk_wanted = for_positions(wanted, chunk)
            if len(unwanted_rows(chunk_wanted, len(chunk))) == len(chunk):  # nobody waits: not even a prefill
                texts = [""] * len(chunk)
            else:
                texts = self._generate([prompts[i][0] for i in chunk], limits[chunk[0]],
                                       self._streamer(chunk, on_text), chunk_wanted)
            for i, text in zip(chunk, texts, strict=True):
                drafts[i] = Draft(text, prompts[i][1])
        return drafts  # type: ignore[return-value]  # every position is in one chunk

    def _streamer(self, positions: list[int], on_text: TextCallback | None) -> BatchStreamer | None:
        """Where a chunk's tokens go as they are chosen (beam search has no text until it ends)."""
        if on_text is None or self.config.num_beams > 1:
            return None
        return BatchStreamer.for_positions(self.tokenizer, positions, on_text, self.model.generation_config.eos_token_id)

    def _generate(self, batch: list[list[int]], max_new_tokens: int, streamer: BatchStreamer | None = None,
                  wanted: Wanted | None = None) -> list[str]:
        if self.runtime != "torch":
            return self._generate_converted(batch, max_new_tokens, streamer, wanted)
        if self.config.decoding == "lookahead" and not self.is_seq2seq:
            return self._generate_lookahead(batch, max_new_tokens, streamer, wanted)
        from transformers import LogitsProcessorList

        input_ids, attention_mask = self._pad(batch)
        # seq2seq: the decoder's ids are the answer, generate()'s own knobs apply; causal: the prompt is
        # excluded from the n-gram ban (see AnswerNoRepeatNGram), so the same knobs go in as processors and
        # generate()'s own are switched off, whatever the model's generation_config says
        knobs = {"no_repeat_ngram_size": self.config.no_repeat_ngram_size, "repetition_penalty": self.config.repetition_penalty}
        if self.is_seq2seq:  # the decoder writes the answer; each input (its evidence) grounds its beams
            sources = self.tokenizer.batch_decode(batch, skip_special_tokens=True)
            knobs["logits_processor"] = LogitsProcessorList(grounding_processors(
                self.tokenizer, self.config.grounded_numbers, self.config.grounded_names, 0, sources,
                self.config.num_beams, self.config.evidence_bias))
        else:
            knobs = {"no_repeat_ngram_size": 0, "repetition_penalty": 1.0,
                     "logits_processor": LogitsProcessorList(self._processors(input_ids.shape[1]))}
        output = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=self.config.num_beams,
            pad_token_id=self.tokenizer.pad_token_id,
            **({"streamer": streamer} if streamer is not None else {}),
            **stopping_criteria(wanted, self.config.num_beams),
            **knobs,
        )
        new_tokens = output if self.is_seq2seq else output[:, input_ids.shape[1] :]
        return [complete_sentences(t.strip()) for t in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

    def _generate_lookahead(self, batch: list[list[int]], max_new_tokens: int,
                            streamer: BatchStreamer | None = None, wanted: Wanted | None = None) -> list[str]:
        """Greedy answers with lookahead decoding (`writers.lookahead`), the same knobs applied; each
        accepted chunk of tokens goes to the streamer."""
        from .lookahead import lookahead_generate

        outputs = lookahead_generate(self.model, batch, max_new_tokens, pad_token_id=self.tokenizer.pad_token_id,
                                     eos_token_id=self.model.generation_config.eos_token_id, processors=self._processors,
                                     on_tokens=streamer.push if streamer is not None else None, wanted=wanted)
        if streamer is not None:
            streamer.end()
        return [complete_sentences(t.strip()) for t in self.tokenizer.batch_decode(outputs, skip_special_tokens=True)]

    def _generate_converted(self, batch: list[list[int]], max_new_tokens: int,
                            streamer: BatchStreamer | None = None, wanted: Wanted | None = None) -> list[str]:
        """Greedy answers on a fast CPU runtime (`writers.ct2_runtime`, `writers.ortgenai_runtime`), the
        same processors applied, each row's for its own prompt: ONNX Runtime GenAI decodes the batch
        together, CTranslate2 one prompt at a time."""
        processors = [self._processors(len(ids)) for ids in batch]
        on_tokens = streamer.push if streamer is not None else None
        if self.runtime == "onnxruntime-genai":  # its generator takes the whole batch
            outputs = self.model.generate_batch(batch, max_new_tokens, processors, on_tokens, wanted=wanted)
        else:  # one prompt at a time: an answer no longer wanted is not started
            outputs = [[] if row in unwanted_rows(wanted, len(batch)) else
                       self.model.generate(ids, max_new_tokens, row_processors, self.config.no_repeat_ngram_size,
                                           on_tokens=functools.partial(on_tokens, row) if on_tokens is not None else None)
                       for row, (ids, row_processors) in enumerate(zip(batch, processors))]
        if streamer is not None:
            streamer.end()
        return [complete_sentences(t.strip()) for t in self.tokenizer.batch_decode(outputs, skip_special_tokens=True)]

    def _processors(self, prompt_length: int) -> list:
        """The writer's repetition knobs and grounded decoding for a causal LM whose prompt (padding
        included) is this long."""
        from .lookahead import writer_processors

        processors = writer_processors(self.config.no_repeat_ngram_size, self.config.repetition_penalty, prompt_length)
        # last: they only ban tokens
        return processors + grounding_processors(self.tokenizer, self.config.grounded_numbers,
                                                 self.config.grounded_names, prompt_length,
                                                 evidence_bias=self.config.evidence_bias)

    def _pad(self, batch: list[list[int]]) -> tuple[Any, Any]:
        """Pad to one length: on the left for decoder-only models so generation continues the prompt."""
        width = max(len(ids) for ids in batch)
        pad = self.tokenizer.pad_token_id
        rows, masks = [], []
        for ids in batch:
            fill = [pad] * (width - len(ids))
            rows.append(ids + fill if self.is_seq2seq else fill + ids)
            ones, zeros = [1] * len(ids), [0] * len(fill)
            masks.append(ones + zeros if self.is_seq2seq else zeros + ones)
        device = self.model.device
        return torch.tensor(rows, device=device), torch.tensor(masks, device=device)
