"""Batch-first video predictions as the losses read them (tracker, refiner, or an unfolded segmenter).

The tracker and refiner produce [B, T, Q, ...] class and mask logits plus one entry per earlier
decoder layer; the segmenter's frame-folded [N, Q, ...] output (N = B*T) is unfolded with
:meth:`VideoMaskPrediction.from_frames`. DVIS++ keeps the (B, Q, T, h, w) mask layout; vidpan is
batch-first everywhere, so conversions happen in the model adapters, not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from vidpan.structures import MaskPrediction, SegmenterOutput


@dataclass
class VideoMaskPrediction:
    """Batch-first predictions of a video model (tracker / refiner), or a segmenter's unfolded.

    ``aux`` holds the earlier (deeply supervised) predictions in the same layout, first layer first.
    """

    class_logits: torch.Tensor  # [B, T, Q, K+1]
    mask_logits: torch.Tensor  # [B, T, Q, h, w] at 1/4 of the (padded) input
    aux: tuple[VideoMaskPrediction, ...] = ()

    @classmethod
    def from_frames(cls, pred: SegmenterOutput | MaskPrediction, batch_size: int) -> VideoMaskPrediction:
        """Unfold frame-folded predictions ([N, ...], N = B*T, b-major) into [B, T, ...]."""
        n = pred.class_logits.shape[0]
        if n % batch_size:
            raise ValueError(f"{n} frames cannot be split into {batch_size} clips")
        aux = pred.aux if isinstance(pred, SegmenterOutput) else ()
        return cls(
            class_logits=pred.class_logits.unflatten(0, (batch_size, n // batch_size)),
            mask_logits=pred.mask_logits.unflatten(0, (batch_size, n // batch_size)),
            aux=tuple(cls.from_frames(a, batch_size) for a in aux),
        )

    def layers(self) -> list[VideoMaskPrediction]:
        """[final, aux0, aux1, ...] (the loss order of the reference)."""
        return [self, *self.aux]


def video_class_logits(class_logits: torch.Tensor, reduce: Literal["first", "mean"]) -> torch.Tensor:
    """One class vector per video and query: [B, T, Q, K+1] -> [B, Q, K+1].

    "first" for the refiner (its vector is repeated over T; DVIS++ takes frame 0), "mean" for the
    frozen tracker's per-frame logits (DVIS++ offline first-half matching).
    """
    if reduce == "first":
        return class_logits[:, 0]
    if reduce == "mean":
        return class_logits.mean(dim=1)
    raise ValueError(f"reduce must be 'first' or 'mean', got {reduce!r}")
