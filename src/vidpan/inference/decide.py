"""The decide step shared by every mode: mask logits of a span of frames -> per-frame results.

A *span* is what a mode decides at once: one window (online streaming), one chunk (long
mode) or the whole video (online / offline whole-video decisions). :func:`decide` takes the
span's video-level class logits and its mask logits as an iterator of [t, Q, h, w] chunks (so
they can be read back from a spill or computed lazily) and yields one result per frame, in
order, with ``index`` = the frame's position in the span; :func:`emit` re-numbers them with
their frame indices in the video.

- VPS (:class:`~vidpan.inference.postprocess.PanopticStream`) takes two passes over the
  chunks: counts over the whole span, then painting; the compact per-voxel winners of the
  first pass are spilled in between. ``stable=True`` gives segment ids that do not depend on
  the span (things ``1 + slot``, stuff ``1 + Q + class``), for spans shorter than the video.
- VSS: per pixel, the class maximising ``Σ_q p(k | q) · mask_q``.
- VIS: the ``max_instances`` best (track, thing class) pairs, one id per pair.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace

import numpy as np
import torch

from vidpan.inference.context import RunContext, Task
from vidpan.inference.postprocess import (
    ChunkWinners,
    MaskGeometry,
    PanopticStream,
    class_probabilities,
    resize_masks,
)
from vidpan.inference.spill import TensorSpill
from vidpan.structures import InstanceFrame, PanopticFrame, Segment, SemanticFrame

FrameResult = PanopticFrame | SemanticFrame | InstanceFrame


def decide(
    ctx: RunContext,
    task: Task,
    class_logits: torch.Tensor,
    aux_class_logits: torch.Tensor | None,
    mask_chunks: Iterable[torch.Tensor],
    geometry: MaskGeometry,
    *,
    stable: bool,
) -> Iterator[FrameResult]:
    """Decide one span and yield its frames in order (``index`` = position in the span).

    Args:
        class_logits: [Q, K+1] the span's video-level logits.
        aux_class_logits: [Q, K+1] offline / long: the tracker's, max-fused with the refiner's.
        mask_chunks: [t, Q, h, w] mask logits of consecutive frames of the span.
        stable: span-independent segment ids (see the module docstring).
    """
    if task == "vps":
        yield from _panoptic(ctx, class_logits, aux_class_logits, mask_chunks, geometry, stable=stable)
    elif task == "vss":
        yield from _semantic(ctx, class_logits, aux_class_logits, mask_chunks, geometry)
    else:
        yield from _instances(ctx, class_logits, aux_class_logits, mask_chunks, geometry)


def emit(results: Iterable[FrameResult], indices: Sequence[int]) -> Iterator[FrameResult]:
    """The span's results with ``index`` = the frame index in the video (``indices[position]``)."""
    for result, index in zip(results, indices, strict=True):
        yield replace(result, index=index)


def _panoptic(
    ctx: RunContext,
    class_logits: torch.Tensor,
    aux_class_logits: torch.Tensor | None,
    mask_chunks: Iterable[torch.Tensor],
    geometry: MaskGeometry,
    *,
    stable: bool,
) -> Iterator[FrameResult]:
    inf = ctx.config.inference
    stream = PanopticStream(
        class_logits,
        geometry,
        num_things=ctx.config.model.num_things,
        object_mask_threshold=inf.object_mask_threshold,
        overlap_threshold=inf.overlap_threshold,
        aux_class_logits=aux_class_logits,
        device=ctx.device,
        stable_ids=class_logits.shape[0] if stable else None,
    )
    with TensorSpill(ram_budget=ctx.spill_ram_budget) as winners:
        for chunk in mask_chunks:
            # One frame at a time: the full-resolution [Q, H, W] planes dominate memory.
            for frame in chunk.split(1):
                with ctx.timer("postprocess"):
                    w = stream.add(frame)
                winners.append(w.winner, w.foreground)
                ctx.advance("decide")
        with ctx.timer("postprocess"):
            segments = stream.finish()
        order = {s.id: (k, s) for k, s in enumerate(segments)}
        position = 0
        for winner, foreground in winners:
            with ctx.timer("postprocess"):
                painted = stream.paint(ChunkWinners(winner, foreground)).numpy()
            for ids in painted:
                # Segments present in the frame, in the segment list's order.
                present = sorted((order[int(i)] for i in np.unique(ids) if i > 0), key=lambda p: p[0])
                yield PanopticFrame(index=position, segment_ids=ids, segments=[s for _, s in present])
                position += 1


def _semantic(
    ctx: RunContext,
    class_logits: torch.Tensor,
    aux_class_logits: torch.Tensor | None,
    mask_chunks: Iterable[torch.Tensor],
    geometry: MaskGeometry,
) -> Iterator[FrameResult]:
    probs = class_probabilities(class_logits, aux_class_logits)[:, :-1]  # [Q, K]
    position = 0
    for chunk in mask_chunks:
        for frame in chunk.split(1):
            with ctx.timer("postprocess"):
                labels = semantic_labels(frame.to(ctx.device), probs, geometry)
            yield SemanticFrame(index=position, classes=labels.cpu().numpy().astype(np.int32))
            position += 1


def _instances(
    ctx: RunContext,
    class_logits: torch.Tensor,
    aux_class_logits: torch.Tensor | None,
    mask_chunks: Iterable[torch.Tensor],
    geometry: MaskGeometry,
) -> Iterator[FrameResult]:
    """The max_num best (track, thing class) pairs, each with its track's binary masks."""
    probs = class_probabilities(class_logits, aux_class_logits)[:, :-1]  # [Q, K]
    num_classes = probs.shape[1]
    # Instances are things only (YouTube-VIS has no stuff; sky or road is not an instance).
    num_things = ctx.config.model.num_things
    things = probs[:, :num_things]  # [Q, K_things]
    scores, flat = things.flatten().topk(min(ctx.config.inference.max_instances, things.numel()))
    labels = (flat % max(num_things, 1)).tolist()
    queries = (flat // max(num_things, 1)).tolist()
    # One id per (track, class) pair: the same in every frame, chunk and window.
    instances = [
        Segment(
            id=1 + q * num_classes + c,
            category_id=c,
            isthing=c < ctx.config.model.num_things,
            score=float(s),
            track=q,
        )
        for q, c, s in zip(queries, labels, scores.tolist(), strict=True)
    ]
    position = 0
    selected = torch.tensor(queries, dtype=torch.long)
    for chunk in mask_chunks:
        for frame in chunk.split(1):
            with ctx.timer("postprocess"):
                sel = frame[:, selected.to(frame.device)].to(ctx.device)
                binary = (resize_masks(sel, geometry, sigmoid="none") > 0).cpu().numpy()
            yield InstanceFrame(index=position, masks=binary[0], instances=instances)
            position += 1


def semantic_labels(
    frame: torch.Tensor,
    probs: torch.Tensor,
    geometry: MaskGeometry,
    planes: int = PanopticStream.PLANES_PER_PASS,
) -> torch.Tensor:
    """Per-pixel class of one frame: argmax_k sum_q p(k | q) * mask_q, accumulated over the
    queries ``planes`` at a time so the full-resolution masks of all Q queries never coexist.

    Args: frame [1, Q, h, w] mask logits, probs [Q, K]. Returns [H, W] int64.
    """
    semseg: torch.Tensor | None = None
    probs = probs.to(frame.device)
    for start in range(0, frame.shape[1], planes):
        masks = resize_masks(frame[:, start : start + planes], geometry, sigmoid="before_output_resize")
        part = torch.einsum("qk,tqhw->tkhw", probs[start : start + planes], masks)
        semseg = part if semseg is None else semseg + part
    assert semseg is not None
    return semseg[0].argmax(0)
