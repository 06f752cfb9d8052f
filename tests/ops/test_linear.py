"""Linear with the oneDNN fast path: equal to ``F.linear``, taken only where it is safe."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vidpan.ops import linear as lin
from vidpan.ops.linear import Linear, linear, onednn_available


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record, per call of :func:`linear`, whether the oneDNN path was chosen."""
    calls: list[bool] = []
    choose = lin._use_onednn

    def spy(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
        calls.append(choose(x, weight, bias))
        return calls[-1]

    monkeypatch.setattr(lin, "_use_onednn", spy)
    return calls


def test_onednn_is_available_in_builds_with_mkldnn() -> None:
    # The probe must not hide the fast path on the build this project pins (torch CPU wheel).
    assert onednn_available() == torch.backends.mkldnn.is_available()


@pytest.mark.parametrize(
    "shape,bias",
    [((7, 16), True), ((2, 5, 16), True), ((2, 3, 4, 16), False), ((300, 16), True)],
)
def test_fast_path_equals_f_linear(
    monkeypatch: pytest.MonkeyPatch, shape: tuple[int, ...], bias: bool
) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g)
    w = torch.randn(24, 16, generator=g)
    b = torch.randn(24, generator=g) if bias else None
    calls = _spy(monkeypatch)
    with torch.no_grad():
        out = linear(x, w, b)
    assert calls == [onednn_available()]
    assert out.shape == (*shape[:-1], 24) and out.dtype == torch.float32
    torch.testing.assert_close(out, F.linear(x, w, b), atol=1e-5, rtol=1e-5)


def test_fast_path_accepts_non_contiguous_input() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 40, generator=g).t()  # [40, 16], strided
    w = torch.randn(8, 16, generator=g)
    with torch.inference_mode():
        out = linear(x, w)
    torch.testing.assert_close(out, F.linear(x, w), atol=1e-5, rtol=1e-5)


def test_gradients_use_f_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = Linear(6, 4)
    x = torch.randn(3, 6, requires_grad=True)
    calls = _spy(monkeypatch)
    layer(x).sum().backward()
    assert calls == [False]
    assert x.grad is not None and layer.weight.grad is not None
    torch.testing.assert_close(layer.weight.grad, torch.ones(4, 1) * x.detach().sum(0))


def test_frozen_module_takes_the_fast_path_with_grad_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = Linear(6, 4).requires_grad_(False)
    calls = _spy(monkeypatch)
    layer(torch.randn(3, 6))
    assert calls == [onednn_available()]


def test_autocast_and_other_dtypes_use_f_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = Linear(6, 4)
    calls = _spy(monkeypatch)
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert layer(torch.randn(3, 6)).dtype == torch.bfloat16
        assert layer.double()(torch.randn(3, 6, dtype=torch.float64)).dtype == torch.float64
    assert calls == [False, False]


def test_env_switch_selects_the_reference_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lin, "IMPL", "torch")
    calls = _spy(monkeypatch)
    x, w = torch.randn(5, 8), torch.randn(3, 8)
    with torch.no_grad():
        torch.testing.assert_close(linear(x, w), F.linear(x, w), atol=0, rtol=0)
    assert calls == [False]


def test_linear_keeps_nn_linear_parameters_and_keys() -> None:
    torch.manual_seed(0)
    ours = Linear(5, 3, bias=False)
    torch.manual_seed(0)
    theirs = nn.Linear(5, 3, bias=False)
    assert isinstance(ours, nn.Linear)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    torch.testing.assert_close(ours.weight, theirs.weight, atol=0, rtol=0)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(7, 16), (2, 5, 16)])
def test_fused_relu_and_residual_equal_the_unfused_ops(shape: tuple[int, ...], bias: bool) -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(*shape, generator=g)
    w = torch.randn(24, 16, generator=g)
    b = torch.randn(24, generator=g) if bias else None
    residual = torch.randn(*shape[:-1], 24, generator=g)
    with torch.inference_mode():
        torch.testing.assert_close(
            linear(x, w, b, relu=True), F.relu(F.linear(x, w, b)), atol=1e-5, rtol=1e-5
        )
        got = linear(x, w, b, residual=residual)
        torch.testing.assert_close(got, F.linear(x, w, b) + residual, atol=1e-5, rtol=1e-5)
        # A residual of another shape or layout takes the unfused path, same values.
        strided = residual.transpose(0, -1).contiguous().transpose(0, -1)
        torch.testing.assert_close(linear(x, w, b, residual=strided), F.linear(x, w, b) + residual)
    with pytest.raises(ValueError, match="cannot be combined"):
        linear(x, w, b, relu=True, residual=residual)


def test_pointwise_conv_equals_conv2d() -> None:
    g = torch.Generator().manual_seed(4)
    conv = nn.Conv2d(16, 12, kernel_size=1)
    x = torch.randn(2, 16, 5, 7, generator=g)
    with torch.inference_mode():
        got = lin.pointwise_conv(x, conv.weight, conv.bias)
        torch.testing.assert_close(got, conv(x), atol=1e-5, rtol=1e-5)
        assert got.is_contiguous(memory_format=torch.channels_last)
        cl = x.contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(lin.pointwise_conv(cl, conv.weight, None), F.conv2d(x, conv.weight))


@pytest.mark.parametrize("bias", [True, False])
def test_transposed_conv2x2_equals_conv_transpose2d(bias: bool) -> None:
    g = torch.Generator().manual_seed(5)
    up = nn.ConvTranspose2d(16, 12, kernel_size=2, stride=2, bias=bias)
    x = torch.randn(2, 16, 5, 7, generator=g)
    tokens = x.flatten(2).transpose(1, 2)  # [N, h*w, C]
    with torch.inference_mode():
        got = lin.transposed_conv2x2(tokens, up.weight, up.bias, (5, 7))
        torch.testing.assert_close(got, up(x), atol=1e-5, rtol=1e-5)
    # Differentiable (training path through F.linear).
    x.requires_grad_(True)
    lin.transposed_conv2x2(x.flatten(2).transpose(1, 2), up.weight, up.bias, (5, 7)).sum().backward()
    assert x.grad is not None and up.weight.grad is not None
