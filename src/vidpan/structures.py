"""Typed outputs exchanged between the models (STYLE.md #5, #8).

Shape vocabulary: B batch (videos), T frames, N = B*T frames folded into the batch, Q queries,
C channels, H W input size (padded to a multiple of 32), K classes (+1 no-object logit).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class FeaturePyramid:
    """The one feature contract between backbone and head: four maps at strides 4, 8, 16, 32.

    Every downstream module reads only this. All levels have ``channels`` channels.
    """

    res2: torch.Tensor  # [N, C, H/4, W/4]
    res3: torch.Tensor  # [N, C, H/8, W/8]
    res4: torch.Tensor  # [N, C, H/16, W/16]
    res5: torch.Tensor  # [N, C, H/32, W/32]

    @property
    def channels(self) -> int:
        return int(self.res2.shape[1])

    def levels(self) -> list[torch.Tensor]:
        """[res2, res3, res4, res5]."""
        return [self.res2, self.res3, self.res4, self.res5]


@dataclass
class MaskPrediction:
    """One prediction of the mask decoder (the last layer or an auxiliary one)."""

    class_logits: torch.Tensor  # [N, Q, K+1]
    mask_logits: torch.Tensor  # [N, Q, H/4, W/4]


@dataclass
class SegmenterOutput:
    """Per-frame output of the Mask2Former segmenter (frames folded into N).

    ``embeds`` = [LN(q); reid(LN(q))] is what the tracker matches on (cosine, Hungarian);
    ``embeds_unnormed`` = [q; reid(LN(q))] is the identity / key / value the tracker and the
    refiner read (DVIS++ ``pred_embds`` / ``pred_embds_without_norm``).
    """

    class_logits: torch.Tensor  # [N, Q, K+1] last decoder layer
    mask_logits: torch.Tensor  # [N, Q, H/4, W/4] last decoder layer
    embeds: torch.Tensor  # [N, Q, 2C]
    embeds_unnormed: torch.Tensor  # [N, Q, 2C]
    mask_features: torch.Tensor  # [N, C_mask, H/4, W/4]
    # Earlier predictions for deep supervision: the learnable-query prediction, then layers
    # 1..L-1 (the last layer's prediction is class_logits / mask_logits above).
    aux: tuple[MaskPrediction, ...] = ()


@dataclass
class TrackPrediction:
    """Class and mask predictions of one tracker or refiner layer (slot order = track identity)."""

    class_logits: torch.Tensor  # [B, T, Q, K+1]
    mask_logits: torch.Tensor | None  # [B, T, Q, H/4, W/4]; None when masks were not requested
