"""LOCOST's SSM kernel and BiSSM: the FFT path against the closed form and the explicit recurrence."""

from __future__ import annotations

import math

import pytest
import torch

from qfsum.models.locost.ssm import ALL, BiSSM, SSMKernel, bissm_fft, fft_size, ssm_kernel_closed_form


@pytest.fixture
def bissm() -> BiSSM:
    torch.manual_seed(0)
    return BiSSM(channels=5, state_size=7).double()


def test_initialisation_follows_the_paper():
    kernel = SSMKernel(channels=4, state_size=6)
    lam = kernel.log_lambda()
    dt = kernel.log_dt.exp()
    assert torch.all((dt > 0) & (dt <= 1))
    assert torch.allclose(lam.real, -0.5 * dt[:, None].expand(4, 6))
    assert torch.allclose(lam.imag, math.pi * torch.arange(6.0) * dt[:, None])


@pytest.mark.parametrize("length", [1, 2, 17, 100, 257])
def test_block_vandermonde_kernel_matches_its_closed_form(bissm, length):
    for kernel in (bissm.causal, bissm.anticausal):
        fast = kernel(length)
        assert fast.shape == (5, length)
        torch.testing.assert_close(fast, ssm_kernel_closed_form(kernel, length), rtol=0, atol=1e-10)


def test_kernel_of_a_channel_slice_is_that_slice_of_the_kernel(bissm):
    torch.testing.assert_close(bissm.causal(30, slice(1, 4)), bissm.causal(30)[1:4])


@pytest.mark.parametrize("length", [1, 2, 3, 8, 13, 31, 64, 100])
def test_fft_bissm_equals_the_explicit_recurrence(bissm, length):
    u = torch.randn(2, length, 5, dtype=torch.float64)
    torch.testing.assert_close(bissm(u), bissm.reference(u), rtol=0, atol=1e-4)


@pytest.mark.parametrize("direction", ["causal", "anticausal"])
def test_each_direction_alone_equals_its_recurrence(bissm, direction):
    # Silence the other direction and the skip: each half must match on its own, not only the sum.
    other = bissm.anticausal if direction == "causal" else bissm.causal
    with torch.no_grad():
        other.c.zero_()
        bissm.d.zero_()
    u = torch.randn(1, 23, 5, dtype=torch.float64)
    y = bissm(u)
    torch.testing.assert_close(y, bissm.reference(u), rtol=0, atol=1e-4)
    assert y.abs().max() > 1e-3


def test_causal_part_ignores_the_future_and_anticausal_part_the_past(bissm):
    with torch.no_grad():
        bissm.anticausal.c.zero_()
    u = torch.randn(1, 20, 5, dtype=torch.float64)
    changed = u.clone()
    changed[:, 12:] += 1.0
    torch.testing.assert_close(bissm(u)[:, :12], bissm(changed)[:, :12])
    assert not torch.allclose(bissm(u)[:, 12:], bissm(changed)[:, 12:])


def test_channel_chunks_give_the_whole_output(bissm):
    u = torch.randn(2, 19, 5, dtype=torch.float64)
    chunks = [bissm(u[..., s], s) for s in (slice(0, 2), slice(2, 5))]
    torch.testing.assert_close(torch.cat(chunks, -1), bissm(u, ALL))


def test_float32_path_stays_close_to_float64():
    torch.manual_seed(1)
    model = BiSSM(8, 16)
    u = torch.randn(1, 300, 8)
    y32 = model(u)
    y64 = model.double()(u.double())
    assert (y32.double() - y64).abs().max() / y64.abs().max() < 1e-4


def test_gradients_reach_every_ssm_parameter(bissm):
    u = torch.randn(2, 11, 5, dtype=torch.float64, requires_grad=True)
    bissm(u).pow(2).sum().backward()
    for name, param in bissm.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert u.grad.abs().sum() > 0


def test_bissm_fft_with_delta_kernels_shifts_the_input():
    # k_causal = delta at lag 1, no anti-causal part, no skip: y[t] = u[t-1].
    u = torch.arange(1.0, 7.0).reshape(1, 6, 1)
    k = torch.zeros(1, 6)
    k[0, 1] = 1
    y = bissm_fft(u, k, torch.zeros(1, 6), torch.zeros(1))
    torch.testing.assert_close(y.flatten(), torch.tensor([0.0, 1, 2, 3, 4, 5]), atol=1e-6, rtol=0)
    # anti-causal delta at lag -1 (index 0): y[t] = u[t+1].
    y = bissm_fft(u, torch.zeros(1, 6), k.roll(-1, -1), torch.zeros(1))
    torch.testing.assert_close(y.flatten(), torch.tensor([2.0, 3, 4, 5, 6, 0]), atol=1e-6, rtol=0)


@pytest.mark.parametrize("minimum,expected", [(1, 1), (7, 8), (11, 12), (13, 15), (97, 100), (1025, 1080)])
def test_fft_size_is_the_next_5_smooth_number(minimum, expected):
    assert fft_size(minimum) == expected


def test_kernel_past_its_support_is_zero_and_still_matches_the_closed_form():
    torch.manual_seed(2)
    kernel = SSMKernel(channels=3, state_size=5).double()
    with torch.no_grad():
        kernel.log_dt.fill_(0.0)  # dt = 1: |lambda| = exp(-1/2), below eps^2 (float64) after ~145 steps
    support = kernel.support(400)
    assert 100 < support < 200
    fast = kernel(400)
    assert torch.all(fast[:, support:] == 0)
    torch.testing.assert_close(fast, ssm_kernel_closed_form(kernel, 400), rtol=0, atol=1e-12)


def test_bfloat16_parameters_compute_in_float32_and_return_bfloat16():
    torch.manual_seed(3)
    model = BiSSM(4, 6)
    u = torch.randn(1, 9, 4)
    reference = model(u)
    y = model.to(torch.bfloat16)(u.to(torch.bfloat16))
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), reference, atol=0.1, rtol=0.05)


def test_kernel_built_a_few_channels_at_a_time_is_the_same(monkeypatch, bissm):
    whole = bissm.causal(50)
    monkeypatch.setattr("qfsum.models.locost.ssm.KERNEL_CHUNK", 7 * 16)  # 1 channel per piece at T + J = 16
    torch.testing.assert_close(bissm.causal(50), whole)
    torch.testing.assert_close(bissm.causal(50, slice(1, 4)), whole[1:4])
