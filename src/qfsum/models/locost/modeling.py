"""LOCOST as Hugging Face classes: a gated-BiSSM encoder and a pre-norm transformer decoder.

Encoder layer (post-norm, as in the LOCOST paper):
    x = norm(x + dropout(out(q(x) * BiSSM(v(x)))))       # no attention: O(L log L) time, O(L) memory
    x = norm(x + dropout(gated_gelu_ffn(x)))
The mixing is independent per channel, so it runs over chunks of channels (projecting only that
chunk's q and v and accumulating its share of the output projection), and the feed-forward runs over
chunks of tokens: memory stays a few (L x d_model) buffers at any length. The encoder has no position
embeddings (the SSM kernels carry position), so it reads inputs of any length.

Decoder: learned positions, pre-norm self-attention (causal, KV cache), cross-attention (encoder keys
and values cached once), gated-GeLU feed-forward, final norm, LM head tied to the shared embedding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPastAndCrossAttentions, Seq2SeqLMOutput

from ..kv_cache import cache_kwarg, pick_cache
from .configuration import LocostConfig
from .ssm import BiSSM, SSMKernel


class GatedGeluFFN(nn.Module):
    """W_out(gelu(W_gate x) * W_in x), as in T5 v1.1."""

    def __init__(self, d_model: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.gate = nn.Linear(d_model, d_ff, bias=False)
        self.inner = nn.Linear(d_model, d_ff, bias=False)
        self.out = nn.Linear(d_ff, d_model, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(F.gelu(self.gate(x), approximate="tanh") * self.inner(x)))


class LocostEncoderLayer(nn.Module):
    """Gated bidirectional SSM mixing and a gated-GeLU feed-forward, each with residual and norm."""

    def __init__(self, config: LocostConfig) -> None:
        super().__init__()
        d = config.d_model
        self.q = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.ssm = BiSSM(d, config.state_size)
        self.out = nn.Linear(d, d)
        self.mix_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.ffn = GatedGeluFFN(d, config.d_ff, config.dropout)
        self.ffn_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.channel_chunk_elements = config.channel_chunk_elements
        self.ffn_chunk_tokens = config.ffn_chunk_tokens

    def mix(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """out(q * BiSSM(v)) without the output bias, chunk of channels by chunk: (B, L, D) -> (B, L, D)."""
        batch, length, width = x.shape
        step = max(1, min(width, self.channel_chunk_elements // (batch * length)))
        mixed = None
        for start in range(0, width, step):
            chunk = slice(start, min(start + step, width))
            q = F.linear(x, self.q.weight[chunk], self.q.bias[chunk])  # (B, L, h)
            v = F.linear(x, self.v.weight[chunk], self.v.bias[chunk])  # (B, L, h)
            if mask is not None:
                v = v * mask  # padding must not reach real tokens through the anti-causal kernel
            part = F.linear(q * self.ssm(v, chunk), self.out.weight[:, chunk])  # (B, L, D)
            mixed = part if mixed is None else mixed.add_(part)
        return mixed

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The feed-forward over chunks of tokens, so its (tokens x d_ff) intermediates stay bounded."""
        step = self.ffn_chunk_tokens
        if x.shape[1] <= step:
            return self.ffn(x)
        return torch.cat([self.ffn(x[:, i : i + step]) for i in range(0, x.shape[1], step)], dim=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, L, D); mask: (B, L, 1), 1 for real tokens, or None."""
        mixed = self.dropout(self.mix(x, mask).add_(self.out.bias))
        x = self.mix_norm(mixed.add_(x))
        return self.ffn_norm(self.dropout(self.feed_forward(x)).add_(x))


class LocostAttention(nn.Module):
    """Multi-head attention (SDPA) with a cache: self-attention appends, cross-attention computes once."""

    def __init__(self, config: LocostConfig, layer_idx: int, cross: bool) -> None:
        super().__init__()
        d = config.d_model
        self.heads, self.layer_idx, self.cross = config.decoder_attention_heads, layer_idx, cross
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.dropout = config.attention_dropout

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        return x.view(batch, length, self.heads, width // self.heads).transpose(1, 2)  # (B, heads, L, d_head)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, cache: EncoderDecoderCache | None,
                memory: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, D); memory: encoder states (B, S, D) for cross-attention; mask: boolean, True = attend."""
        q = self._split(self.q(x))
        if self.cross and cache is not None and cache.is_updated.get(self.layer_idx):
            layer = cache.cross_attention_cache.layers[self.layer_idx]
            k, v = layer.keys, layer.values
        else:
            source = memory if self.cross else x
            k, v = self._split(self.k(source)), self._split(self.v(source))
            if cache is not None:
                store = cache.cross_attention_cache if self.cross else cache.self_attention_cache
                k, v = store.update(k, v, self.layer_idx)
                if self.cross:
                    cache.is_updated[self.layer_idx] = True
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (B, heads, T, d_head)
        return self.o(y.transpose(1, 2).flatten(2))


class LocostDecoderLayer(nn.Module):
    """Pre-norm: self-attention, cross-attention, feed-forward, each added to the residual stream."""

    def __init__(self, config: LocostConfig, layer_idx: int) -> None:
        super().__init__()
        d, eps = config.d_model, config.layer_norm_eps
        self.self_norm, self.cross_norm, self.ffn_norm = (nn.LayerNorm(d, eps=eps) for _ in range(3))
        self.self_attn = LocostAttention(config, layer_idx, cross=False)
        self.cross_attn = LocostAttention(config, layer_idx, cross=True)
        self.ffn = GatedGeluFFN(d, config.d_ff, config.dropout)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, self_mask: torch.Tensor, memory: torch.Tensor, cross_mask: torch.Tensor | None,
                cache: EncoderDecoderCache | None) -> torch.Tensor:
        """x: (B, T, D) decoder states; memory: (B, S, D) encoder states; masks boolean, True = attend."""
        x = x + self.dropout(self.self_attn(self.self_norm(x), self_mask, cache))
        x = x + self.dropout(self.cross_attn(self.cross_norm(x), cross_mask, cache, memory))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class LocostPreTrainedModel(PreTrainedModel):
    """Weight initialisation and the Hugging Face plumbing shared by LOCOST models."""

    config_class = LocostConfig
    config: LocostConfig
    base_model_prefix = "locost"
    supports_gradient_checkpointing = False
    _no_split_modules = ["LocostEncoderLayer", "LocostDecoderLayer"]
    _supports_sdpa = True

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)  # linear, embedding (decoder positions too), norm
        if isinstance(module, (SSMKernel, BiSSM)):
            module.reset_parameters()  # with transformers.initialization: loaded weights are left alone


class LocostEncoder(LocostPreTrainedModel):
    """Token embeddings then gated-BiSSM layers; reads any length (no positions)."""

    def __init__(self, config: LocostConfig, embed_tokens: nn.Embedding | None = None) -> None:
        super().__init__(config)
        self.embed_tokens = embed_tokens or nn.Embedding(config.vocab_size, config.d_model, config.pad_token_id)
        self.layers = nn.ModuleList(LocostEncoderLayer(config) for _ in range(config.encoder_layers))
        self.dropout = nn.Dropout(config.dropout)
        self.post_init()

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, return_dict: bool | None = None, **kwargs) -> BaseModelOutput:
        """input_ids: (B, L) -> last_hidden_state (B, L, D)."""
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            mask = attention_mask[:, :, None].to(x.dtype)  # (B, L, 1)
        x = self.dropout(x)
        for layer in self.layers:
            x = layer(x, mask)
        return BaseModelOutput(last_hidden_state=x)


class LocostDecoder(LocostPreTrainedModel):
    """A pre-norm transformer decoder with learned positions and an `EncoderDecoderCache`."""

    def __init__(self, config: LocostConfig, embed_tokens: nn.Embedding | None = None) -> None:
        super().__init__(config)
        self.embed_tokens = embed_tokens or nn.Embedding(config.vocab_size, config.d_model, config.pad_token_id)
        self.positions = nn.Embedding(config.max_decoder_positions, config.d_model)
        self.layers = nn.ModuleList(LocostDecoderLayer(config, i) for i in range(config.decoder_layers))
        self.norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, encoder_hidden_states: torch.Tensor,
                encoder_attention_mask: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                cache: EncoderDecoderCache | None = None) -> BaseModelOutputWithPastAndCrossAttentions:
        """input_ids: (B, T) new tokens; encoder_hidden_states: (B, S, D) -> (B, T, D)."""
        batch, length = input_ids.shape
        past = cache.get_seq_length() if cache is not None else 0
        if past + length > self.config.max_decoder_positions:
            raise ValueError(f"the decoder holds {self.config.max_decoder_positions} positions; got {past + length}")
        device = input_ids.device
        positions = torch.arange(past, past + length, device=device)
        x = self.dropout(self.embed_tokens(input_ids) + self.positions(positions))
        keys = torch.arange(past + length, device=device)
        self_mask = (keys[None, :] <= positions[:, None])[None, None]  # (1, 1, T, past + T), True = attend
        if attention_mask is not None:  # decoder padding (B, past + T)
            self_mask = self_mask & attention_mask[:, None, None, -(past + length):].bool()
            self_mask = self_mask | (keys[None, :] == positions[:, None])  # a row never attends to nothing
        cross_mask = None
        if encoder_attention_mask is not None:
            cross_mask = encoder_attention_mask[:, None, None, :].bool()  # (B, 1, 1, S)
        for layer in self.layers:
            x = layer(x, self_mask, encoder_hidden_states, cross_mask, cache)
        return BaseModelOutputWithPastAndCrossAttentions(last_hidden_state=self.norm(x), **cache_kwarg(cache))


def shift_right(labels: torch.Tensor, pad_token_id: int, start_token_id: int) -> torch.Tensor:
    """Decoder inputs from labels: the start token then the labels but the last, -100 read as padding."""
    shifted = labels.new_full(labels.shape, pad_token_id)
    shifted[:, 1:] = labels[:, :-1]
    shifted[:, 0] = start_token_id
    return shifted.masked_fill(shifted == -100, pad_token_id)


class LocostForConditionalGeneration(LocostPreTrainedModel, GenerationMixin):
    """LOCOST encoder-decoder with an LM head; `generate()`, `save_pretrained()` and the Auto classes work.

    Example:
        >>> config = LocostConfig(d_model=32, encoder_layers=1, decoder_layers=1, decoder_attention_heads=2,
        ...                       d_ff=64, state_size=8, vocab_size=50)
        >>> model = LocostForConditionalGeneration(config).eval()
        >>> model.generate(torch.tensor([[5, 6, 7]]), max_new_tokens=3).shape
        torch.Size([1, 4])
    """

    _tied_weights_keys = {
        "lm_head.weight": "shared.weight",
        "encoder.embed_tokens.weight": "shared.weight",
        "decoder.embed_tokens.weight": "shared.weight",
    }

    def __init__(self, config: LocostConfig) -> None:
        super().__init__(config)
        self.shared = nn.Embedding(config.vocab_size, config.d_model, config.pad_token_id)
        self.encoder = LocostEncoder(config, self.shared)
        self.decoder = LocostDecoder(config, self.shared)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.shared

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.shared = self.encoder.embed_tokens = self.decoder.embed_tokens = value

    def get_encoder(self, *args, **kwargs) -> LocostEncoder:
        return self.encoder

    def get_decoder(self, *args, **kwargs) -> LocostDecoder:
        return self.decoder

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: Cache | None = None,
        past_key_values: Cache | None = None,  # the name before transformers 5.24
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> Seq2SeqLMOutput:
        """input_ids: (B, S) document tokens; decoder_input_ids or labels: (B, T) -> logits (B, T, vocab)."""
        cache = pick_cache(cache, past_key_values)
        if encoder_outputs is None:
            encoder_outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        elif not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = BaseModelOutput(last_hidden_state=encoder_outputs[0])
        if labels is not None:
            use_cache = False
            if decoder_input_ids is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        if not use_cache:
            cache = None
        decoded = self.decoder(decoder_input_ids, encoder_outputs.last_hidden_state, attention_mask,
                               decoder_attention_mask, cache)
        logits = self.lm_head(decoded.last_hidden_state)  # (B, T, vocab)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
        return Seq2SeqLMOutput(loss=loss, logits=logits, **cache_kwarg(cache),
                               encoder_last_hidden_state=encoder_outputs.last_hidden_state)
