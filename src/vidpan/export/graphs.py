"""The exported computations as tensor-in / tensor-out modules with fixed shapes.

:class:`SegmenterGraph`
    uint8 frames ``[T, H, W, 3]`` (RGB, exactly what the predictor's resize produces, in
    frame-major layout) -> the segmenter's last-layer outputs. Normalisation and the zero
    padding to ``size_divisibility`` happen inside the graph (the eager
    :meth:`~vidpan.models.segmenter.Segmenter.preprocess`); post-processing stays outside.

:class:`TrackerStepGraph`
    one frame of the referring tracker (:class:`~vidpan.models.tracker.ReferringTracker`) with
    its state as explicit tensors. The Hungarian assignment (scipy) cannot be a graph op, so
    it runs outside, before the step, with the eager function
    (:func:`~vidpan.models.association.match_embeddings`) and comes in as ``perm``. The first
    frame of a video (``state_num_frames == 0``, ``perm`` = identity) and later frames differ
    only in which tensors feed the reference projections; both are one graph through
    ``torch.where`` (no control flow), selecting exactly the eager branch's values.

Shapes (B = 1 video, Q queries, C track width = 2x decoder width, C_m mask channels,
h, w = padded size / 4, K classes):

inputs:
    frame_embeds [B, Q, C] f32             segmenter ``embeds`` of this frame (matching)
    frame_embeds_unnormed [B, Q, C] f32    segmenter ``embeds_unnormed`` (identity / key / value)
    mask_features [B, C_m, h, w] f32       segmenter mask features
    perm [B, Q] i64                        slot r <- segmenter query perm[r] (identity first)
    state_last_output [B, Q, C] f32        state in (zeros on a video's first frame)
    state_num_frames [B] i64               frames tracked so far (0 = new video)
outputs:
    class_logits [B, Q, K+1] f32           slot order
    mask_logits [B, Q, h, w] f32
    embeds [B, Q, C] f32                   un-normed last layer (the refiner's input)
    new_state_last_frame_embeds [B, Q, C]  frame_embeds[perm]
    new_state_last_output [B, Q, C]        = embeds
    new_state_last_reference [B, Q, C]     the reference of this frame
    new_state_num_frames [B] i64           state_num_frames + 1
"""

from __future__ import annotations

import torch
from torch import nn

from vidpan.models.segmenter import Segmenter
from vidpan.models.tracker import ReferringTracker

SEGMENTER_INPUTS = ("frames",)
SEGMENTER_OUTPUTS = ("class_logits", "mask_logits", "embeds", "embeds_unnormed", "mask_features")
TRACKER_INPUTS = (
    "frame_embeds",
    "frame_embeds_unnormed",
    "mask_features",
    "perm",
    "state_last_output",
    "state_num_frames",
)
TRACKER_OUTPUTS = (
    "class_logits",
    "mask_logits",
    "embeds",
    "new_state_last_frame_embeds",
    "new_state_last_output",
    "new_state_last_reference",
    "new_state_num_frames",
)


class SegmenterGraph(nn.Module):
    """uint8 frames [T, H, W, 3] -> (class_logits [T, Q, K+1], mask_logits [T, Q, H_pad/4, W_pad/4],
    embeds [T, Q, C], embeds_unnormed [T, Q, C], mask_features [T, C_m, H_pad/4, W_pad/4])."""

    def __init__(self, segmenter: Segmenter) -> None:
        super().__init__()
        self.segmenter = segmenter

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        images = frames.permute(0, 3, 1, 2)  # [T, H, W, 3] -> [T, 3, H, W]
        out = self.segmenter(images, return_aux=False)
        return out.class_logits, out.mask_logits, out.embeds, out.embeds_unnormed, out.mask_features


def _take(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """x: [B, Q, C], perm: [B, Q] -> x[b, perm[b]] ([B, Q, C])."""
    return torch.gather(x, 1, perm[..., None].expand(-1, -1, x.shape[-1]))


class TrackerStepGraph(nn.Module):
    """One tracker frame with explicit state (see the module docstring for names and shapes)."""

    def __init__(self, tracker: ReferringTracker) -> None:
        super().__init__()
        self.tracker = tracker

    def forward(
        self,
        frame_embeds: torch.Tensor,
        frame_embeds_unnormed: torch.Tensor,
        mask_features: torch.Tensor,
        perm: torch.Tensor,
        state_last_output: torch.Tensor,
        state_num_frames: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        tracker = self.tracker
        memory = frame_embeds_unnormed  # segmenter order, never permuted
        first = (state_num_frames == 0).view(-1, 1, 1)  # [B, 1, 1]
        x = _take(memory, perm)  # the identity perm on the first frame keeps the segmenter order
        # Eager first frame: reference = ref_proj(memory); later: ref_proj(previous final output).
        reference = tracker.ref_proj(torch.where(first, memory, state_last_output))
        for j in range(tracker.num_layers):
            # Eager first frame: layer j > 0 is queried by ref_proj(previous layer); later: reference.
            query = reference if j == 0 else torch.where(first, tracker.ref_proj(x), reference)
            x = tracker._layer(j, x, query, memory)
        projected = tracker.mask_feature_proj(mask_features)  # [B, C_m, h, w]
        pred = tracker.predict(x[:, None], reference[:, None], projected[:, None])  # T = 1
        assert pred.mask_logits is not None
        return (
            pred.class_logits[:, 0],
            pred.mask_logits[:, 0],
            x,
            _take(frame_embeds, perm),
            x,
            reference,
            state_num_frames + 1,
        )
