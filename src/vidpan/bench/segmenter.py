"""``vidpan bench segmenter``: per-module wall time and peak memory of the segmenter.

Builds a preset with random weights, runs the segmenter on N frames of a given size, and times
the ViT blocks, the adapter (spatial prior module + extractors + pyramid), the pixel decoder and
the transformer decoder separately (median over runs), plus the process's peak RSS and, on CUDA,
the peak allocated GPU memory.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

from vidpan.bench.timing import Stopwatch, median, peak_rss_mb
from vidpan.config import load_config
from vidpan.errors import InputError
from vidpan.models.build import build_model_segmenter

MODULES = ("vit", "adapter", "pixel_decoder", "transformer_decoder", "total")


@dataclass
class SegmenterBenchResult:
    preset: str
    frames: int
    height: int
    width: int
    precision: str
    device: str
    threads: int
    seconds: dict[str, float]  # median per module, for all N frames
    peak_rss_mb: float
    peak_gpu_mb: float | None

    @property
    def frames_per_second(self) -> float:
        total = self.seconds.get("total", 0.0)
        return self.frames / total if total > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "frames_per_second": self.frames_per_second}


def run_segmenter_bench(
    preset: str,
    *,
    size: tuple[int, int] = (480, 640),
    frames: int = 1,
    runs: int = 3,
    warmup: int = 1,
    precision: str = "fp32",
    device: str = "cpu",
    overrides: tuple[str, ...] = (),
) -> SegmenterBenchResult:
    """Time the segmenter of ``preset`` on ``frames`` random frames of ``size`` (H, W)."""
    if precision not in ("fp32", "bf16", "fp16"):
        raise InputError(f"--precision: expected fp32, bf16 or fp16, got {precision!r}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available")
    if precision == "fp16" and dev.type != "cuda":
        raise InputError("--precision fp16 needs CUDA")
    torch.manual_seed(0)
    config = load_config(preset, overrides)
    segmenter = build_model_segmenter(config.model).to(dev).eval()
    images = torch.randint(0, 256, (frames, 3, *size), dtype=torch.uint8, device=dev)
    autocast: contextlib.AbstractContextManager[object] = (
        contextlib.nullcontext()
        if precision == "fp32"
        else torch.autocast(dev.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    )
    watch = Stopwatch(dev)
    backbone = segmenter.backbone
    vit = getattr(backbone, "vit", None)
    if vit is not None:
        watch.wrap(vit, "run_blocks", "vit")
        watch.wrap(vit, "prepare_tokens", "vit")
    watch.wrap(backbone, "forward", "backbone")
    watch.wrap(segmenter.pixel_decoder, "forward", "pixel_decoder")
    watch.wrap(segmenter.decoder, "forward", "transformer_decoder")
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    per_run: list[dict[str, float]] = []
    try:
        for i in range(warmup + runs):
            watch.reset()
            with torch.inference_mode(), autocast, watch.part("total"):
                segmenter(images, return_aux=False)
            if i >= warmup:
                times = dict(watch.seconds)
                times["adapter"] = times.get("backbone", 0.0) - times.get("vit", 0.0)
                per_run.append(times)
    finally:
        watch.restore()
    seconds = {name: median([r.get(name, 0.0) for r in per_run]) for name in MODULES}
    return SegmenterBenchResult(
        preset=preset,
        frames=frames,
        height=size[0],
        width=size[1],
        precision=precision,
        device=str(dev),
        threads=torch.get_num_threads(),
        seconds=seconds,
        peak_rss_mb=peak_rss_mb(),
        peak_gpu_mb=torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None,
    )


def format_segmenter_bench(r: SegmenterBenchResult) -> str:
    lines = [
        f"segmenter {r.preset!r}: {r.frames} frame(s) {r.height}x{r.width}, {r.precision}, {r.device}, "
        f"{r.threads} threads (median of runs)",
        f"  {'module':<22} {'seconds':>9} {'per frame':>10} {'share':>7}",
    ]
    total = r.seconds["total"] or 1.0
    for name in MODULES:
        s = r.seconds[name]
        lines.append(f"  {name:<22} {s:9.3f} {s / r.frames:10.3f} {100 * s / total:6.1f}%")
    lines.append(f"  throughput: {r.frames_per_second:.2f} frames/s")
    lines.append(f"  peak RSS: {r.peak_rss_mb:.0f} MB")
    if r.peak_gpu_mb is not None:
        lines.append(f"  peak GPU memory: {r.peak_gpu_mb:.0f} MB")
    return "\n".join(lines)
