"""Diagonal state-space kernels and the bidirectional SSM convolution (BiSSM) of LOCOST.

One direction of the SSM, per channel h, has N complex eigenvalues
`lambda[h, n] = exp(dt[h] * (lambda_re[h, n] + i * lambda_im[h, n]))`, input and output vectors
`b, c` of shape (N, H), and its convolution kernel is

    k[h, l] = Re(sum_n c[n, h] * lambda[h, n]**l * b[n, h])            (closed form)

BiSSM adds a causal kernel (lags 0..L-1) and an anti-causal one with its own parameters (lags -1..-(L-1),
so the present token is seen once, through the causal kernel), plus a skip term `d * u`. Both kernels are
applied in one zero-padded FFT convolution: O(L log L) per channel.

The fast path (`SSMKernel.forward`, `bissm_fft`) and the reference path (`ssm_kernel_closed_form`,
`bissm_recurrence`: the explicit recurrence x[t] = lambda * x[t-1] + b * u[t], y[t] = Re(c . x[t]))
compute the same thing; tests hold them equal.

Callers may process a slice of the channels at a time (`channels=`): every operation here is independent
per channel, so memory at long inputs is bounded by the chunk, not by H.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init

ALL = slice(None)
KERNEL_CHUNK = 2**22  # complex powers held at once while building kernels (32 MiB per array in complex64)


def fft_size(minimum: int) -> int:
    """The smallest 5-smooth integer (2^a 3^b 5^c) >= `minimum`: a size pocketfft transforms fast."""
    best = 1 << max(minimum - 1, 0).bit_length()  # the power of two always qualifies
    power5 = 1
    while power5 < best:
        power3 = power5
        while power3 < best:
            size = power3
            while size < minimum:
                size *= 2
            best = min(best, size)
            power3 *= 3
        power5 *= 5
    return best


class SSMKernel(nn.Module):
    """The parameters of one SSM direction and its length-L kernel, computed in O(N L H).

    Parameters (H channels, N states): `log_dt` (H,) with dt = exp(log_dt) ~ U[0, 1];
    `log_neg_re` (H, N) with lambda_re = -exp(log_neg_re) = -1/2 at init (kept negative so |lambda| < 1);
    `lambda_im` (H, N) = pi * n at init; `b`, `c` (N, H, 2): complex N(0, 1) as (real, imaginary) pairs
    (safetensors stores no complex tensors).
    """

    def __init__(self, channels: int, state_size: int) -> None:
        super().__init__()
        self.channels, self.state_size = channels, state_size
        self.log_dt = nn.Parameter(torch.empty(channels))
        self.log_neg_re = nn.Parameter(torch.empty(channels, state_size))
        self.lambda_im = nn.Parameter(torch.empty(channels, state_size))
        self.b = nn.Parameter(torch.empty(state_size, channels, 2))
        self.c = nn.Parameter(torch.empty(state_size, channels, 2))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """LOCOST's initialisation (skipped by `transformers.initialization` for loaded weights)."""
        dt = torch.rand(self.channels, dtype=self.log_dt.dtype).clamp_min(1e-4)  # U[0, 1]; log(0) is -inf
        init.copy_(self.log_dt, dt.log())
        init.constant_(self.log_neg_re, math.log(0.5))
        init.copy_(self.lambda_im, math.pi * torch.arange(self.state_size, dtype=self.lambda_im.dtype).expand_as(self.lambda_im))
        init.normal_(self.b, std=math.sqrt(0.5))  # complex N(0, 1): variance 1/2 per part
        init.normal_(self.c, std=math.sqrt(0.5))

    def log_lambda(self, channels: slice = ALL) -> torch.Tensor:
        """log(lambda) = dt * (lambda_re + i lambda_im) for the chosen channels: (h, N) complex."""
        dt = _wide(self.log_dt[channels]).exp()[:, None]
        return torch.complex(-_wide(self.log_neg_re[channels]).exp() * dt, _wide(self.lambda_im[channels]) * dt)

    def weights(self, channels: slice = ALL) -> tuple[torch.Tensor, torch.Tensor]:
        """b and c of the chosen channels, each (h, N) complex."""
        b = torch.view_as_complex(_wide(self.b[:, channels]).contiguous()).T
        c = torch.view_as_complex(_wide(self.c[:, channels]).contiguous()).T
        return b, c

    def forward(self, length: int, channels: slice = ALL) -> torch.Tensor:
        """The kernel k[h, l] for l < length: (h, length) real.

        Block Vandermonde: with l = j*T + t (T ~ sqrt(L)), lambda^l = (lambda^T)^j * lambda^t, so
        k[h, jT + t] = Re(sum_n (c b (lambda^T)^j)[h, j, n] * (lambda^t)[h, n, t]): one batched real
        matmul of O(N L) per channel (the real part only: [Re, -Im] @ [Re; Im]), and O(N sqrt(L)) powers
        per channel, each made by one `torch.polar` from a real exponential and an angle (c b folded in
        as log|c b| and arg(c b)): a few fused passes, several times cheaper on CPU than complex exp.

        Channels are built a few at a time (at most `KERNEL_CHUNK` powers), so these temporaries stay
        small at any width. Entries past `support()` are computed as zeros: there every state has decayed below eps^2 of its
        start, so they are zero at this precision; this saves most of the work for fast-decaying channels.
        """
        start, stop, _ = channels.indices(self.channels)
        block = max(1, math.isqrt(length - 1) + 1)  # T >= sqrt(L)
        step = max(1, KERNEL_CHUNK // (self.state_size * (block + -(-length // block))))
        if stop - start > step:  # bound the (h, N, T) and (h, N, J) powers: build a few channels at a time
            return torch.cat([self(length, slice(i, min(i + step, stop))) for i in range(start, stop, step)])
        support = self.support(length, channels)
        if support < length:
            return F.pad(self(support, channels), (0, length - support))
        log_lam = self.log_lambda(channels)
        log_mag, angle = log_lam.real, log_lam.imag  # (h, N): log|lambda|, arg lambda
        b, c = self.weights(channels)
        w = c * b  # (h, N)
        blocks = -(-length // block)  # J
        t = torch.arange(block, dtype=log_mag.dtype, device=log_mag.device)
        starts = t.new_tensor(range(0, blocks * block, block))
        channels_n = log_mag.shape[0]
        # lambda^t in polar form, laid out [Re; Im] along the state axis: (h, 2N, T)
        inner = torch.polar(torch.exp(log_mag[:, :, None] * t), angle[:, :, None] * t)  # (h, N, T)
        right = torch.view_as_real(inner).permute(0, 3, 1, 2).reshape(channels_n, -1, block)
        # conj(w lambda^(jT)) in polar form (log|w| + jT log|lambda|, -(arg w + jT arg lambda)), laid out
        # [Re, -Im] of w lambda^(jT) along the state axis: (h, J, 2N)
        magnitude = torch.exp(torch.addcmul(w.abs().log()[:, :, None], log_mag[:, :, None], starts))
        outer = torch.polar(magnitude, -torch.addcmul(w.angle()[:, :, None], angle[:, :, None], starts))  # (h, N, J)
        left = torch.view_as_real(outer).permute(0, 2, 3, 1).reshape(channels_n, blocks, -1)
        return torch.matmul(left, right).reshape(channels_n, blocks * block)[:, :length]

    @torch.no_grad()
    def support(self, length: int, channels: slice = ALL) -> int:
        """How many leading kernel entries can be non-zero at this precision: min(length, l*) where the
        slowest state's |lambda|^l* = exp(l* dt lambda_re) reaches eps^2 (float32: 1.4e-14)."""
        slowest = float(self.log_lambda(channels).real.max())  # log|lambda| nearest to 0, < 0
        if slowest >= 0:
            return length
        tiny = torch.finfo(_wide(self.log_dt).dtype).eps ** 2
        return max(1, min(length, math.ceil(math.log(tiny) / slowest) + 1))


def _wide(x: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 -> float32: complex numbers and CPU FFTs need at least single precision."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def ssm_kernel_closed_form(kernel: SSMKernel, length: int) -> torch.Tensor:
    """Reference: k[h, l] = Re(sum_n c[n, h] lambda[h, n]^l b[n, h]) with every power materialised: (H, L)."""
    b, c = kernel.weights()
    powers = torch.exp(kernel.log_lambda()[:, :, None] * torch.arange(length, dtype=kernel.log_dt.dtype))  # (H, N, L)
    return ((c * b)[:, :, None] * powers).sum(1).real


class BiSSM(nn.Module):
    """Bidirectional SSM: causal kernel + anti-causal kernel (own parameters) + skip, by FFT convolution."""

    def __init__(self, channels: int, state_size: int) -> None:
        super().__init__()
        self.causal = SSMKernel(channels, state_size)
        self.anticausal = SSMKernel(channels, state_size)
        self.d = nn.Parameter(torch.empty(channels))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The skip term starts at N(0, 1), as in S4."""
        init.normal_(self.d)

    def forward(self, u: torch.Tensor, channels: slice = ALL) -> torch.Tensor:
        """u: (B, L, h) for the chosen channels -> (B, L, h)."""
        length = u.shape[1]
        k_causal, k_anticausal = self.causal(length, channels), self.anticausal(length, channels)
        y = bissm_fft(u.to(k_causal.dtype), k_causal, k_anticausal, _wide(self.d[channels]))
        return y.to(u.dtype)

    def reference(self, u: torch.Tensor, channels: slice = ALL) -> torch.Tensor:
        """The same output by the explicit recurrences (O(L N H), a Python loop over time; tests only)."""
        return bissm_recurrence(u, self.causal, self.anticausal, self.d, channels)


def bissm_fft(u: torch.Tensor, k_causal: torch.Tensor, k_anticausal: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """y[t] = sum_{s<=t} k_causal[t-s] u[s] + sum_{s>t} k_anticausal[s-t-1] u[s] + d u[t].

    u: (B, L, h); kernels: (h, L); d: (h,). One circular convolution of size n >= 2L - 1: the causal kernel
    fills lags 0..L-1 at the start, the anti-causal one lags -1..-(L-1) at the end (index n - 1 - j), and the
    zero padding keeps the wrap-around from mixing them.
    """
    length = u.shape[1]
    n = fft_size(2 * length)
    gap = k_causal.new_zeros(k_causal.shape[0], n - 2 * length + 1)
    kernel = torch.cat([k_causal, gap, k_anticausal[:, : length - 1].flip(-1)], dim=-1)  # (h, n)
    signal = torch.fft.rfft(u.transpose(1, 2), n=n)  # (B, h, n//2 + 1)
    y = torch.fft.irfft(signal * torch.fft.rfft(kernel, n=n), n=n)[..., :length]  # (B, h, L)
    return y.transpose(1, 2) + u * d


def bissm_recurrence(u: torch.Tensor, causal: SSMKernel, anticausal: SSMKernel, d: torch.Tensor,
                     channels: slice = ALL) -> torch.Tensor:
    """Reference BiSSM: run x[t] = lambda x[t-1] + b u[t] forwards and backwards; u: (B, L, h) -> (B, L, h)."""
    batch, length, width = u.shape
    out = u * d[channels]
    for kernel, times, after in ((causal, range(length), False), (anticausal, reversed(range(length)), True)):
        lam = kernel.log_lambda(channels).exp()  # (h, N)
        b, c = kernel.weights(channels)
        state = torch.zeros(batch, width, kernel.state_size, dtype=lam.dtype, device=u.device)  # (B, h, N)
        outputs = [None] * length
        for t in times:
            if after:  # anti-causal: only tokens strictly after t
                outputs[t] = (state * c).sum(-1).real
            state = lam * state + b * u[:, t, :, None]
            if not after:
                outputs[t] = (state * c).sum(-1).real
        out = out + torch.stack(outputs, dim=1)
    return out
