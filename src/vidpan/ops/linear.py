"""Linear layers with a oneDNN fast path for CPU float32 inference.

PyTorch runs a float32 ``F.linear`` on CPU through MKL's SGEMM. On AMD CPUs MKL does not take its
fastest code path, and the same product through oneDNN (``torch.ops.mkldnn._linear_pointwise``,
the op ``torch.compile`` uses for CPU linears) is about 2x faster on this project's reference
machine (AMD EPYC, AVX-512; every shape of the DVIS++ speed anchor measured 1.6-2.5x). Both
compute in float32 with float32 accumulation; they differ only in summation order (~1e-6
relative).

The fast path is taken only where it is a pure speed-up with the same semantics (STYLE.md #7):

- CPU tensors, input and weight in float32, autocast off (under autocast ``F.linear`` casts to the
  autocast dtype, which this op would bypass);
- no gradient is needed (the op has no backward): ``torch.no_grad``/``inference_mode``, or
  neither the input nor the parameters require grad (frozen modules);
- the op exists and runs in this PyTorch build (probed once, on first use, silently).

``VIDPAN_LINEAR=torch`` selects ``F.linear`` everywhere (the reference path); the choice is
made in :func:`linear` only, and tests check both paths agree.
"""

from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F
from torch import nn

IMPLS = ("onednn", "torch")
IMPL = os.environ.get("VIDPAN_LINEAR", "onednn")
if IMPL not in IMPLS:
    IMPL = "onednn"


@functools.cache
def onednn_available() -> bool:
    """Whether ``torch.ops.mkldnn._linear_pointwise`` exists and agrees with ``F.linear`` here."""
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        op = torch.ops.mkldnn._linear_pointwise
        x = torch.linspace(-1.0, 1.0, 24).view(3, 8)
        w = torch.linspace(-0.5, 0.5, 40).view(5, 8)
        b = torch.linspace(0.0, 1.0, 5)
        with torch.no_grad():
            out = op(x, w, b, "none", [], "")
        return bool(torch.allclose(out, F.linear(x, w, b), atol=1e-5, rtol=1e-5))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


def _use_onednn(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    if IMPL != "onednn" or x.device.type != "cpu" or weight.device.type != "cpu":
        return False
    if x.dtype != torch.float32 or weight.dtype != torch.float32:
        return False
    if bias is not None and bias.dtype != torch.float32:
        return False
    if torch.is_autocast_enabled("cpu"):
        return False
    needs_grad = x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    if torch.is_grad_enabled() and needs_grad:
        return False
    return onednn_available()


def linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    relu: bool = False,
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """``F.linear`` (``x @ weight.T + bias``), through oneDNN where that is safe (module docstring).

    Args:
        x: [..., C_in].
        weight: [C_out, C_in].
        bias: [C_out] or None.
        relu: apply a ReLU to the result (fused into the product on the oneDNN path).
        residual: [..., C_out] added to the result (fused on the oneDNN path); not with ``relu``.

    Returns:
        [..., C_out]: ``relu(x @ weight.T + bias)`` or ``(x @ weight.T + bias) + residual``.
    """
    if relu and residual is not None:
        raise ValueError("linear: relu and residual cannot be combined")
    if _use_onednn(x, weight, bias) and (residual is None or _fusable_residual(residual, x, weight)):
        if residual is not None:
            return torch.ops.mkldnn._linear_pointwise.binary(x, residual, weight, bias, "add")
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "relu" if relu else "none", [], "")
    out = F.linear(x, weight, bias)
    if relu:
        return F.relu(out)
    return out if residual is None else out + residual


def _fusable_residual(residual: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> bool:
    """oneDNN's fused add wants a float32 CPU tensor of exactly the output's shape."""
    return (
        residual.device.type == "cpu"
        and residual.dtype == torch.float32
        and not residual.requires_grad
        and residual.shape == (*x.shape[:-1], weight.shape[0])
        and residual.is_contiguous()
    )


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters, init and state-dict keys) whose forward uses :func:`linear`."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """[..., C_in] -> [..., C_out]."""
        return linear(input, self.weight, self.bias)


def pointwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """A 1x1 ``Conv2d`` as :func:`linear` over the channels (same values up to summation order).

    Args:
        x: [N, C_in, H, W], any memory format (channels-last input is read without a copy).
        weight: [C_out, C_in, 1, 1].
        bias: [C_out] or None.

    Returns:
        [N, C_out, H, W] in channels-last memory format. PyTorch runs a float32 1x1 conv on CPU
        through its slow im2col path; the oneDNN product is ~2x faster (module docstring).
    """
    out = linear(x.permute(0, 2, 3, 1), weight.flatten(1), bias)  # [N, H, W, C_out]
    return out.permute(0, 3, 1, 2)


def transposed_conv2x2(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, size: tuple[int, int]
) -> torch.Tensor:
    """``ConvTranspose2d(kernel_size=2, stride=2)`` of a token sequence, as one product.

    Every input pixel maps onto its own 2x2 output block, so the transposed conv is a linear map
    C_in -> (2, 2, C_out) followed by a pixel shuffle: the same sums as PyTorch's op (which on
    CPU runs 2.5x slower in NCHW).

    Args:
        x: [N, h*w, C_in] tokens of an (h, w) map, row-major.
        weight: [C_in, C_out, 2, 2] (``ConvTranspose2d.weight``).
        bias: [C_out] or None.
        size: (h, w).

    Returns:
        [N, C_out, 2h, 2w] in channels-last memory format.
    """
    n = x.shape[0]
    h, w = size
    c_out = weight.shape[1]
    flat = weight.permute(2, 3, 1, 0).reshape(4 * c_out, weight.shape[0])  # rows (a, b, o)
    out = linear(x, flat, None if bias is None else bias.repeat(4))  # [N, h*w, 2*2*C_out]
    # [N, h, w, a, b, C] -> [N, h, a, w, b, C] = [N, 2h, 2w, C]
    out = out.view(n, h, w, 2, 2, c_out).permute(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * w, c_out)
    return out.permute(0, 3, 1, 2)
