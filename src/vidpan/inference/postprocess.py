"""Post-processing of track predictions into VPS, VSS and VIS results (pure functions).

Follows DVIS++ ``dvis_Plus/meta_architecture.py`` (``DVIS_Plus_online.inference_video_vps``,
``inference_video_vss``, ``inference_video_vis``; reference notes §1.7–§1.8) and, for single
images, Mask2Former ``maskformer_model.py`` (``panoptic_inference``, ``semantic_inference``),
which is the same algorithm on one frame — the image functions here are T = 1 calls of the
video ones.

The shared steps (geometry, class probabilities, resizing) are in :mod:`vidpan.inference.masks`,
VPS in :mod:`vidpan.inference.panoptic`; both are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vidpan.inference.masks import (
    MaskGeometry,
    MaskSource,
    SigmoidStage,
    class_probabilities,
    iter_frame_chunks,
    mean_class_logits,
    resize_masks,
)
from vidpan.inference.panoptic import (
    ChunkWinners,
    PanopticResult,
    PanopticStream,
    panoptic_inference,
    panoptic_video_inference,
    stable_segment_id,
)

__all__ = [
    "ChunkWinners", "InstanceResult", "MaskGeometry", "MaskSource", "PanopticResult", "PanopticStream",
    "SemanticResult", "SigmoidStage", "class_probabilities", "instance_video_inference", "iter_frame_chunks",
    "mean_class_logits", "panoptic_inference", "panoptic_video_inference", "resize_masks",
    "semantic_inference", "semantic_video_inference", "stable_segment_id",
]  # fmt: skip


@dataclass
class SemanticResult:
    """VSS (or image semantic) result; tensors on CPU."""

    labels: torch.Tensor  # [T, H, W] int64 class per pixel (videos), [H, W] (images)
    scores: torch.Tensor  # same shape, float32: the winning class's score


@dataclass
class InstanceResult:
    """VIS result: one entry per kept (track, class) pair, best score first; tensors on CPU."""

    scores: torch.Tensor  # [N] float32
    labels: torch.Tensor  # [N] int64 class in model space
    query_ids: torch.Tensor  # [N] int64 track slot
    masks: torch.Tensor  # [N, T, H, W] bool


# --------------------------------------------------------------------------------------------
# VSS
# --------------------------------------------------------------------------------------------


def semantic_video_inference(
    class_logits: torch.Tensor,
    mask_logits: MaskSource,
    geometry: MaskGeometry,
    *,
    aux_class_logits: torch.Tensor | None = None,
    chunk_frames: int = 1,
    device: torch.device | None = None,
    sigmoid_before_output_resize: bool = True,
) -> SemanticResult:
    """VSS post-processing (DVIS++ ``inference_video_vss``): per pixel, the class maximising
    ``Σ_q p(class | q) · mask_q`` (real classes only; offline: max-fused probabilities).

    Args as :func:`panoptic_video_inference`. Returns ``labels`` / ``scores`` [T, H, W].
    """
    probs = class_probabilities(class_logits, aux_class_logits)[:, :-1]  # [Q, K]
    stage: SigmoidStage = "before_output_resize" if sigmoid_before_output_resize else "after_output_resize"
    labels, scores = [], []
    for chunk in iter_frame_chunks(mask_logits, chunk_frames, device):
        masks = resize_masks(chunk, geometry, sigmoid=stage)  # [t, Q, H, W]
        semseg = torch.einsum("qk,tqhw->tkhw", probs.to(masks.device), masks)
        score, label = semseg.max(dim=1)
        labels.append(label.cpu())
        scores.append(score.cpu())
    if not labels:
        raise ValueError("mask_logits has no frames")
    return SemanticResult(labels=torch.cat(labels), scores=torch.cat(scores))


def semantic_inference(
    class_logits: torch.Tensor, mask_logits: torch.Tensor, geometry: MaskGeometry
) -> SemanticResult:
    """Image semantic post-processing (Mask2Former ``semantic_inference`` + argmax):
    [Q, K+1] logits, [Q, h, w] masks -> ``labels`` / ``scores`` [H, W]."""
    result = semantic_video_inference(
        class_logits, mask_logits[None], geometry, sigmoid_before_output_resize=False
    )
    return SemanticResult(labels=result.labels[0], scores=result.scores[0])


# --------------------------------------------------------------------------------------------
# VIS
# --------------------------------------------------------------------------------------------


def instance_video_inference(
    class_logits: torch.Tensor,
    mask_logits: MaskSource,
    geometry: MaskGeometry,
    *,
    max_num: int = 20,
    aux_class_logits: torch.Tensor | None = None,
    chunk_frames: int = 4,
    device: torch.device | None = None,
) -> InstanceResult:
    """VIS post-processing (DVIS++ ``inference_video_vis``): the ``max_num`` best (track, class)
    pairs over the [Q, K] real-class probabilities, each with its track's binary masks
    (resized logits > 0, no sigmoid).

    Deviation: results are sorted by descending score (the reference uses ``topk(sorted=False)``,
    whose order is unspecified); ``max_num`` is capped at Q·K.
    """
    probs = class_probabilities(class_logits, aux_class_logits)[:, :-1]  # [Q, K]
    num_classes = probs.shape[1]
    scores, flat = probs.flatten().topk(min(max_num, probs.numel()))
    labels = flat % num_classes
    queries = flat // num_classes
    masks = []
    for chunk in iter_frame_chunks(mask_logits, chunk_frames, device):
        selected = chunk[:, queries.to(chunk.device)]  # [t, N, h, w]
        masks.append((resize_masks(selected, geometry, sigmoid="none") > 0).cpu())
    if not masks:
        raise ValueError("mask_logits has no frames")
    return InstanceResult(
        scores=scores.cpu(),
        labels=labels.cpu(),
        query_ids=queries.cpu(),
        masks=torch.cat(masks, dim=0).transpose(0, 1).contiguous(),  # [T, N, H, W] -> [N, T, H, W]
    )
