"""Shared steps of post-processing: mask geometry, class probabilities, mask resizing, chunking.

Follows DVIS++ ``dvis_Plus/meta_architecture.py`` and Mask2Former ``sem_seg_postprocess``: mask
logits at stride 4 are resized to the padded network input, cropped to the resized image and
resized to the output size (:func:`resize_masks`). Used by :mod:`vidpan.inference.panoptic` (VPS)
and :mod:`vidpan.inference.postprocess` (VSS, VIS).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

MaskSource = torch.Tensor | Sequence[torch.Tensor]
SigmoidStage = Literal["before_output_resize", "after_output_resize", "none"]


@dataclass(frozen=True)
class MaskGeometry:
    """Sizes for turning stride-4 mask logits into output-resolution masks."""

    padded_size: tuple[int, int]  # (H, W) of the network input (masks are at 1/4 of it)
    image_size: tuple[int, int]  # (h, w) of the resized image inside the padded input
    output_size: tuple[int, int]  # (H, W) of the results (the original video size)

    @classmethod
    def unpadded(cls, height: int, width: int) -> MaskGeometry:
        """Input = resized image = output (no padding, no resize)."""
        return cls((height, width), (height, width), (height, width))


def mean_class_logits(class_logits: torch.Tensor) -> torch.Tensor:
    """[T, Q, K+1] per-frame logits -> [Q, K+1] video-level logits (mean over T, as DVIS++)."""
    return class_logits.mean(dim=0)


def class_probabilities(
    class_logits: torch.Tensor, aux_class_logits: torch.Tensor | None = None
) -> torch.Tensor:
    """[Q, K+1] logits -> [Q, K+1] probabilities (float32).

    With ``aux_class_logits`` (offline: the tracker's video-level logits), the real-class columns
    are the element-wise max of both softmaxes; the no-object column stays the main one's.
    """
    probs = class_logits.float().softmax(dim=-1)
    if aux_class_logits is not None:
        aux = aux_class_logits.float().softmax(dim=-1)[:, :-1].to(probs.device)
        probs = torch.cat([torch.maximum(probs[:, :-1], aux), probs[:, -1:]], dim=-1)
    return probs


def resize_masks(mask_logits: torch.Tensor, geometry: MaskGeometry, *, sigmoid: SigmoidStage) -> torch.Tensor:
    """[t, Q, h, w] mask logits -> [t, Q, H, W] float32 at ``geometry.output_size``.

    Bilinear (align_corners False) to the padded size, crop to the image size, bilinear to the
    output size; ``sigmoid`` says where the sigmoid goes (DVIS++ video: before the last resize;
    Mask2Former image: after it; VIS: none). Planes are independent, so any frame chunking gives
    the same numbers as the reference's whole-video call.
    """
    # Channels-last: the bilinear kernel vectorises over the Q planes and the later argmax over
    # queries becomes a reduction over the innermost dimension (about 1.6x faster on CPU).
    x = mask_logits.float().contiguous(memory_format=torch.channels_last)
    fresh = x.untyped_storage().data_ptr() != mask_logits.untyped_storage().data_ptr()
    resized = _resize(x, geometry.padded_size)
    fresh, x = fresh or resized is not x, resized
    x = x[..., : geometry.image_size[0], : geometry.image_size[1]]
    if sigmoid == "before_output_resize":
        x = x.sigmoid_() if fresh else x.sigmoid()  # in place on our own tensor: same values
        fresh = True
    resized = _resize(x, geometry.output_size)
    fresh, x = fresh or resized is not x, resized
    if sigmoid == "after_output_resize":
        x = x.sigmoid_() if fresh else x.sigmoid()
    return x


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (align_corners False); a resize to the same size is the identity exactly
    (source coordinate (i + 0.5) - 0.5 = i), so it is skipped."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def iter_frame_chunks(
    mask_logits: MaskSource, chunk_frames: int, device: torch.device | None = None
) -> Iterator[torch.Tensor]:
    """Yield [t, Q, h, w] chunks (t ≤ ``chunk_frames``) of a [T, Q, h, w] tensor or of a sequence
    of per-window [t_i, Q, h, w] tensors, moved to ``device`` if given."""
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    parts = [mask_logits] if isinstance(mask_logits, torch.Tensor) else list(mask_logits)
    for part in parts:
        if part.dim() != 4:
            raise ValueError(f"mask logits must be [T, Q, h, w], got shape {tuple(part.shape)}")
        for start in range(0, part.shape[0], chunk_frames):
            chunk = part[start : start + chunk_frames]
            yield chunk if device is None else chunk.to(device)
