"""2-D sine position encoding (DETR / Mask2Former ``PositionEmbeddingSine``, normalised)."""

from __future__ import annotations

import math

import torch


def sine_position_encoding(
    batch: int,
    height: int,
    width: int,
    *,
    num_pos_feats: int,
    temperature: float = 10000.0,
    normalize: bool = True,
    scale: float = 2 * math.pi,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Sine/cosine encoding of pixel positions, ``[B, 2*num_pos_feats, H, W]`` (y features first).

    Equal to Mask2Former's ``PositionEmbeddingSine(num_pos_feats, normalize=True)`` with no
    padding mask: cumulative coordinates 1..H / 1..W, normalised by (last + 1e-6) and scaled by
    ``scale``; channel pairs interleave sin and cos.
    """
    y = torch.arange(1, height + 1, dtype=torch.float32, device=device).view(1, height, 1)
    x = torch.arange(1, width + 1, dtype=torch.float32, device=device).view(1, 1, width)
    y = y.expand(batch, height, width)
    x = x.expand(batch, height, width)
    if normalize:
        eps = 1e-6
        y = y / (height + eps) * scale
        x = x / (width + eps) * scale
    dim_t = torch.arange(num_pos_feats, dtype=torch.float32, device=device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_pos_feats)
    pos_x = x[:, :, :, None] / dim_t  # [B, H, W, F]
    pos_y = y[:, :, :, None] / dim_t
    pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2).to(dtype)  # [B, 2F, H, W]
