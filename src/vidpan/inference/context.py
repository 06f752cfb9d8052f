"""What every step of a video session shares: the model, its options, a stage timer and progress.

:class:`RunContext` is built once per session by :class:`~vidpan.inference.session.Session`
and handed to the window, decide and mode steps, so no step takes the same eight arguments
(STYLE.md #3 for steps that are not modules: one typed bundle instead of a parameter threaded
through every call). It holds no per-video state; that lives in the session and mode states.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch

from vidpan.config import Config
from vidpan.models.build import DVIS

Mode = Literal["online", "offline", "long", "minvis"]
Task = Literal["vps", "vss", "vis"]
Precision = Literal["fp32", "bf16", "fp16"]
PostProcess = Literal["video", "stream"]
MODES: tuple[Mode, ...] = ("online", "offline", "long", "minvis")
TASKS: tuple[Task, ...] = ("vps", "vss", "vis")

#: Progress callback: ``(stage, frames)`` = ``frames`` more frames went through ``stage``.
#: Stages: ``segment`` (segmenter + tracker on a window), ``decide`` (the counting pass of a
#: whole-video VPS decision), ``emit`` (a frame's result is ready).
ProgressHook = Callable[[str, int], None]


class Timer:
    """Accumulates wall time per stage (synchronising CUDA so GPU time lands in its stage)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


@dataclass
class RunContext:
    """The model and the options of one session (no per-video state)."""

    model: DVIS
    config: Config
    device: torch.device
    precision: Precision
    spill_ram_budget: int
    timer: Timer
    progress: ProgressHook | None = None
    counts: dict[str, int] = field(default_factory=dict)  # frames per progress stage

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """Autocast for ``bf16`` / ``fp16``; nothing for ``fp32``."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def advance(self, stage: str, frames: int = 1) -> None:
        """Report ``frames`` more frames through ``stage`` (counted, and passed to the hook)."""
        self.counts[stage] = self.counts.get(stage, 0) + frames
        if self.progress is not None:
            self.progress(stage, frames)
