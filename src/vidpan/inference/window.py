"""The window step shared by every mode: resize and segment a window of frames, run the tracker.

A window is ``inference.window_size`` consecutive frames (DVIS++ ``TEST.WINDOW_SIZE``): the
segmenter runs on them as one batch (or ``inference.segmenter_batch`` at a time) and the
referring tracker carries its :class:`~vidpan.models.tracker.TrackerState` from one window to
the next. Results are float32 whatever the autocast precision, so the tracker, refiner and
post-processing always see the same dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from vidpan.inference.context import RunContext
from vidpan.inference.postprocess import MaskGeometry
from vidpan.inference.video_io import resize_frames
from vidpan.models.tracker import TrackerState
from vidpan.structures import SegmenterOutput


@dataclass
class Window:
    """One segmented window of frames (the input frames themselves are not kept)."""

    indices: list[int]  # frame indices in the video, consecutive
    seg: SegmenterOutput  # N = frames of the window
    geometry: MaskGeometry


@dataclass
class Tracked:
    """The tracker's output on one window."""

    class_logits: torch.Tensor  # [t, Q, K+1]
    mask_logits: torch.Tensor | None  # [t, Q, h, w]; None when masks were not asked for
    embeds: torch.Tensor  # [t, Q, C] the tracker's un-normed instance embeddings


def segment_window(ctx: RunContext, indices: list[int], images: Sequence[np.ndarray]) -> Window:
    """Resize (detectron2 ``ResizeShortestEdge``) and segment ``images`` ([H, W, 3] uint8 each)."""
    inf = ctx.config.inference
    with ctx.timer("decode"):
        x = resize_frames(images, short_side=inf.short_side, max_size=inf.max_size)
    with ctx.timer("segmenter"), torch.inference_mode(), ctx.autocast():
        seg = _segment(ctx, x.to(ctx.device), inf.segmenter_batch)
    h4, w4 = seg.mask_logits.shape[-2:]
    geometry = MaskGeometry(
        padded_size=(4 * h4, 4 * w4),
        image_size=(int(x.shape[-2]), int(x.shape[-1])),
        output_size=(int(images[0].shape[0]), int(images[0].shape[1])),
    )
    return Window(indices, seg, geometry)


def track_window(
    ctx: RunContext, window: Window, state: TrackerState | None, *, masks: bool
) -> tuple[Tracked, TrackerState]:
    """The referring tracker on one window, continuing from ``state`` (None = first window)."""
    tracker = ctx.model.tracker
    assert tracker is not None
    seg = window.seg
    with ctx.timer("tracker"), torch.inference_mode(), ctx.autocast():
        out, state = tracker(
            seg.embeds[None],
            seg.embeds_unnormed[None],
            seg.mask_features[None] if masks else None,
            state,
        )
    mask_logits = None if out.mask_logits is None else out.mask_logits[0].float()
    return Tracked(out.class_logits[0].float(), mask_logits, out.embeds[0].float()), state


_STACKED = ("class_logits", "mask_logits", "embeds", "embeds_unnormed", "mask_features")


def _segment(ctx: RunContext, x: torch.Tensor, batch: int) -> SegmenterOutput:
    """Segmenter on [N, 3, H, W] frames, ``batch`` at a time (0 = all at once).

    Each part is copied into the window's [N, ...] tensors as soon as it is computed and then
    dropped, so a window's frames are held once (not as parts plus their concatenation: ~55 MB
    less transient memory per window on the DVIS++ speed anchor); the values are those of ``torch.cat``.
    """
    segmenter = ctx.model.segmenter
    if batch <= 0 or batch >= x.shape[0]:
        return _float(segmenter(x, return_aux=False))
    stacked: dict[str, torch.Tensor] = {}
    start = 0
    for frames in x.split(batch):
        part = _float(segmenter(frames, return_aux=False))
        stop = start + frames.shape[0]
        for name in _STACKED:
            value = getattr(part, name)
            if name not in stacked:
                stacked[name] = _empty_like_batch(value, x.shape[0])
            stacked[name][start:stop] = value
        start = stop
    return replace(
        part,
        class_logits=stacked["class_logits"],
        mask_logits=stacked["mask_logits"],
        embeds=stacked["embeds"],
        embeds_unnormed=stacked["embeds_unnormed"],
        mask_features=stacked["mask_features"],
    )


def _empty_like_batch(value: torch.Tensor, n: int) -> torch.Tensor:
    """An empty [n, *value.shape[1:]] tensor with ``value``'s dtype, device and memory format."""
    channels_last = (
        value.dim() == 4
        and not value.is_contiguous()
        and value.is_contiguous(memory_format=torch.channels_last)
    )
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return torch.empty((n, *value.shape[1:]), dtype=value.dtype, device=value.device, memory_format=fmt)


def _float(seg: SegmenterOutput) -> SegmenterOutput:
    """Outputs in float32 (autocast may leave bf16/fp16) for the tracker and post-processing."""
    return replace(
        seg,
        class_logits=seg.class_logits.float(),
        mask_logits=seg.mask_logits.float(),
        embeds=seg.embeds.float(),
        embeds_unnormed=seg.embeds_unnormed.float(),
        mask_features=seg.mask_features.float(),
    )
