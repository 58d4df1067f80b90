"""End-to-end seq2seq writers: they read the whole document, not a selection of it.

- `segenc`: a SegEnc model (`qfsum.models.segenc`), windows of the query and the document;
- `led`: a Longformer-Encoder-Decoder, `query <delimiter> document` cut at its limit (16K tokens
  for allenai/led-*-16384), with global attention on the query;
- `bart`: any encoder-decoder, `query <delimiter> document` cut at its limit (1024 for BART):
  the truncating baseline.

Pipelines using them score with `lead`: every segment is passed, and the writer joins them in
document order. `seq2seq_setup` gives the trainer the same model and inputs the writer loads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TYPE_CHECKING

import torch

from ..assets import default_device, require_safetensors, resolve, resolve_dtype
from ..errors import QfsumError
from ..text import complete_sentences
from .base import WriterConfig
from .grounded import grounding_processors
from .lengths import Words, answer_tokens, groups, per_item
from .streaming import BatchStreamer, TextCallback
from .wanted import Wanted, for_positions, stopping_criteria
from ..document import Draft, Evidence
from ..models.seq2seq_inputs import InputBuilder, TruncatedInputs, document_text, input_limit

if TYPE_CHECKING:  # annotations only: transformers loads when a model does
    from transformers import PreTrainedTokenizerBase

ARCH_WRITERS = {"segenc": "segenc", "led": "led", "plain": "bart"}  # training architecture -> writer kind


@dataclass
class Seq2SeqModel:
    """A seq2seq model, its tokenizer, and the input builder it reads with."""

    model: Any
    tokenizer: PreTrainedTokenizerBase
    inputs: InputBuilder
    writer: str  # the writer kind that loads the saved model


def load_seq2seq(
    arch: str, name: str, dtype: str = "float32", max_input: int | None = None, windows: dict[str, Any] | None = None,
) -> Seq2SeqModel:
    """Load a model for `arch` (segenc | led | plain) from a packaged name, directory or hub id.

    `max_input` caps the tokens read: segenc's document tokens (the model's `max_input`), or the
    whole input of led/plain (never past the model's limit). For segenc, `name` is a saved SegEnc
    model or a plain encoder-decoder that is wrapped; `windows` (segment_length, overlap) sets
    the windows of either.
    """
    from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

    from ..models.segenc import SegEncForConditionalGeneration, WindowInputs

    if arch not in ARCH_WRITERS:
        raise QfsumError(f"unknown architecture '{arch}' (choose from {', '.join(ARCH_WRITERS)})")
    location = resolve(name).location
    require_safetensors(location)
    try:
        config = AutoConfig.from_pretrained(location)
        if not config.is_encoder_decoder:
            raise QfsumError(f"model '{name}' is not an encoder-decoder ({config.model_type})")
        tokenizer = AutoTokenizer.from_pretrained(location)
        model = AutoModelForSeq2SeqLM.from_pretrained(location, dtype=resolve_dtype(dtype), use_safetensors=True)
    except (OSError, ValueError) as err:
        raise QfsumError(f"cannot load model '{name}': {str(err).splitlines()[0][:300]}") from None
    is_segenc = isinstance(model, SegEncForConditionalGeneration)
    if arch == "segenc":
        settings = {**(windows or {}), **({"max_input": max_input} if max_input else {})}
        if not is_segenc:
            model = SegEncForConditionalGeneration.from_backbone(model, **settings)
        for key, value in settings.items():
            setattr(model.config, key, value)
        inputs: InputBuilder = WindowInputs.for_model(model, tokenizer)
    elif is_segenc:
        raise QfsumError(f"model '{name}' is a SegEnc model: use the segenc architecture")
    else:
        if arch == "led" and config.model_type != "led":
            raise QfsumError(f"the led architecture needs an LED model, got '{config.model_type}'")
        limit = input_limit(model, tokenizer)
        inputs = TruncatedInputs(tokenizer, min(limit, max_input or limit), global_query=arch == "led")
    return Seq2SeqModel(model, tokenizer, inputs, ARCH_WRITERS[arch])


@dataclass
class GenerationSettings:
    """Decoding knobs shared by the writers and validation during training."""

    num_beams: int = 4
    max_new_tokens: int = 256
    no_repeat_ngram_size: int = 3
    length_penalty: float = 1.0
    batch_size: int = 4


@torch.inference_mode()
def generate_texts(
    model: Any, tokenizer: PreTrainedTokenizerBase, inputs: InputBuilder, pairs: Sequence[tuple[str, str]], settings: GenerationSettings,
    progress: bool = False, grounded: Callable[[Sequence[str], int], list] | None = None,
    on_text: TextCallback | None = None,
    wanted: Wanted | None = None,
) -> list[str]:
    """One summary per (query, document) pair: beam search (or greedy), in batches.

    `grounded(sources, num_beams)`, if given, makes the logits processors that hold each answer to its
    source text (`query + document`; see `writers.grounded`). `on_text(i, text)`, if given, gets pair i's
    new text as it is decoded (greedy only: beam search has no text until it ends). Pair i stops being
    decoded once `wanted(i)` says False (`writers.wanted`)."""
    from tqdm.auto import tqdm

    texts: list[str] = []
    step = max(settings.batch_size, 1)
    for i in tqdm(range(0, len(pairs), step), desc="generate", unit="batch", leave=False, disable=not progress):
        batch = inputs.collate([inputs.encode(q, d) for q, d in pairs[i : i + step]])
        batch = {k: v.to(model.device) for k, v in batch.items()}
        if grounded is not None:
            from transformers import LogitsProcessorList

            sources = [f"{q}\n{d}" for q, d in pairs[i : i + step]]
            batch["logits_processor"] = LogitsProcessorList(grounded(sources, settings.num_beams))
        if on_text is not None and settings.num_beams == 1:
            positions = list(range(i, min(i + step, len(pairs))))
            batch["streamer"] = BatchStreamer.for_positions(tokenizer, positions, on_text,
                                                            model.generation_config.eos_token_id)
        output = model.generate(
            **batch,
            num_beams=settings.num_beams,
            max_new_tokens=settings.max_new_tokens,
            no_repeat_ngram_size=settings.no_repeat_ngram_size,
            length_penalty=settings.length_penalty,
            do_sample=False,
            **stopping_criteria(for_positions(wanted, range(i, min(i + step, len(pairs)))), settings.num_beams),
        )
        texts.extend(t.strip() for t in tokenizer.batch_decode(output, skip_special_tokens=True))
    return texts


class Seq2SeqWriter:
    """Reads every segment, in document order, with an end-to-end seq2seq model."""

    arch = "plain"

    def _grounded(self, sources: Sequence[str], num_beams: int) -> list:
        """Grounded-decoding processors for the decoder (its ids start with the decoder's start token)."""
        return grounding_processors(self.tokenizer, self.config.grounded_numbers, self.config.grounded_names,
                                    0, sources, num_beams, self.config.evidence_bias)

    def __init__(self, config: WriterConfig) -> None:
        self.config = config
        loaded = load_seq2seq(self.arch, config.model, config.dtype, max_input=config.input_tokens)
        self.model = loaded.model.to(default_device()).eval()
        self.tokenizer, self.inputs = loaded.tokenizer, loaded.inputs
        self.settings = GenerationSettings(config.num_beams, config.new_tokens(), config.no_repeat_ngram_size,
                                           batch_size=config.batch_size)

    def write_batch(self, queries: Sequence[str], ranked: Sequence[Sequence[Evidence]], words: Words = None,
                    on_text: TextCallback | None = None, wanted: Wanted | None = None) -> list[Draft]:
        """One draft per query, from every segment in document order. `words` sets the answers' length (one
        for all or one per query); `on_text(i, text)` gets answer i's new text while it is decoded (greedy);
        answer i stops being decoded once `wanted(i)` says False."""
        pairs = [(q, document_text(r)) for q, r in zip(queries, ranked, strict=True)]
        lengths = per_item(words, len(pairs)) or [None] * len(pairs)
        limits = [answer_tokens(self.config, length) for length in lengths]
        texts: list[str] = [""] * len(pairs)
        for group in groups(limits, len(pairs)):  # one length each; generate_texts batches them
            settings = replace(self.settings, max_new_tokens=limits[group[0]])
            relay = (lambda j, text, group=group: on_text(group[j], text)) if on_text is not None else None
            written = generate_texts(self.model, self.tokenizer, self.inputs, [pairs[i] for i in group], settings,
                                     grounded=self._grounded, on_text=relay, wanted=for_positions(wanted, group))
            for i, text in zip(group, written, strict=True):
                texts[i] = complete_sentences(text)
        return [Draft(text, sorted(r, key=lambda e: e.segment.start)) for text, r in zip(texts, ranked, strict=True)]


class SegEncWriter(Seq2SeqWriter):
    """SegEnc: windows of the query and the document; `budget` caps the document tokens read."""

    arch = "segenc"


class LEDWriter(Seq2SeqWriter):
    """LED: the query and as much of the document as fits, global attention on the query."""

    arch = "led"


class TruncatingWriter(Seq2SeqWriter):
    """The truncating baseline (BART and any encoder-decoder): query, delimiter, document cut at the limit."""

    arch = "plain"
