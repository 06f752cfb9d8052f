"""Bilinear resize of channels-last feature maps without PyTorch's hidden layout copy.

``F.interpolate(x, mode="bilinear")`` on a channels-last view of a token sequence (the usual
``tokens.transpose(1, 2).reshape(N, C, h, w)``, batch 1) runs the vectorised channels-last kernel
but allocates a contiguous (NCHW) output, so the kernel's result is transposed into it: for
[1, 384, 30, 40] -> 120x160 that copy is 95 % of the 120 ms call. Writing into a channels-last
output instead takes 2.5 ms and gives the same values bit for bit (the kernel and its arithmetic
are the same; only the destination layout differs). :func:`resize_bilinear` does that where it
is exact and falls back to ``F.interpolate`` elsewhere (gradients, other layouts).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.interpolate(x, size, mode="bilinear", align_corners=False)``, same values.

    Args:
        x: [N, C, h, w] float.
        size: output (H, W).

    Returns:
        [N, C, H, W]; channels-last when ``x`` is channels-last contiguous and no gradient is
        needed (then written directly in that layout), otherwise what ``F.interpolate`` returns.
    """
    if (
        x.dim() != 4
        or x.shape[1] == 1
        or not x.is_contiguous(memory_format=torch.channels_last)
        or x.is_contiguous()
        or (torch.is_grad_enabled() and x.requires_grad)
    ):
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    out = torch.empty(
        (x.shape[0], x.shape[1], *size), dtype=x.dtype, device=x.device, memory_format=torch.channels_last
    )
    return torch.ops.aten.upsample_bilinear2d.out(x, list(size), False, None, None, out=out)
