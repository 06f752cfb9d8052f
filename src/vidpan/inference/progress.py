"""Progress that moves: a bar per stage of a video session, advanced frame by frame.

A session reports ``(stage, frames)`` as frames go through its stages (see
:data:`vidpan.inference.context.ProgressHook`): ``segment`` (decoded, segmented and tracked),
``decide`` (the counting pass of a whole-video VPS decision) and ``emit`` (result ready).
Whole-video modes (offline, online without streaming) spend most of their time before the
first result, so :class:`StageProgress` shows one bar per stage there, each from 0 to the frame
count; incremental modes show only ``emit``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class StageProgress:
    """A progress hook drawing one tqdm-style bar that restarts at each shown stage.

    Args:
        bar: an object with tqdm's ``update``, ``reset``, ``set_description`` and ``close``.
        name: the video name shown before the stage.
        total: frames in the video (0 = unknown).
    """

    def __init__(self, bar: Any, name: str, total: int) -> None:
        self.bar = bar
        self.name = name
        self.total = total or None
        self.shown: tuple[str, ...] = ("emit",)
        self.stage: str | None = None
        self.counts: dict[str, int] = {}

    @classmethod
    def tqdm(cls, name: str, total: int) -> StageProgress:
        """A bar on stderr (tqdm)."""
        from tqdm import tqdm

        return cls(tqdm(total=total or None, unit="frame", desc=name, dynamic_ncols=True), name, total)

    def show(self, stages: Sequence[str]) -> None:
        """Show these stages (in the order they happen); the others are only counted."""
        self.shown = tuple(stages)

    def __call__(self, stage: str, frames: int) -> None:
        self.counts[stage] = self.counts.get(stage, 0) + frames
        if stage not in self.shown:
            return
        if stage != self.stage:
            self.stage = stage
            if len(self.shown) > 1:
                step = self.shown.index(stage) + 1
                self.bar.reset(total=self.total)
                self.bar.set_description(f"{self.name} [{step}/{len(self.shown)} {stage}]")
        self.bar.update(frames)

    def close(self) -> None:
        self.bar.close()
