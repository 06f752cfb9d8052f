"""Typed outputs exchanged between the models (STYLE.md #5, #8).

Shape vocabulary: B batch (videos), T frames, N = B*T frames folded into the batch, Q queries,
C channels, H W input size (padded to a multiple of 32), K classes (+1 no-object logit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
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
    # (H, W) of the frames before padding to the size divisibility; the mask logits cover the
    # padded size (H_pad/4, W_pad/4), so post-processing upsamples by 4 and crops to this.
    # None when the decoder is run on its own (no image seen).
    image_size: tuple[int, int] | None = None


@dataclass
class Segment:
    """One predicted segment of a video (the same id in every frame it appears in)."""

    id: int  # segment id in the panoptic maps (> 0)
    category_id: int  # model class space: things 0..num_things-1, then stuff
    isthing: bool
    score: float
    track: int  # the query / track slot the segment comes from


@dataclass
class PanopticFrame:
    """Panoptic result of one frame, at the original video resolution."""

    index: int  # frame index in the video
    segment_ids: np.ndarray  # [H, W] int32, 0 = void
    segments: list[Segment]  # the segments present in this frame

    def to_hf(self) -> Any:  # transformers-style dict / tensor, ids stable over the video
        from vidpan.inference.interop import to_hf

        return to_hf(self)

    def to_supervision(self, class_names: Sequence[str] | None = None) -> Any:  # supervision.Detections
        from vidpan.inference.interop import to_supervision

        return to_supervision(self, class_names=class_names)


@dataclass
class InstanceFrame:
    """VIS result of one frame: possibly overlapping binary masks, one per (track, class) pair."""

    index: int
    masks: np.ndarray  # [N, H, W] bool, row n belongs to instances[n]
    instances: list[Segment]  # the same list (ids, classes, scores) for every frame of a video

    def to_hf(self) -> Any:  # transformers-style dict / tensor, ids stable over the video
        from vidpan.inference.interop import to_hf

        return to_hf(self)

    def to_supervision(self, class_names: Sequence[str] | None = None) -> Any:  # supervision.Detections
        from vidpan.inference.interop import to_supervision

        return to_supervision(self, class_names=class_names)


@dataclass
class SemanticFrame:
    """Semantic result of one frame, at the original video resolution."""

    index: int
    classes: np.ndarray  # [H, W] int32 model-space class ids

    def to_hf(self) -> Any:  # transformers-style dict / tensor, ids stable over the video
        from vidpan.inference.interop import to_hf

        return to_hf(self)

    def to_supervision(self, class_names: Sequence[str] | None = None) -> Any:  # supervision.Detections
        from vidpan.inference.interop import to_supervision

        return to_supervision(self, class_names=class_names)


@dataclass
class ClipTargets:
    """Ground truth of one training clip: every instance (thing or stuff region) over all frames.

    Stuff regions count as one instance per class (DVIS treats each stuff region as a track).
    Instances absent from a frame have an all-False mask there (DVIS++ keeps every instance in
    every frame; ids are never -1).
    """

    labels: torch.Tensor  # [M] int64, model class space (things first, then stuff)
    ids: torch.Tensor  # [M] int64, the dataset's segment / track id
    masks: torch.Tensor  # [M, T, H, W] bool

    @property
    def present(self) -> torch.Tensor:
        """[M, T] bool: whether each instance is visible in each frame."""
        return self.masks.flatten(2).any(-1)


@dataclass
class ClipSample:
    """One training clip: frames and their targets, already augmented (same transform per frame)."""

    video_id: str
    frame_names: list[str]
    frames: torch.Tensor  # [T, 3, H, W] uint8 RGB
    targets: ClipTargets


@dataclass
class TrackPrediction:
    """Class and mask predictions of one tracker or refiner layer (slot order = track identity)."""

    class_logits: torch.Tensor  # [B, T, Q, K+1]
    mask_logits: torch.Tensor | None  # [B, T, Q, H/4, W/4]; None when masks were not requested
