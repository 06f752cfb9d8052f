"""``vidpan segment --profile``: where the time of a run goes, as a table users can read.

Two sources, both wall-clock seconds:

- the pipeline stages the predictor already times (``VideoPrediction.timings``: decode,
  segmenter, tracker, refiner, postprocess, write);
- inside the segmenter, the model parts (backbone ViT blocks, adapter, pixel decoder,
  transformer decoder), timed by wrapping their ``forward`` for the duration of the run
  (:class:`ModelProfiler`; removed afterwards, outputs unchanged).

Also the process CPU time over the run, so a user on a shared machine can see whether the
wall time was spent computing (CPU ≈ wall × threads) or waiting for cores.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from torch import nn

from vidpan.bench.timing import Stopwatch

PIPELINE_ORDER = ("decode", "segmenter", "tracker", "refiner", "postprocess", "write")


@dataclass
class RunProfile:
    """Accumulated seconds of one or more videos."""

    frames: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    threads: int = 1
    pipeline_s: dict[str, float] = field(default_factory=dict)
    model_s: dict[str, float] = field(default_factory=dict)

    def add_pipeline(self, timings: Mapping[str, float], frames: int) -> None:
        self.frames += frames
        for name, seconds in timings.items():
            self.pipeline_s[name] = self.pipeline_s.get(name, 0.0) + seconds

    def table(self) -> str:
        """The per-stage table (seconds, ms per frame, share of the wall time)."""
        frames = max(self.frames, 1)
        wall = max(self.wall_s, 1e-9)
        lines = [
            f"profile: {self.frames} frames in {self.wall_s:.2f} s wall "
            f"({self.frames / wall:.2f} frames/s), {self.cpu_s:.2f} s CPU on {self.threads} thread(s)",
            f"  {'stage':<34}{'seconds':>9}{'ms/frame':>10}{'share':>8}",
        ]

        def row(name: str, seconds: float) -> None:
            lines.append(f"  {name:<34}{seconds:9.3f}{1000 * seconds / frames:10.1f}{seconds / wall:8.1%}")

        names = [n for n in PIPELINE_ORDER if n in self.pipeline_s]
        names += sorted(n for n in self.pipeline_s if n not in PIPELINE_ORDER)
        accounted = 0.0
        for name in names:
            row(name, self.pipeline_s[name])
            accounted += self.pipeline_s[name]
            if name == "segmenter":
                for part, seconds in self.model_s.items():
                    row(f"  {part}", seconds)
        row("other", max(self.wall_s - accounted, 0.0))
        return "\n".join(lines)


class ModelProfiler:
    """Times the segmenter's parts while active (``with ModelProfiler(model) as prof:``)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.watch = Stopwatch(next((p.device for p in model.parameters()), None))

    def _install(self) -> None:
        segmenter = getattr(self.model, "segmenter", None)
        if segmenter is None:
            return
        backbone = getattr(segmenter, "backbone", None)
        vit = getattr(backbone, "vit", None)
        if vit is not None and hasattr(vit, "run_blocks"):
            self.watch.wrap(vit, "run_blocks", "backbone: ViT blocks")
        if backbone is not None:
            self.watch.wrap(backbone, "forward", "backbone (total)")
        for attr, name in (("pixel_decoder", "pixel decoder"), ("decoder", "transformer decoder")):
            part = getattr(segmenter, attr, None)
            if part is not None:
                self.watch.wrap(part, "forward", name)

    def __enter__(self) -> ModelProfiler:
        self._install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.watch.restore()

    @property
    def seconds(self) -> dict[str, float]:
        return dict(self.watch.seconds)


@contextmanager
def profile_run(model: nn.Module, threads: int) -> Iterator[RunProfile]:
    """Collect a :class:`RunProfile` over the body; the caller adds the pipeline timings."""
    prof = RunProfile(threads=threads)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    with ModelProfiler(model) as parts:
        try:
            yield prof
        finally:
            prof.wall_s = time.perf_counter() - wall0
            prof.cpu_s = time.process_time() - cpu0
            prof.model_s = parts.seconds
