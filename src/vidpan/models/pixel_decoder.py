"""Mask2Former's multi-scale deformable-attention pixel decoder.

Follows ``MSDeformAttnPixelDecoder`` of Mask2Former (``mask2former/modeling/pixel_decoder/
msdeformattn.py``, unchanged in DVIS++) with its fixed VPS configuration: the deformable encoder
reads res3..res5, one FPN level adds res2, and everything runs in float32 (the reference disables
autocast here because deformable attention is not half-precision safe).

1. ``input_proj[i]`` (1x1 conv + GroupNorm) projects res5, res4, res3 (coarse to fine) to
   ``conv_dim``; each level gets a sine position encoding of its own size plus ``level_embed[i]``.
2. ``num_layers`` deformable encoder layers run self-attention over the three levels flattened
   in that order (reference points = pixel centres of each token's own level; no padding mask,
   so the reference's ``valid_ratios`` are all 1 and drop out), each followed by a ReLU FFN;
   residual + LayerNorm after both (post-norm).
3. FPN at stride 4: ``adapter_1`` (1x1 conv, no bias, GN) on res2 plus the bilinearly upsampled
   stride-8 encoder output, then ``layer_1`` (3x3 conv, no bias, GN, ReLU).
4. ``mask_features`` (1x1 conv) turns the stride-4 map into the mask features.

Parameter names equal the reference's (``input_proj.{0,1,2}.{0,1}``, ``transformer.level_embed``,
``transformer.encoder.layers.{i}.{self_attn,norm1,linear1,linear2,norm2}``,
``adapter_1.{weight,norm}``, ``layer_1.{weight,norm}``, ``mask_features``), so a DVIS++ checkpoint
maps onto this module by stripping the ``sem_seg_head.pixel_decoder.`` prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vidpan.layers.position_encoding import sine_position_encoding
from vidpan.ops.linear import Linear, linear, pointwise_conv
from vidpan.ops.ms_deform_attn import MSDeformAttn
from vidpan.ops.resize import resize_bilinear
from vidpan.structures import FeaturePyramid

NUM_ENCODER_LEVELS = 3  # res3, res4, res5 (the reference's DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES)


@dataclass
class PixelDecoderOutput:
    """What the pixel decoder hands to the masked-attention decoder (all float32)."""

    mask_features: torch.Tensor  # [N, C_mask, H/4, W/4]
    # The deformable encoder's outputs, coarse to fine: [N, C, H/32, W/32], [N, C, H/16, W/16],
    # [N, C, H/8, W/8] (the order the transformer decoder cycles through).
    multi_scale_features: tuple[torch.Tensor, ...]


class ConvNorm(nn.Conv2d):
    """Conv2d followed by a norm and an optional ReLU (detectron2 ``Conv2d(norm=, activation=)``).

    Kept as a Conv2d subclass so the parameter names are ``weight`` and ``norm.*``, as in the
    reference checkpoints.
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, kernel_size: int, norm: nn.Module, relu: bool
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.norm = norm
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C_in, H, W] -> [N, C_out, H, W] (a 1x1 conv as a channel product, channels-last out)."""
        if self.kernel_size == (1, 1) and self.groups == 1:
            x = self.norm(pointwise_conv(x, self.weight, self.bias))
        else:
            x = self.norm(super().forward(x))
        return F.relu(x, inplace=True) if self.relu else x  # x is the norm's fresh output


class DeformableEncoderLayer(nn.Module):
    """Post-norm layer: deformable self-attention over all levels, then a ReLU FFN."""

    def __init__(self, *, dim: int, num_levels: int, num_heads: int, num_points: int, dim_feedforward: int):
        super().__init__()
        self.self_attn = MSDeformAttn(
            dim=dim, num_levels=num_levels, num_heads=num_heads, num_points=num_points
        )
        self.norm1 = nn.LayerNorm(dim)
        self.linear1 = Linear(dim, dim_feedforward)
        self.linear2 = Linear(dim_feedforward, dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(
        self,
        x: torch.Tensor,
        pos: torch.Tensor,
        reference_points: torch.Tensor,
        spatial_shapes: list[tuple[int, int]],
    ) -> torch.Tensor:
        """x: [N, S, C] (S tokens of all levels); pos: [1, S, C]; reference_points: [N, S, L, 2]."""
        # Residual adds and the FFN's ReLU are fused into the products where the op allows.
        x = self.norm1(self.self_attn(x + pos, reference_points, x, spatial_shapes, residual=x))
        hidden = linear(x, self.linear1.weight, self.linear1.bias, relu=True)
        return self.norm2(linear(hidden, self.linear2.weight, self.linear2.bias, residual=x))


def encoder_reference_points(spatial_shapes: list[tuple[int, int]], device: torch.device) -> torch.Tensor:
    """Normalised (x, y) pixel centres of every token at its own level, ``[1, S, L, 2]``.

    Every token uses the same normalised point on all L levels (the reference multiplies by
    ``valid_ratios``, which are 1 without padding masks).
    """
    points = []
    for h, w in spatial_shapes:
        # linspace(0.5, h-0.5, h) / h as the reference does (not arange + 0.5) for bit-equality.
        ys = torch.linspace(0.5, h - 0.5, h, dtype=torch.float32, device=device) / h
        xs = torch.linspace(0.5, w - 0.5, w, dtype=torch.float32, device=device) / w
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack((grid_x.reshape(-1), grid_y.reshape(-1)), -1))  # [h*w, 2]
    ref = torch.cat(points, 0)  # [S, 2]
    return ref[None, :, None, :].expand(1, -1, len(spatial_shapes), 2)


class DeformableEncoder(nn.Module):
    """A stack of :class:`DeformableEncoderLayer` (reference ``MSDeformAttnTransformerEncoder``)."""

    def __init__(
        self,
        *,
        num_layers: int,
        dim: int,
        num_levels: int,
        num_heads: int,
        num_points: int,
        dim_feedforward: int,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DeformableEncoderLayer(
                dim=dim,
                num_levels=num_levels,
                num_heads=num_heads,
                num_points=num_points,
                dim_feedforward=dim_feedforward,
            )
            for _ in range(num_layers)
        )

    def forward(
        self, x: torch.Tensor, pos: torch.Tensor, spatial_shapes: list[tuple[int, int]]
    ) -> torch.Tensor:
        """x: [N, S, C], pos: [1, S, C] (same for every frame) -> [N, S, C]."""
        reference_points = encoder_reference_points(spatial_shapes, x.device).expand(x.shape[0], -1, -1, -1)
        for layer in self.layers:
            x = layer(x, pos, reference_points, spatial_shapes)
        return x


class DeformableTransformer(nn.Module):
    """Flattens the levels, adds position + level embeddings and runs the deformable encoder.

    (Reference ``MSDeformAttnTransformerEncoderOnly``; only there to keep the parameter names
    ``transformer.level_embed`` and ``transformer.encoder.layers.*``.)
    """

    def __init__(
        self,
        *,
        num_layers: int,
        dim: int,
        num_levels: int,
        num_heads: int,
        num_points: int,
        dim_feedforward: int,
    ) -> None:
        super().__init__()
        self.level_embed = nn.Parameter(torch.empty(num_levels, dim))
        nn.init.normal_(self.level_embed)
        self.encoder = DeformableEncoder(
            num_layers=num_layers,
            dim=dim,
            num_levels=num_levels,
            num_heads=num_heads,
            num_points=num_points,
            dim_feedforward=dim_feedforward,
        )

    def forward(self, maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """maps: L tensors [N, C, h_l, w_l] -> L tensors of the same shapes."""
        n, c = maps[0].shape[:2]
        spatial_shapes = [(int(m.shape[2]), int(m.shape[3])) for m in maps]
        tokens, pos = [], []
        for level, m in enumerate(maps):
            h, w = spatial_shapes[level]
            tokens.append(m.flatten(2).transpose(1, 2))  # [N, C, h, w] -> [N, h*w, C]
            level_pos = sine_position_encoding(1, h, w, num_pos_feats=c // 2, device=m.device)
            pos.append(level_pos.flatten(2).transpose(1, 2) + self.level_embed[level])
        out = self.encoder(torch.cat(tokens, 1), torch.cat(pos, 1), spatial_shapes)
        # [N, S, C] -> per level [N, C, h_l, w_l]
        chunks = out.split([h * w for h, w in spatial_shapes], dim=1)
        return [
            z.transpose(1, 2).reshape(n, c, h, w) for z, (h, w) in zip(chunks, spatial_shapes, strict=True)
        ]


class MSDeformAttnPixelDecoder(nn.Module):
    """Multi-scale deformable-attention pixel decoder (Mask2Former).

    Args:
        in_channels: channels of res2, res3, res4, res5 (in that order).
        conv_dim: width of the encoder and of the multi-scale features.
        mask_dim: width of the mask features.
        num_layers: deformable encoder layers.
        num_heads: deformable attention heads.
        num_points: sampling points per head and level.
        dim_feedforward: encoder FFN width (the reference hard-codes 1024).
        norm_groups: GroupNorm groups of every conv norm.
    """

    def __init__(
        self,
        *,
        in_channels: Sequence[int],
        conv_dim: int = 256,
        mask_dim: int = 256,
        num_layers: int = 6,
        num_heads: int = 8,
        num_points: int = 4,
        dim_feedforward: int = 1024,
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f"in_channels must list res2..res5 (4 values), got {list(in_channels)}")
        res2_ch, *encoder_ch = in_channels
        # Coarse to fine: res5, res4, res3.
        self.input_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(ch, conv_dim, kernel_size=1), nn.GroupNorm(norm_groups, conv_dim))
            for ch in reversed(encoder_ch)
        )
        self.transformer = DeformableTransformer(
            num_layers=num_layers,
            dim=conv_dim,
            num_levels=NUM_ENCODER_LEVELS,
            num_heads=num_heads,
            num_points=num_points,
            dim_feedforward=dim_feedforward,
        )
        self.adapter_1 = ConvNorm(
            res2_ch, conv_dim, kernel_size=1, norm=nn.GroupNorm(norm_groups, conv_dim), relu=False
        )
        self.layer_1 = ConvNorm(
            conv_dim, conv_dim, kernel_size=3, norm=nn.GroupNorm(norm_groups, conv_dim), relu=True
        )
        self.mask_features = nn.Conv2d(conv_dim, mask_dim, kernel_size=1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The reference init: xavier for the projections, ``c2_xavier_fill`` for FPN convs."""
        for m in self.input_proj.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight, gain=1)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for p in self.transformer.encoder.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.transformer.encoder.modules():
            if isinstance(m, MSDeformAttn):
                m.reset_parameters()
        # c2_xavier_fill = kaiming_uniform with a=1, zero bias.
        for conv in (self.adapter_1, self.layer_1, self.mask_features):
            nn.init.kaiming_uniform_(conv.weight, a=1)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)

    def forward(self, features: FeaturePyramid) -> PixelDecoderOutput:
        """features: res2..res5 [N, C_in, H/4..H/32, W/4..W/32] -> :class:`PixelDecoderOutput`.

        Always computes in float32 (autocast disabled), whatever the input dtype.
        """
        device_type = features.res2.device.type
        with torch.autocast(device_type=device_type, enabled=False):
            coarse_to_fine = (features.res5, features.res4, features.res3)
            # The input projections stay torch convolutions: as channel products their summation
            # order flipped one pixel of the DVIS++ fixture's final panoptic map (a near-tie), and
            # panoptic ids must stay identical to the reference.
            projected = [proj(x.float()) for proj, x in zip(self.input_proj, coarse_to_fine, strict=True)]
            encoded = self.transformer(projected)  # [1/32, 1/16, 1/8]
            lateral = self.adapter_1(features.res2.float())
            up = resize_bilinear(encoded[-1], lateral.shape[-2:])  # = F.interpolate, no layout copy
            stride4 = self.layer_1(lateral.add_(up))  # lateral: the norm's fresh output
            mask_features = pointwise_conv(stride4, self.mask_features.weight, self.mask_features.bias)
            return PixelDecoderOutput(
                mask_features=mask_features.contiguous(), multi_scale_features=tuple(encoded)
            )
