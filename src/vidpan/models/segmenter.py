"""The per-frame Mask2Former segmenter: normalise + pad, backbone, pixel decoder, masked decoder.

Follows the image path of DVIS++'s meta-architectures (``dvis_Plus/meta_architecture.py``):
frames are normalised with the pixel mean / std, then padded at the bottom and right to a
multiple of ``size_divisibility`` with zeros *after* normalisation (detectron2's
``ImageList.from_tensors`` pads the normalised tensor with ``pad_value=0``), and every frame is
segmented independently. The mask logits stay at 1/4 of the padded size; ``image_size`` records
the unpadded size so post-processing can crop.

The backbone is any module mapping normalised ``[N, 3, H, W]`` frames to a
:class:`~vidpan.structures.FeaturePyramid` (the ViT + ViT-Adapter in this package).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vidpan.config import ModelConfig
from vidpan.errors import InputError
from vidpan.models.pixel_decoder import MSDeformAttnPixelDecoder
from vidpan.models.transformer_decoder import MaskedAttentionDecoder
from vidpan.structures import FeaturePyramid, SegmenterOutput


class Segmenter(nn.Module):
    """Mask2Former segmenter with DVIS++'s re-id embeddings.

    Args:
        backbone: normalised frames [N, 3, H, W] -> :class:`FeaturePyramid`.
        pixel_decoder: :class:`MSDeformAttnPixelDecoder`.
        decoder: :class:`MaskedAttentionDecoder`.
        pixel_mean: per-channel RGB mean in the 0..255 range.
        pixel_std: per-channel RGB std in the 0..255 range.
        size_divisibility: frames are padded to a multiple of this (0 or 1 = no padding).
    """

    def __init__(
        self,
        *,
        backbone: nn.Module,
        pixel_decoder: MSDeformAttnPixelDecoder,
        decoder: MaskedAttentionDecoder,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        size_divisibility: int = 32,
    ) -> None:
        super().__init__()
        if len(pixel_mean) != 3 or len(pixel_std) != 3:
            raise ValueError(f"pixel_mean / pixel_std need 3 values, got {pixel_mean} / {pixel_std}")
        self.backbone = backbone
        self.pixel_decoder = pixel_decoder
        self.decoder = decoder
        self.size_divisibility = size_divisibility
        # Non-persistent: they come from the config, not from checkpoints (as in the reference).
        self.register_buffer(
            "pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(1, 3, 1, 1), False
        )
        self.register_buffer(
            "pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(1, 3, 1, 1), False
        )
        self.pixel_mean: torch.Tensor
        self.pixel_std: torch.Tensor

    def preprocess(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Normalise and zero-pad frames.

        Args:
            images: [N, 3, H, W] RGB, uint8 or float in the 0..255 range.

        Returns:
            the normalised frames [N, 3, H_pad, W_pad] (float32; padding = 0) and (H, W).
        """
        if images.dim() != 4 or images.shape[1] != 3:
            raise InputError(f"images: expected an [N, 3, H, W] RGB tensor, got shape {tuple(images.shape)}")
        if not (images.dtype == torch.uint8 or images.is_floating_point()):
            raise InputError(f"images: expected uint8 or floating-point values, got {images.dtype}")
        n, _, h, w = images.shape
        if n == 0 or h == 0 or w == 0:
            raise InputError(f"images: empty tensor of shape {tuple(images.shape)}")
        x = (images.to(self.pixel_mean.device, torch.float32) - self.pixel_mean) / self.pixel_std
        div = self.size_divisibility
        if div > 1:
            pad_h, pad_w = -h % div, -w % div
            if pad_h or pad_w:
                x = F.pad(x, (0, pad_w, 0, pad_h), value=0.0)
        return x, (int(h), int(w))

    def forward(self, images: torch.Tensor, *, return_aux: bool = True) -> SegmenterOutput:
        """Segment every frame independently.

        Args:
            images: [N, 3, H, W] RGB frames (N = B*T folded), uint8 or float 0..255, any size.
            return_aux: keep the earlier decoder predictions (deep supervision).

        Returns:
            :class:`SegmenterOutput`: class logits [N, Q, K+1], mask logits
            [N, Q, H_pad/4, W_pad/4], embeddings [N, Q, 2C], mask features
            [N, C_mask, H_pad/4, W_pad/4], ``image_size`` = (H, W).
        """
        x, image_size = self.preprocess(images)
        features = self.backbone(x)
        if not isinstance(features, FeaturePyramid):
            raise TypeError(f"the backbone must return a FeaturePyramid, got {type(features).__name__}")
        pixels = self.pixel_decoder(features)
        out = self.decoder(pixels.multi_scale_features, pixels.mask_features, return_aux=return_aux)
        return dataclasses.replace(out, image_size=image_size)


def build_pixel_decoder(model_cfg: ModelConfig, in_channels: int) -> MSDeformAttnPixelDecoder:
    """Pixel decoder from the config; every pyramid level has ``in_channels`` channels."""
    cfg = model_cfg.pixel_decoder
    return MSDeformAttnPixelDecoder(
        in_channels=[in_channels] * 4,
        conv_dim=cfg.conv_dim,
        mask_dim=cfg.mask_dim,
        num_layers=cfg.num_layers,
        num_heads=cfg.num_heads,
        num_points=cfg.num_points,
        dim_feedforward=cfg.dim_feedforward,
        norm_groups=cfg.norm_groups,
    )


def build_transformer_decoder(model_cfg: ModelConfig) -> MaskedAttentionDecoder:
    """Masked-attention decoder from the config (reads the pixel decoder's widths)."""
    cfg = model_cfg.decoder
    return MaskedAttentionDecoder(
        in_channels=model_cfg.pixel_decoder.conv_dim,
        hidden_dim=cfg.hidden_dim,
        num_queries=cfg.num_queries,
        num_classes=model_cfg.num_classes,
        num_heads=cfg.num_heads,
        dim_feedforward=cfg.dim_feedforward,
        num_layers=cfg.num_layers,
        mask_dim=model_cfg.pixel_decoder.mask_dim,
        reid_hidden_dim=cfg.reid_hidden_dim,
        reid_layers=cfg.reid_layers,
        mask_threshold=cfg.mask_attention_threshold,
    )


def build_segmenter(
    model_cfg: ModelConfig, backbone: nn.Module, *, in_channels: int | None = None
) -> Segmenter:
    """Segmenter around ``backbone``.

    ``in_channels`` is the backbone's pyramid width; by default the ViT width, which is what the
    ViT-Adapter outputs at every level.
    """
    channels = model_cfg.vit.embed_dim if in_channels is None else in_channels
    return Segmenter(
        backbone=backbone,
        pixel_decoder=build_pixel_decoder(model_cfg, channels),
        decoder=build_transformer_decoder(model_cfg),
        pixel_mean=model_cfg.pixel_mean,
        pixel_std=model_cfg.pixel_std,
        size_divisibility=model_cfg.size_divisibility,
    )
