"""LocostConfig: the hyper-parameters of a LOCOST encoder-decoder."""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig


class LocostConfig(PretrainedConfig):
    """Configuration of `LocostForConditionalGeneration`.

    The defaults are the base size of the LOCOST paper's encoder (12 layers, width 768, N = 256) and a
    12-layer decoder, with the vocabulary of the packaged SmolLM2 tokenizer (no pretrained LOCOST
    exists, so qfsum trains with that tokenizer; pad is its <|endoftext|>, start its <|im_start|>, end
    its <|im_end|>).

    Example:
        >>> config = LocostConfig(d_model=64, encoder_layers=2, decoder_layers=2, decoder_attention_heads=4,
        ...                       d_ff=128, state_size=16, vocab_size=100)
    """

    model_type = "locost"
    keys_to_ignore_at_inference = ["cache", "past_key_values"]  # the name by transformers release
    attribute_map = {"hidden_size": "d_model", "num_attention_heads": "decoder_attention_heads",
                     "num_hidden_layers": "decoder_layers"}

    def __init__(
        self,
        vocab_size: int = 49152,
        d_model: int = 768,  # width of encoder and decoder; also the SSM's channel count H
        encoder_layers: int = 12,  # gated BiSSM + gated-GeLU feed-forward layers
        decoder_layers: int = 12,  # pre-norm transformer layers with self- and cross-attention
        decoder_attention_heads: int = 12,
        d_ff: int = 2048,  # inner width of the gated-GeLU feed-forward blocks
        state_size: int = 256,  # N: complex states per channel and direction
        dropout: float = 0.1,  # after mixing and feed-forward blocks (encoder and decoder)
        attention_dropout: float = 0.0,
        max_decoder_positions: int = 1024,  # learned decoder positions; the encoder needs none
        channel_chunk_elements: int = 2**25,  # encoder mixes channels in chunks of at most this many (token x channel) values
        ffn_chunk_tokens: int = 16384,  # encoder feed-forward runs over this many tokens at a time
        layer_norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        pad_token_id: int = 0,
        bos_token_id: int = 1,
        eos_token_id: int = 2,
        decoder_start_token_id: int = 1,
        tie_word_embeddings: bool = True,
        use_cache: bool = True,
        **kwargs: Any,
    ) -> None:
        if d_model % decoder_attention_heads:
            raise ValueError(f"d_model ({d_model}) must be a multiple of decoder_attention_heads ({decoder_attention_heads})")
        for name, value in (("state_size", state_size), ("channel_chunk_elements", channel_chunk_elements),
                            ("ffn_chunk_tokens", ffn_chunk_tokens), ("max_decoder_positions", max_decoder_positions)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.encoder_layers = encoder_layers
        self.decoder_layers = decoder_layers
        self.decoder_attention_heads = decoder_attention_heads
        self.d_ff = d_ff
        self.state_size = state_size
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.max_decoder_positions = max_decoder_positions
        self.channel_chunk_elements = channel_chunk_elements
        self.ffn_chunk_tokens = ffn_chunk_tokens
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.use_cache = use_cache
        kwargs.pop("is_encoder_decoder", None)  # always True; present in saved configs
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            decoder_start_token_id=decoder_start_token_id,
            is_encoder_decoder=True,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )
