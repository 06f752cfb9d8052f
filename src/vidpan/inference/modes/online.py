"""Online mode: segmenter + referring tracker, window by window (DVIS++ ``DVIS_Plus_online``).

Each window's frames go through an *association* (the referring tracker, or MinVIS matching
in :mod:`.minvis`) that puts every query into its track slot. With whole-video
post-processing (the reference's; ``streaming=False``) the class of a track is the mean of its
logits over the whole video and the VPS overlap test counts over the whole volume, so the
per-window mask logits are spilled and every frame is decided at the end. Streaming
(``streaming=True``) decides each window as soon as it is tracked, with the running mean of the
class logits and slot-stable ids, so nothing grows with the video.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import torch

from vidpan.inference.context import RunContext, Task
from vidpan.inference.decide import FrameResult, decide, emit
from vidpan.inference.modes.base import ModeRunner
from vidpan.inference.postprocess import MaskGeometry
from vidpan.inference.spill import TensorSpill
from vidpan.inference.window import Window, track_window
from vidpan.models.tracker import TrackerState


class Association(Protocol):
    """Puts a window's queries into track slots: -> (class logits [t, Q, K+1], masks [t, Q, h, w])."""

    def __call__(self, ctx: RunContext, window: Window) -> tuple[torch.Tensor, torch.Tensor]: ...


class TrackerAssociation:
    """The referring tracker; ``state`` is carried from window to window."""

    def __init__(self, ctx: RunContext) -> None:
        self.state: TrackerState | None = None

    def __call__(self, ctx: RunContext, window: Window) -> tuple[torch.Tensor, torch.Tensor]:
        tracked, self.state = track_window(ctx, window, self.state, masks=True)
        assert tracked.mask_logits is not None
        return tracked.class_logits, tracked.mask_logits


@dataclass
class OnlineState:
    """What online mode carries between windows (besides the association's own state)."""

    association: object  # TrackerAssociation / MinvisAssociation
    logit_sum: torch.Tensor | None = None  # [Q, K+1] sum of the per-frame class logits so far
    frames: int = 0
    geometry: MaskGeometry | None = None
    spilled_windows: int = 0  # whole-video post-processing: windows of mask logits spilled


class OnlineMode(ModeRunner):
    def __init__(self, ctx: RunContext, task: Task, association: Association, *, streaming: bool) -> None:
        super().__init__(ctx, task)
        self.associate = association
        self.streaming = streaming
        self.decides_at_end = not streaming
        self._state = OnlineState(association=association)
        self._spill = TensorSpill(ram_budget=ctx.spill_ram_budget)

    @property
    def state(self) -> OnlineState:
        return self._state

    def add(self, window: Window) -> Iterator[FrameResult]:
        st = self._state
        logits, masks = self.associate(self.ctx, window)
        st.logit_sum = logits.sum(0) if st.logit_sum is None else st.logit_sum + logits.sum(0)
        st.frames += logits.shape[0]
        st.geometry = window.geometry
        if self.streaming:
            results = decide(self.ctx, self.task, st.logit_sum / st.frames, None, [masks], window.geometry,
                             stable=True)  # fmt: skip
            yield from emit(results, window.indices)
        else:
            self._spill.append(masks)
            st.spilled_windows += 1

    def finish(self) -> Iterator[FrameResult]:
        st = self._state
        try:
            if self.streaming or st.logit_sum is None or st.geometry is None:
                return
            chunks = (entry[0] for entry in self._spill)
            results = decide(self.ctx, self.task, st.logit_sum / st.frames, None, chunks, st.geometry,
                             stable=False)  # fmt: skip
            yield from emit(results, range(st.frames))
        finally:
            self.release()

    def release(self) -> None:
        self._spill.close()
