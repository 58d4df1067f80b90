"""SegEnc: a segment encoder (Fusion-in-Decoder) around any Hugging Face encoder-decoder.

The document is split into windows of `segment_length` tokens, each starting with the query; the
backbone's encoder reads every window alone (in batches: the cost grows linearly with the number of
windows), the window states are concatenated, and the decoder cross-attends to all of them.

The model input is flat: `input_ids` of shape (B, W * L), W windows of L = `segment_length` tokens,
each window padded to L (see `WindowInputs`); an all-padding window is skipped by the encoder and
masked for the decoder. An input of at most L tokens is a single window and runs exactly as the
backbone. So `generate()` (beam search included), `save_pretrained` and `from_pretrained` work as
for any Hugging Face seq2seq model:

>>> model = SegEncForConditionalGeneration.from_backbone("facebook/bart-large", segment_length=512)  # doctest: +SKIP
>>> inputs = WindowInputs.for_model(model, tokenizer)  # doctest: +SKIP
>>> batch = inputs.collate([inputs.encode("What was decided?", long_text)])  # doctest: +SKIP
>>> model.generate(**batch, num_beams=4, max_new_tokens=256)  # doctest: +SKIP

Importing this module registers the `segenc` model type with `AutoConfig` and `AutoModelForSeq2SeqLM`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TYPE_CHECKING

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSeq2SeqLM,
    GenerationMixin,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers.configuration_utils import SubConfigSpec
from transformers.modeling_outputs import BaseModelOutput

from ..errors import QfsumError
from .kv_cache import cache_kwarg, pick_cache
from .seq2seq_inputs import (
    DocumentTokens,
    PairTemplate,
    pad,
    pair_template,
    query_ids,
)

if TYPE_CHECKING:  # annotations only: transformers loads when a model does
    from transformers import PreTrainedTokenizerBase

TOKEN_IDS = ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id")


@strict
class SegEncConfig(PreTrainedConfig):
    """A backbone encoder-decoder's config plus how SegEnc cuts the document into windows."""

    model_type = "segenc"
    sub_configs_defaults = {"backbone": SubConfigSpec(config_class=AutoConfig, model_type="bart")}

    backbone: PreTrainedConfig | dict | None = None  # the wrapped encoder-decoder (BART, T5, PEGASUS, ...)
    segment_length: int = 512  # tokens per window, query and special tokens included
    overlap: bool = True  # windows start every half window (50 % overlap); False: disjoint windows
    max_input: int = 16384  # document tokens read at most; the rest is cut
    window_batch_size: int | None = None  # windows per encoder call (bounds memory); None: all at once
    pad_token_id: int | None = None  # the token ids below default to the backbone's
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    decoder_start_token_id: int | None = None
    is_encoder_decoder: bool = True
    tie_word_embeddings: bool = False  # the backbone ties (or not) its own embeddings

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        if not getattr(self.backbone, "is_encoder_decoder", False):
            raise QfsumError(f"SegEnc needs an encoder-decoder backbone, got '{self.backbone.model_type}'")
        for name in TOKEN_IDS:
            if getattr(self, name) is None:
                setattr(self, name, getattr(self.backbone, name, None))
        if self.segment_length < 8 or self.max_input < 1:
            raise QfsumError(f"SegEnc needs segment_length >= 8 and max_input >= 1, got {self.segment_length}/{self.max_input}")
        if self.window_batch_size is not None and self.window_batch_size < 1:
            raise QfsumError(f"window_batch_size must be >= 1, got {self.window_batch_size}")

    def get_text_config(self, decoder: bool | None = None, encoder: bool | None = None) -> PreTrainedConfig:
        """The backbone's: generation sizes its caches from the decoder's layers."""
        return self.backbone.get_text_config(decoder=decoder, encoder=encoder)


# -- windows ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """One encoder input: the query and document tokens [start, end), framed by special tokens."""

    input_ids: list[int]
    start: int
    end: int


def window_spans(n_tokens: int, length: int, stride: int) -> list[tuple[int, int]]:
    """[start, end) spans of `length` tokens every `stride` tokens; the last ends at the last token.

    An empty document still gets one (empty) window, so the query alone is encoded.
    """
    if length < 1 or not 1 <= stride <= length:
        raise ValueError(f"need length >= 1 and 1 <= stride <= length, got {length}/{stride}")
    spans = []
    start = 0
    while True:
        end = min(start + length, n_tokens)
        spans.append((start, end))
        if end >= n_tokens:
            return spans
        start += stride


def make_windows(
    question: Sequence[int],
    document: Sequence[int],
    template: PairTemplate,
    segment_length: int,
    overlap: bool = True,
    max_input: int = 16384,
) -> list[Window]:
    """SegEnc's windows: the first `max_input` document tokens in chunks that, with the query and the
    special tokens, fill `segment_length` tokens; chunks start every half chunk (`overlap`) or every chunk."""
    chunk = segment_length - len(question) - template.overhead
    if chunk < 2:
        raise QfsumError(f"the query ({len(question)} tokens) leaves no room in a {segment_length}-token window")
    stride = max(chunk // 2, 1) if overlap else chunk
    document = document[:max_input]
    return [Window(template.join(question, document[a:b]), a, b) for a, b in window_spans(len(document), chunk, stride)]


class WindowInputs:
    """SegEnc's input builder (see `qfsum.models.seq2seq_inputs.InputBuilder`).

    `encode` gives a pair's windows; `collate` pads a batch: to the longest input when every pair
    has one window (then SegEnc is the backbone), else every window to `segment_length` and every
    pair to the most windows, as (B, W * L) `input_ids` and `attention_mask`.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, segment_length: int = 512, overlap: bool = True, max_input: int = 16384) -> None:
        self.tokenizer, self.segment_length, self.overlap, self.max_input = tokenizer, segment_length, overlap, max_input
        self.template = pair_template(tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.documents = DocumentTokens(tokenizer)

    @classmethod
    def for_model(cls, model: SegEncForConditionalGeneration, tokenizer: PreTrainedTokenizerBase) -> WindowInputs:
        """The builder with the windows a SegEnc model was configured (and trained) with."""
        config = model.config
        return cls(tokenizer, config.segment_length, config.overlap, config.max_input)

    def windows(self, query: str, document: str) -> list[Window]:
        """The windows of a (query, document) pair."""
        question = query_ids(self.tokenizer, query, self.segment_length)
        return make_windows(question, self.documents(document), self.template, self.segment_length,
                            self.overlap, self.max_input)

    def encode(self, query: str, document: str) -> dict[str, Any]:
        return {"windows": [w.input_ids for w in self.windows(query, document)]}

    def collate(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if all(len(f["windows"]) == 1 for f in features):
            rows = [f["windows"][0] for f in features]
            return {"input_ids": pad(rows, self.pad_id), "attention_mask": pad([[1] * len(r) for r in rows], 0)}
        most = max(len(f["windows"]) for f in features)
        length = self.segment_length
        ids, masks = [], []
        for feature in features:
            windows = feature["windows"] + [[]] * (most - len(feature["windows"]))  # all-padding windows
            ids.append([t for w in windows for t in list(w) + [self.pad_id] * (length - len(w))])
            masks.append([m for w in windows for m in [1] * len(w) + [0] * (length - len(w))])
        return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(masks)}  # (B, W * L)


# -- the model ----------------------------------------------------------------------------------------


class WindowEncoder(nn.Module):
    """The backbone's encoder applied to each window of a flat (B, W * L) input.

    Made on demand by `SegEncForConditionalGeneration.get_encoder`; it holds no weights of its own.
    """

    main_input_name = "input_ids"

    def __init__(self, encoder: nn.Module, segment_length: int, window_batch_size: int | None = None) -> None:
        super().__init__()
        self.encoder, self.segment_length, self.window_batch_size = encoder, segment_length, window_batch_size

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any) -> BaseModelOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        batch, total = input_ids.shape
        length = self.segment_length
        if total <= length:  # a single window: exactly the backbone
            return BaseModelOutput(last_hidden_state=self._encode(input_ids, attention_mask))
        if total % length:
            raise ValueError(f"a SegEnc input of {total} tokens is not a whole number of {length}-token windows")
        ids = input_ids.reshape(-1, length)  # (B * W, L)
        mask = attention_mask.reshape(-1, length)
        keep = mask.any(dim=-1).nonzero().squeeze(-1)  # windows with tokens; padding windows stay zero
        step = self.window_batch_size or len(keep) or 1
        states = torch.cat([self._encode(ids[part], mask[part]) for part in keep.split(step)])  # (K, L, H)
        hidden = states.new_zeros(ids.shape[0], length, states.shape[-1])
        hidden = hidden.index_copy(0, keep, states)  # (B * W, L, H)
        return BaseModelOutput(last_hidden_state=hidden.reshape(batch, total, -1))  # (B, W * L, H)

    def _encode(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=ids, attention_mask=mask, return_dict=True).last_hidden_state


class SegEncForConditionalGeneration(PreTrainedModel, GenerationMixin):
    """An encoder-decoder whose encoder reads the input window by window (see the module docstring)."""

    config: SegEncConfig
    config_class = SegEncConfig
    base_model_prefix = "segenc"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(self, config: SegEncConfig, backbone: PreTrainedModel | None = None) -> None:
        # The backbone keeps the attention kernel it was built with (initializing the wrapper clears it).
        kernel = backbone.config._attn_implementation if backbone is not None else None
        super().__init__(config)
        self.backbone = backbone if backbone is not None else AutoModelForSeq2SeqLM.from_config(config.backbone)
        self.config.backbone._attn_implementation = kernel or self.backbone.config._attn_implementation or "sdpa"
        self.backbone.config = self.config.backbone  # one config object: edits reach the backbone
        self.post_init()

    @classmethod
    def from_backbone(
        cls, backbone: str | PreTrainedModel, segment_length: int = 512, overlap: bool = True,
        max_input: int = 16384, window_batch_size: int | None = None, **load_kwargs: Any,
    ) -> SegEncForConditionalGeneration:
        """SegEnc around a pretrained encoder-decoder (a model, a directory or a hub id)."""
        if isinstance(backbone, str):
            backbone = AutoModelForSeq2SeqLM.from_pretrained(backbone, **load_kwargs)
        limit = getattr(backbone.config, "max_position_embeddings", None)
        if isinstance(limit, int) and segment_length > limit:
            raise QfsumError(f"windows of {segment_length} tokens exceed the backbone's {limit} positions")
        config = SegEncConfig(backbone=backbone.config, segment_length=segment_length, overlap=overlap,
                              max_input=max_input, window_batch_size=window_batch_size)
        model = cls(config, backbone)
        model.generation_config = backbone.generation_config  # beams, forced tokens, ... as the backbone's
        return model

    def _init_weights(self, module: nn.Module) -> None:
        self.backbone._init_weights(module)

    def get_encoder(self, modality: str | None = None) -> WindowEncoder:
        return WindowEncoder(self.backbone.get_encoder(), self.config.segment_length, self.config.window_batch_size)

    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.backbone.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module | None:
        return self.backbone.get_output_embeddings()

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return self.backbone.prepare_decoder_input_ids_from_labels(labels=labels)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,  # (B, W * L), or (B, T <= L) for one window
        attention_mask: torch.Tensor | None = None,  # same shape; 0 on padding and padding windows
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: Any = None,  # (B, W * L, H) states, from `get_encoder()` (generate passes them)
        cache: Any = None,
        past_key_values: Any = None,  # the name before transformers 5.24
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        if encoder_outputs is None:
            if input_ids is None:
                raise ValueError("SegEnc needs input_ids or encoder_outputs")
            encoder_outputs = self.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
        if attention_mask is None:
            attention_mask = torch.ones(encoder_outputs[0].shape[:2], dtype=torch.long, device=encoder_outputs[0].device)
        return self.backbone(
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            **cache_kwarg(pick_cache(cache, past_key_values)),
            labels=labels,
            use_cache=use_cache,
            **kwargs,
        )


AutoConfig.register(SegEncConfig.model_type, SegEncConfig, exist_ok=True)
AutoModelForSeq2SeqLM.register(SegEncConfig, SegEncForConditionalGeneration, exist_ok=True)
