"""Long-video mode: the refiner over overlapping chunks, the tracker over the whole video.

The refiner runs over chunks of ``inference.chunk_length`` frames (default the refiner's
21-frame training clip), each sharing ``chunk_overlap`` frames with the next, while the
tracker carries its state over the whole video. Identities are stitched by construction: the
tracker's slot is the identity in every chunk, and segment ids are slot-stable (things
``1 + slot``, stuff ``1 + Q + class``). Each overlap's frames are taken half from each chunk.
Memory is bounded by the chunk length.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from vidpan.errors import InputError
from vidpan.inference.context import RunContext, Task
from vidpan.inference.decide import FrameResult, decide, emit
from vidpan.inference.modes.base import ModeRunner
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

    def drop(self, count: int) -> None:
        """Forget the first ``count`` frames of the chunk."""
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

    @property
    def state(self) -> LongState:
        return self._state

    def add(self, window: Window) -> Iterator[FrameResult]:
        st = self._state
        tracked, st.tracker = track_window(self.ctx, window, st.tracker, masks=False)
        st.geometry = window.geometry
        for k, index in enumerate(window.indices):
            st.indices.append(index)
            st.logits.append(tracked.class_logits[k])
            st.instance_embeds.append(tracked.embeds[k])
            st.frame_embeds.append(window.seg.embeds_unnormed[k])
            st.mask_features.append(window.seg.mask_features[k])
            if len(st.indices) == self.length:
                yield from self._refine(final=False)
                st.drop(self.length - self.overlap)

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
        with ctx.timer("refiner"), torch.inference_mode(), ctx.autocast():
            refined = refiner(
                torch.stack(st.instance_embeds[:n])[None], torch.stack(st.frame_embeds[:n])[None], None
            )
            normed = refined.embeds.float()[:, emit_from:emit_to]
            mf = torch.stack(st.mask_features[emit_from:emit_to])[None].to(ctx.device)
            masks = refiner.predict_masks(normed, mf)[0].float()
        class_logits = refined.class_logits[0, 0].float()
        aux = torch.stack(st.logits[:n]).mean(0)
        results = decide(ctx, self.task, class_logits, aux, [masks], st.geometry, stable=True)
        yield from emit(results, st.indices[emit_from:emit_to])
        st.chunks += 1
