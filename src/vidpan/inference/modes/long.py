"""Long-video mode: the refiner over overlapping chunks, the tracker over the whole video.

The refiner runs over chunks of ``inference.chunk_length`` frames (default the refiner's
21-frame training clip), each sharing ``chunk_overlap`` frames with the next, while the
tracker carries its state over the whole video. Identities are stitched by construction: the
tracker's slot is the identity in every chunk, and segment ids are slot-stable (things
``1 + slot``, stuff ``1 + Q + class``). Each overlap's frames are taken half from each chunk.

The refiner also sees the query embeddings of the ``chunk_length`` frames before the chunk
(context only: masks are predicted for the chunk's frames), so a chunk's classes and masks are
decided with up to twice its length of temporal context, closer to offline's whole video.
For VPS, duplicate thing queries inside a chunk are merged before the decision and ids are
stitched across chunks (:mod:`.stitch`). Memory is bounded by the chunk length: its frames'
tensors plus the context's per-frame query embeddings (2 x Q x C floats per frame).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from vidpan.errors import InputError
from vidpan.inference.context import RunContext, Task
from vidpan.inference.decide import FrameResult, decide, emit
from vidpan.inference.modes.base import ModeRunner
from vidpan.inference.modes.stitch import Stitcher, merge_duplicates
from vidpan.inference.postprocess import MaskGeometry
from vidpan.inference.window import Window, track_window
from vidpan.models.tracker import TrackerState


@dataclass
class LongState:
    """The frames of the current chunk (at most ``chunk_length``), one entry per frame."""

    tracker: TrackerState | None = None
    indices: list[int] = field(default_factory=list)
    logits: list[torch.Tensor] = field(default_factory=list)  # [Q, K+1] tracker logits
    instance_embeds: list[torch.Tensor] = field(default_factory=list)  # [Q, C]
    frame_embeds: list[torch.Tensor] = field(default_factory=list)  # [Q, C]
    mask_features: list[torch.Tensor] = field(default_factory=list)  # [C, h, w]
    geometry: MaskGeometry | None = None
    chunks: int = 0  # chunks refined so far
    # Class evidence carried over the whole video so far (see the module docstring).
    refined_sum: torch.Tensor | None = None  # [Q, K+1] refiner logits x frames decided with them
    refined_frames: int = 0
    tracker_sum: torch.Tensor | None = None  # [Q, K+1] tracker logits summed over every frame seen
    tracker_frames: int = 0
    # Refiner context: the query embeddings of up to ``chunk_length`` frames before the chunk.
    context_instance: list[torch.Tensor] = field(default_factory=list)  # [Q, C] per frame
    context_frame: list[torch.Tensor] = field(default_factory=list)  # [Q, C] per frame

    def drop(self, count: int, context: int) -> None:
        """Forget the first ``count`` frames of the chunk, keeping the query embeddings of the
        last ``context`` frames before the new chunk as refiner context."""
        self.context_instance = (self.context_instance + self.instance_embeds[:count])[-context:]
        self.context_frame = (self.context_frame + self.frame_embeds[:count])[-context:]
        for buf in (self.indices, self.logits, self.instance_embeds, self.frame_embeds, self.mask_features):
            del buf[:count]


class LongMode(ModeRunner):
    def __init__(self, ctx: RunContext, task: Task) -> None:
        super().__init__(ctx, task)
        assert ctx.model.refiner is not None
        inf = ctx.config.inference
        self.length, self.overlap = inf.chunk_length, inf.chunk_overlap
        if self.length < 1 or not 0 <= self.overlap < self.length:
            raise InputError(
                f"inference.chunk_length / chunk_overlap: need length >= 1 and 0 <= overlap < length, "
                f"got {self.length} / {self.overlap}"
            )
        self._state = LongState()
        self.stitcher: Stitcher | None = None  # VPS: ids across chunks

    @property
    def state(self) -> LongState:
        return self._state

    def add(self, window: Window) -> Iterator[FrameResult]:
        st = self._state
        tracked, st.tracker = track_window(self.ctx, window, st.tracker, masks=False)
        st.geometry = window.geometry
        logits = tracked.class_logits
        st.tracker_sum = logits.sum(0) if st.tracker_sum is None else st.tracker_sum + logits.sum(0)
        st.tracker_frames += logits.shape[0]
        for k, index in enumerate(window.indices):
            st.indices.append(index)
            st.logits.append(tracked.class_logits[k])
            st.instance_embeds.append(tracked.embeds[k])
            st.frame_embeds.append(window.seg.embeds_unnormed[k])
            st.mask_features.append(window.seg.mask_features[k])
            if len(st.indices) == self.length:
                yield from self._refine(final=False)
                st.drop(self.length - self.overlap, context=self.length)

    def finish(self) -> Iterator[FrameResult]:
        if self._state.indices:
            # The last (possibly shorter) chunk: the frames not emitted yet, with the carried overlap.
            yield from self._refine(final=True)

    def _refine(self, *, final: bool) -> Iterator[FrameResult]:
        st, ctx = self._state, self.ctx
        refiner = ctx.model.refiner
        assert refiner is not None and st.geometry is not None
        n = min(self.length, len(st.indices))
        emit_from = 0 if st.chunks == 0 else self.overlap // 2
        emit_to = n if final else n - (self.overlap - self.overlap // 2)
        # VPS decides the whole chunk, so the frames shared with the neighbours can be stitched.
        span = (0, n) if self.task == "vps" else (emit_from, emit_to)
        c0 = len(st.context_instance)  # context frames before the chunk's first frame
        with ctx.timer("refiner"), torch.inference_mode(), ctx.autocast():
            instance = torch.stack(st.context_instance + st.instance_embeds[:n])[None]  # [1, c0 + n, Q, C]
            frame = torch.stack(st.context_frame + st.frame_embeds[:n])[None]
            refined = refiner(instance, frame, None)
            normed = refined.embeds.float()[:, c0 + span[0] : c0 + span[1]]
            mf = torch.stack(st.mask_features[span[0] : span[1]])[None].to(ctx.device)
            masks = refiner.predict_masks(normed, mf)[0].float()
        chunk_probs = refined.class_logits[0, 0].float().softmax(-1) * (emit_to - emit_from)
        st.refined_sum = chunk_probs if st.refined_sum is None else st.refined_sum + chunk_probs
        st.refined_frames += emit_to - emit_from
        assert st.tracker_sum is not None
        if st.chunks == 0:  # exactly the refiner's logits: one chunk = offline, bit for bit
            class_logits = refined.class_logits[0, 0].float()
        else:
            class_logits = (st.refined_sum / st.refined_frames).log()  # softmax(log p) = p
        aux = st.tracker_sum / st.tracker_frames
        if self.task == "vps" and not (final and st.chunks == 0):
            masks = merge_duplicates(masks, class_logits, aux, num_things=ctx.config.model.num_things,
                                     threshold=ctx.config.inference.object_mask_threshold)  # fmt: skip
        results = decide(ctx, self.task, class_logits, aux, [masks], st.geometry, stable=True)
        if self.task == "vps":
            if self.stitcher is None:
                self.stitcher = Stitcher(fresh=1 + class_logits.shape[0] + class_logits.shape[1])
            embeds = refined.embeds[0, c0:].float().mean(0).cpu().numpy()  # the chunk's [n, Q, C] -> [Q, C]
            frames = self.stitcher.relabel(list(results), 0 if final else self.overlap, embeds)  # type: ignore[arg-type]
            results = iter(frames[emit_from:emit_to])
        yield from emit(results, st.indices[emit_from:emit_to])
        st.chunks += 1
