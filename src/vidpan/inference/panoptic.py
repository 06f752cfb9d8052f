"""VPS post-processing of track predictions (DVIS++ ``inference_video_vps``; Mask2Former
``panoptic_inference`` for single images, the same algorithm on one frame).

VPS, exactly as the reference:

1. class probabilities = softmax of the video-level logits; offline, the real-class columns
   take the element-wise max with the tracker's softmax (the no-object column stays);
2. keep queries whose best class is not no-object and whose score > ``object_mask_threshold``;
3. masks: bilinear to the padded input size, crop to the resized image, sigmoid, bilinear to
   the output size (Mask2Former's image path applies the sigmoid after the last resize);
4. every voxel of the whole (T, H, W) volume goes to the kept query with the highest
   ``score · mask`` (first query on ties);
5. a query becomes a segment if it wins voxels, has voxels with mask ≥ 0.5, wins at least one
   of those, and (won voxels) / (voxels with mask ≥ 0.5) ≥ ``overlap_threshold`` — counted over
   the whole video; its segment is painted where it wins and its mask ≥ 0.5;
6. ``isthing = label < num_things``; a stuff query whose class already has a segment paints
   into that segment; segment ids run 1, 2, … in query order, ``query`` = the track slot.

Memory: masks are processed ``chunk_frames`` frames at a time (inputs may stay on CPU and be
given as a list of per-window tensors). The overlap test needs whole-video counts, so VPS runs
in two steps: a counting pass that keeps only the per-voxel winner (compact), then painting.
:class:`PanopticStream` exposes the two passes for callers that cannot keep even that.
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
    resize_masks,
)
from vidpan.structures import Segment


@dataclass
class PanopticResult:
    """VPS (or image panoptic) result; tensors on CPU."""

    segment_ids: torch.Tensor  # [T, H, W] int32 for videos, [H, W] for images; 0 = void
    segments: list[Segment]

    @property
    def pred_ids(self) -> list[int]:
        """Query index behind each segment, in segment order (DVIS++ ``pred_ids``)."""
        return [s.track for s in self.segments]


def stable_segment_id(query: int, label: int, isthing: bool, num_queries: int) -> int:
    """Segment id that does not depend on which window or chunk decided it.

    Things: ``1 + query`` (the track slot is the identity); stuff: ``1 + Q + label`` (one segment
    per stuff class, as the reference merges stuff by class).
    """
    return 1 + query if isthing else 1 + num_queries + label


def count_ones(fg: torch.Tensor) -> torch.Tensor:
    """[t, k, H, W] float 0/1 -> [k] int64 counts of ones, as ``(fg > 0).sum(dim=(0, 2, 3))``.

    Per-frame float32 sums are exact while a frame has at most 2**24 pixels, and 2-4x faster than
    PyTorch's bool -> int64 reduction over a channels-last tensor.
    """
    if fg.shape[-2] * fg.shape[-1] > 2**24:
        return fg.gt(0.5).sum(dim=(0, 2, 3))
    return fg.sum(dim=(2, 3)).long().sum(dim=0)


def _like(x: torch.Tensor, buffer: torch.Tensor | None) -> torch.Tensor:
    """``buffer`` if given, else an empty tensor with the shape, dtype and memory format of ``x``."""
    return buffer if buffer is not None else torch.empty_like(x)


@dataclass
class ChunkWinners:
    """Compact per-voxel result of the counting pass for one chunk of frames."""

    winner: torch.Tensor  # [t, H, W] integer index into the kept queries
    foreground: torch.Tensor  # [t, H, W] bool: the winner's mask ≥ 0.5 there


class PanopticStream:
    """Two-pass VPS post-processing over frame chunks (bounded memory).

    Usage: ``add(chunk)`` for every chunk in order (pass 1, counts; returns the chunk's compact
    winners), then ``finish()`` (decides the segments), then ``paint(winners)`` or
    ``paint_logits(chunk)`` per chunk (pass 2). :func:`panoptic_video_inference` wraps it.

    Args:
        class_logits: [Q, K+1] video-level logits (e.g. :func:`mean_class_logits`).
        geometry: mask sizes.
        num_things: classes below this index are things.
        object_mask_threshold, overlap_threshold: the reference's VPS thresholds.
        aux_class_logits: [Q, K+1] offline tracker logits (see :func:`class_probabilities`).
        sigmoid_before_output_resize: DVIS++ video order (True) or Mask2Former image order.
        device: where chunks are processed (default: where they are).
        stable_ids: None numbers segments 1, 2, … in query order (the reference, for a whole
            video); the number of queries Q gives ids that are the same in every window or chunk
            of a video (:func:`stable_segment_id`), for streaming and long-video inference.
    """

    def __init__(
        self,
        class_logits: torch.Tensor,
        geometry: MaskGeometry,
        *,
        num_things: int,
        object_mask_threshold: float,
        overlap_threshold: float,
        aux_class_logits: torch.Tensor | None = None,
        sigmoid_before_output_resize: bool = True,
        device: torch.device | None = None,
        stable_ids: int | None = None,
    ) -> None:
        self.stable_ids = stable_ids
        probs = class_probabilities(class_logits, aux_class_logits)
        scores, labels = probs.max(dim=-1)
        keep = labels.ne(probs.shape[-1] - 1) & (scores > object_mask_threshold)
        self.kept = torch.nonzero(keep).flatten().cpu()  # [Qk] query indices, ascending
        self.scores = scores[keep].cpu()  # [Qk]
        self.labels = labels[keep].cpu()  # [Qk]
        self.geometry = geometry
        self.num_things = num_things
        self.overlap_threshold = overlap_threshold
        self.sigmoid: SigmoidStage = (
            "before_output_resize" if sigmoid_before_output_resize else "after_output_resize"
        )
        self.device = device
        n = len(self.kept)
        self.area = torch.zeros(n, dtype=torch.int64)  # voxels won
        self.original_area = torch.zeros(n, dtype=torch.int64)  # voxels with mask ≥ 0.5
        self.inter = torch.zeros(n, dtype=torch.int64)  # voxels won with mask ≥ 0.5
        self.segment_of: torch.Tensor | None = None  # [Qk] int32 segment id per kept query (0 = none)
        self.segments: list[Segment] = []

    #: Kept queries resized at once: bounds the full-resolution [t, planes, H, W] temporaries.
    PLANES_PER_PASS = 16

    def _winners(self, chunk: torch.Tensor) -> tuple[ChunkWinners, torch.Tensor | None]:
        """Per-voxel winner of a [t, Q, h, w] chunk, and each kept query's count of voxels with
        mask ≥ 0.5 ([Qk], None when nothing is kept).

        The kept queries are resized :attr:`PLANES_PER_PASS` at a time with a running maximum of
        ``score · mask``; a later query replaces the winner only where it is strictly larger,
        so ties go to the first query as with one ``argmax`` over all of them.
        """
        t = chunk.shape[0]
        shape = (t, *self.geometry.output_size)
        if len(self.kept) == 0:
            empty = ChunkWinners(torch.zeros(shape, dtype=torch.int64), torch.zeros(shape, dtype=torch.bool))
            return empty, None
        if self.device is not None:
            chunk = chunk.to(self.device)
        kept = self.kept.to(chunk.device)
        scores = self.scores.to(chunk.device)
        best = winner = foreground = None
        fg_buffer: torch.Tensor | None = None
        original = []
        for start in range(0, len(kept), self.PLANES_PER_PASS):
            index = kept[start : start + self.PLANES_PER_PASS]
            # chunk[:, index] is a gather (a new tensor), so masks never share the caller's memory.
            masks = resize_masks(chunk[:, index], self.geometry, sigmoid=self.sigmoid)  # [t, k, H, W]
            # Full-resolution temporaries are reused in place (same values; fewer page faults).
            fg_buffer = fg_buffer if fg_buffer is not None and fg_buffer.shape == masks.shape else None
            fg = torch.ge(masks, 0.5, out=_like(masks, fg_buffer))  # 1.0 / 0.0 in float32
            fg_buffer = fg
            original.append(count_ones(fg))
            prob = masks.mul_(scores[start : start + len(index)].view(1, -1, 1, 1))
            value, local = prob.max(dim=1)  # [t, H, W], first maximum within the pass
            del masks, prob
            local_fg = fg.gather(1, local[:, None]).squeeze(1) > 0.5
            if best is None:
                best, winner, foreground = value, local, local_fg
            else:
                assert winner is not None and foreground is not None
                better = value > best
                best = torch.where(better, value, best)
                winner = torch.where(better, local + start, winner)
                foreground = torch.where(better, local_fg, foreground)
        assert winner is not None and foreground is not None
        return ChunkWinners(winner, foreground), torch.cat(original)

    def add(self, chunk: torch.Tensor) -> ChunkWinners:
        """Pass 1 on a [t, Q, h, w] chunk of mask logits; returns its compact winners (CPU)."""
        if self.segment_of is not None:
            raise RuntimeError("add() after finish()")
        winners, original = self._winners(chunk)
        if original is not None:
            n = len(self.kept)
            self.original_area += original.cpu()
            self.area += torch.bincount(winners.winner.flatten(), minlength=n).cpu()
            self.inter += torch.bincount(winners.winner[winners.foreground], minlength=n).cpu()
        # Stored compactly (int16 while the kept queries fit): 3 bytes per voxel until painting.
        compact = torch.int16 if len(self.kept) < 2**15 else torch.int32
        return ChunkWinners(winners.winner.to(compact).cpu(), winners.foreground.cpu())

    def finish(self) -> list[Segment]:
        """Decide the segments from the whole-video counts (call once, after every ``add``)."""
        segment_of = torch.zeros(len(self.kept), dtype=torch.int32)
        stuff_segment: dict[int, int] = {}
        segments: list[Segment] = []
        for k in range(len(self.kept)):
            area, original, inter = int(self.area[k]), int(self.original_area[k]), int(self.inter[k])
            if area == 0 or original == 0 or inter == 0 or area / original < self.overlap_threshold:
                continue
            label = int(self.labels[k])
            isthing = label < self.num_things
            if not isthing and label in stuff_segment:
                segment_of[k] = stuff_segment[label]  # merge into the class's first stuff segment
                continue
            query = int(self.kept[k])
            if self.stable_ids is None:
                segment_id = len(segments) + 1
            else:
                segment_id = stable_segment_id(query, label, isthing, self.stable_ids)
            if not isthing:
                stuff_segment[label] = segment_id
            segment_of[k] = segment_id
            segments.append(Segment(segment_id, label, isthing, float(self.scores[k]), query))
        self.segment_of = segment_of
        self.segments = segments
        return segments

    def paint(self, winners: ChunkWinners) -> torch.Tensor:
        """Pass 2 from stored winners: [t, H, W] int32 segment ids (CPU)."""
        if self.segment_of is None:
            raise RuntimeError("paint() before finish()")
        if len(self.kept) == 0:
            return torch.zeros(winners.winner.shape, dtype=torch.int32)
        ids = self.segment_of[winners.winner.cpu().long()]
        return torch.where(winners.foreground.cpu(), ids, torch.zeros_like(ids))

    def paint_logits(self, chunk: torch.Tensor) -> torch.Tensor:
        """Pass 2 recomputed from the chunk's mask logits (nothing stored between passes)."""
        return self.paint(self._winners(chunk)[0])


def panoptic_video_inference(
    class_logits: torch.Tensor,
    mask_logits: MaskSource,
    geometry: MaskGeometry,
    *,
    num_things: int,
    object_mask_threshold: float,
    overlap_threshold: float,
    aux_class_logits: torch.Tensor | None = None,
    chunk_frames: int = 4,
    device: torch.device | None = None,
    sigmoid_before_output_resize: bool = True,
) -> PanopticResult:
    """VPS post-processing of one video (DVIS++ ``inference_video_vps``; see the module docstring).

    Args:
        class_logits: [Q, K+1] video-level logits (online: tracker mean; offline: refiner mean).
        mask_logits: [T, Q, h, w] logits, or a sequence of per-window [t_i, Q, h, w] tensors.
        geometry: padded / image / output sizes.
        num_things: things are classes ``< num_things``.
        object_mask_threshold, overlap_threshold: VPS thresholds (0.8 / 0.8 in DVIS++).
        aux_class_logits: [Q, K+1] offline only: the tracker's video-level logits.
        chunk_frames: frames processed at once.
        device: compute device for the chunks (default: where they are).
        sigmoid_before_output_resize: False gives Mask2Former's image order.

    Returns:
        :class:`PanopticResult` with ``segment_ids`` [T, H, W] int32.
    """
    stream = PanopticStream(
        class_logits,
        geometry,
        num_things=num_things,
        object_mask_threshold=object_mask_threshold,
        overlap_threshold=overlap_threshold,
        aux_class_logits=aux_class_logits,
        sigmoid_before_output_resize=sigmoid_before_output_resize,
        device=device,
    )
    winners = [stream.add(chunk) for chunk in iter_frame_chunks(mask_logits, chunk_frames)]
    if not winners:
        raise ValueError("mask_logits has no frames")
    segments = stream.finish()
    segment_ids = torch.cat([stream.paint(w) for w in winners], dim=0)
    return PanopticResult(segment_ids=segment_ids, segments=segments)


def panoptic_inference(
    class_logits: torch.Tensor,
    mask_logits: torch.Tensor,
    geometry: MaskGeometry,
    *,
    num_things: int,
    object_mask_threshold: float,
    overlap_threshold: float,
) -> PanopticResult:
    """Image panoptic post-processing (Mask2Former ``panoptic_inference`` after
    ``sem_seg_postprocess``): [Q, K+1] logits, [Q, h, w] masks -> ``segment_ids`` [H, W]."""
    result = panoptic_video_inference(
        class_logits,
        mask_logits[None],
        geometry,
        num_things=num_things,
        object_mask_threshold=object_mask_threshold,
        overlap_threshold=overlap_threshold,
        sigmoid_before_output_resize=False,
    )
    return PanopticResult(segment_ids=result.segment_ids[0], segments=result.segments)
