"""DVIS++'s first-half matching schedule: match on the frozen earlier stage, then on the model itself.

``DVIS_Plus/dvis_Plus/meta_architecture.py``: while ``iter < MAX_ITER // 2``

- the online model (tracker) computes the consistent matching on the *segmenter's* predictions
  re-ordered into the tracker's slots (``reset_image_output_order``) and every tracker layer
  (final and aux) reuses that matching;
- the offline model (refiner) computes the video-level matching on the frozen *tracker's*
  predictions (class logits averaged over T, masks stacked (T*h, w)) and every refiner layer reuses it.

Afterwards each layer is matched on its own predictions (``matching=None`` in the criterion).

Differences from the reference, on purpose: DVIS++ counts ``iter`` in the model object, so the
schedule restarts from 0 after a resume; :func:`use_frozen_stage_matching` takes the trainer's
global iteration instead. DVIS++ re-orders only batch element 0 (one clip per GPU in its configs);
:func:`reorder_queries` re-orders every clip with its own permutation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vidpan.losses.matcher import HungarianMatcher, MatchIndices
from vidpan.losses.prediction import VideoMaskPrediction, video_class_logits
from vidpan.structures import ClipTargets


def use_frozen_stage_matching(iteration: int, max_iter: int) -> bool:
    """True in the first half of training (``iteration < max_iter // 2``, iteration counted from 0)."""
    return iteration < max_iter // 2


def reorder_queries(pred: VideoMaskPrediction, perm: torch.Tensor) -> VideoMaskPrediction:
    """Put the segmenter's queries into the tracker's slots.

    Args:
        pred: [B, T, Q, ...] segmenter predictions (aux layers are re-ordered too).
        perm: [B, T, Q] int64, the tracker's assignment: slot r of frame t holds segmenter query
            ``perm[b, t, r]`` (DVIS++ convention, the fixture's ``tracker.perm``).

    Returns:
        out with ``out.x[b, t, r] = pred.x[b, t, perm[b, t, r]]``.
    """
    batch, frames, num_queries = pred.class_logits.shape[:3]
    if tuple(perm.shape) != (batch, frames, num_queries):
        raise ValueError(f"perm {tuple(perm.shape)}, expected [B, T, Q] = {(batch, frames, num_queries)}")
    perm = perm.to(pred.class_logits.device, torch.int64)

    def take(x: torch.Tensor) -> torch.Tensor:
        # [B, T, Q] -> [B, T, Q, *rest] broadcast index for a gather along the query axis.
        index = perm.reshape(*perm.shape, *([1] * (x.dim() - 3))).expand_as(x)
        return torch.gather(x, 2, index)

    return VideoMaskPrediction(
        class_logits=take(pred.class_logits),
        mask_logits=take(pred.mask_logits),
        aux=tuple(reorder_queries(a, perm) for a in pred.aux),
    )


@torch.no_grad()
def match_on_frozen_segmenter(
    matcher: HungarianMatcher,
    segmenter: VideoMaskPrediction,
    perm: torch.Tensor,
    targets: Sequence[ClipTargets],
    *,
    match_on_first_visible_frame: bool = True,
    generator: torch.Generator | None = None,
) -> list[MatchIndices]:
    """Tracker first half: consistent matching of the segmenter's final layer in tracker slot order.

    Args:
        segmenter: [B, T, Q, ...] frozen segmenter predictions (aux ignored).
        perm: [B, T, Q] tracker permutations (see :func:`reorder_queries`).
        targets: B clips.

    Returns:
        B assignments in tracker slot indices, for ``SetCriterion.tracker_losses(matching=...)``.
    """
    final = VideoMaskPrediction(class_logits=segmenter.class_logits, mask_logits=segmenter.mask_logits)
    ordered = reorder_queries(final, perm)
    return matcher.match_clip_consistent(
        ordered.class_logits,
        ordered.mask_logits,
        targets,
        match_on_first_visible_frame=match_on_first_visible_frame,
        generator=generator,
    )


@torch.no_grad()
def match_on_frozen_tracker(
    matcher: HungarianMatcher,
    tracker: VideoMaskPrediction,
    targets: Sequence[ClipTargets],
    *,
    generator: torch.Generator | None = None,
) -> list[MatchIndices]:
    """Refiner first half: video-level matching of the frozen tracker's final layer.

    The tracker's per-frame class logits are averaged over T (DVIS++ ``pred_logits.mean(dim=1)``);
    its slots are the refiner's queries, so no re-ordering is needed.

    Returns:
        B assignments, for ``SetCriterion.refiner_losses(matching=...)``.
    """
    return matcher.match_video(
        video_class_logits(tracker.class_logits, "mean"), tracker.mask_logits, targets, generator=generator
    )
