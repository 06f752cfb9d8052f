"""Offline mode: segmenter + tracker + temporal refiner over the whole video (DVIS++
``DVIS_Plus_offline``, ``exact``).

The tracker runs window by window; its per-frame instance embeddings and the segmenter's
frame embeddings ([T, Q, C] each) stay in memory, the mask features are spilled. When the
video ends the refiner runs once over every frame, its per-frame masks are computed window by
window from the spilled features, and the whole video is decided (class = the refiner's,
max-fused with the tracker's mean). Resident memory grows only with the per-frame query
embeddings (Q × 2C floats per frame).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from vidpan.inference.context import RunContext, Task
from vidpan.inference.decide import FrameResult, decide, emit
from vidpan.inference.modes.base import ModeRunner
from vidpan.inference.postprocess import MaskGeometry
from vidpan.inference.spill import TensorSpill
from vidpan.inference.window import Window, track_window
from vidpan.models.tracker import TrackerState


@dataclass
class OfflineState:
    tracker: TrackerState | None = None
    logit_sum: torch.Tensor | None = None  # [Q, K+1] sum of the tracker's per-frame logits
    instance_embeds: list[torch.Tensor] = field(default_factory=list)  # per window [t, Q, C]
    frame_embeds: list[torch.Tensor] = field(default_factory=list)  # per window [t, Q, C]
    geometry: MaskGeometry | None = None

    @property
    def frames(self) -> int:
        return sum(e.shape[0] for e in self.instance_embeds)


class OfflineMode(ModeRunner):
    decides_at_end = True

    def __init__(self, ctx: RunContext, task: Task) -> None:
        super().__init__(ctx, task)
        assert ctx.model.refiner is not None
        self._state = OfflineState()
        self._features = TensorSpill(ram_budget=ctx.spill_ram_budget)  # per window [t, C, h, w]

    @property
    def state(self) -> OfflineState:
        return self._state

    def add(self, window: Window) -> Iterator[FrameResult]:
        st = self._state
        tracked, st.tracker = track_window(self.ctx, window, st.tracker, masks=False)
        logits = tracked.class_logits
        st.logit_sum = logits.sum(0) if st.logit_sum is None else st.logit_sum + logits.sum(0)
        st.instance_embeds.append(tracked.embeds)
        st.frame_embeds.append(window.seg.embeds_unnormed)
        self._features.append(window.seg.mask_features)
        st.geometry = window.geometry
        yield from ()

    def finish(self) -> Iterator[FrameResult]:
        st, ctx = self._state, self.ctx
        refiner = ctx.model.refiner
        assert refiner is not None
        try:
            if st.logit_sum is None or st.geometry is None:
                return
            count = st.frames
            with ctx.timer("refiner"), torch.inference_mode(), ctx.autocast():
                refined = refiner(torch.cat(st.instance_embeds)[None], torch.cat(st.frame_embeds)[None], None)
            normed = refined.embeds.float()  # [1, T, Q, C]
            class_logits = refined.class_logits[0, 0].float()
            st.instance_embeds, st.frame_embeds = [], []

            def mask_chunks() -> Iterator[torch.Tensor]:
                start = 0
                for (mf,) in self._features.drain():  # each window's features freed once used
                    stop = start + mf.shape[0]
                    with ctx.timer("refiner"), torch.inference_mode():
                        masks = refiner.predict_masks(normed[:, start:stop], mf[None].to(ctx.device))
                        chunk = masks[0].float()
                    start = stop
                    yield chunk

            results = decide(ctx, self.task, class_logits, st.logit_sum / count, mask_chunks(), st.geometry,
                             stable=False)  # fmt: skip
            yield from emit(results, range(count))
        finally:
            self.release()

    def release(self) -> None:
        self._features.close()
