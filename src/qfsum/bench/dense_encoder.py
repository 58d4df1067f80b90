"""A dense-attention transformer encoder (BERT-like, post-norm), the baseline of the LOCOST scaling benchmark."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ATTENTION = ("sdpa", "eager")  # sdpa: torch picks its kernel (flash on CPU: O(L) memory); eager: softmax(QK^T)V


class DenseEncoderLayer(nn.Module):
    """Self-attention over every pair of tokens, then a GeLU feed-forward; residual and norm after each."""

    def __init__(self, width: int, heads: int, d_ff: int, attention: str) -> None:
        super().__init__()
        if attention not in ATTENTION:
            raise ValueError(f"attention must be one of {ATTENTION}, got {attention!r}")
        self.heads, self.attention = heads, attention
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.ffn = nn.Sequential(nn.Linear(width, d_ff), nn.GELU(), nn.Linear(d_ff, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        if self.attention == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v)  # (B, heads, L, d_head)
        else:  # the full (B, heads, L, L) score matrix, as eager BERT computes it
            y = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1) @ v
        x = self.norm1(x + self.out(y.transpose(1, 2).reshape(batch, length, width)))
        return self.norm2(x + self.ffn(x))


class DenseEncoder(nn.Module):
    """Token embeddings and `layers` dense layers (no positions: they do not change the cost measured)."""

    def __init__(self, vocab_size: int, width: int, layers: int, heads: int, d_ff: int, attention: str) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, width)
        self.layers = nn.ModuleList(DenseEncoderLayer(width, heads, d_ff, attention) for _ in range(layers))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """input_ids: (B, L) -> (B, L, width)."""
        x = self.embed(input_ids)
        for layer in self.layers:
            x = layer(x)
        return x
