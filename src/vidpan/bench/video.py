"""``vidpan bench video``: full offline video inference against the DVIS++ speed anchor.

``fixtures/dvis_plus_speed_anchor.json`` records the reference's full offline forward (segmenter,
tracker, refiner, VPS post-processing) of a ViT-S-like DINOv2 + adapter model with 100 queries and
6-layer tracker/refiner on 6 frames of 480×640, on a 2-core machine: 17.4 s median, 2.9 GB peak
RSS. This benchmark builds the same configuration from the anchor file
(:func:`vidpan.models.reference_config.model_config_from_reference`), gives it random weights
conditioned by the anchor's own rule (so that queries form segments like the reference's), runs
:class:`~vidpan.inference.predictor.VideoPredictor` in offline mode on a synthetic clip of the
same size, and reports the median wall time, the per-stage times and the process's peak RSS.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidpan.bench.timing import Stopwatch, median, peak_rss_mb
from vidpan.config import Config, apply_overrides
from vidpan.errors import InputError
from vidpan.inference.predictor import VideoPredictor
from vidpan.models.build import DVIS, build_dvis
from vidpan.models.reference_config import inference_config_from_reference, model_config_from_reference


@dataclass
class VideoBenchResult:
    """Timings of ``runs`` offline forwards (seconds) and memory (MB)."""

    config_name: str
    frames: int
    height: int
    width: int
    threads: int
    runs_s: list[float]
    median_s: float
    median_without_postprocess_s: float
    stages_s: dict[str, float]  # per stage, median over runs
    peak_rss_mb: float
    rss_after_build_mb: float
    segments: int
    thing_segments: int
    reference: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    device: str = "cpu"
    precision: str = "fp32"
    peak_gpu_mb: float | None = None  # torch.cuda.max_memory_allocated on CUDA

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.median_s if self.median_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "frames_per_second": self.frames_per_second}


def _reference_name_to_ours(pattern: str) -> str:
    return pattern.replace(r"sem_seg_head\.predictor", r"segmenter\.decoder").replace(
        "sem_seg_head.predictor", "segmenter.decoder"
    )


def condition_random_weights(model: DVIS, rule: dict[str, Any], *, seed: int) -> None:
    """Apply the anchor's ``weight_conditioning`` + ``weight_perturbation`` rule to our names.

    Residual-branch output weights × ``residual_scale``; the last mask-embedding layers ×
    ``mask_logit_scale``; ViT LayerScale := ``layerscale_init``; then relative Gaussian noise.
    (Same statistics as the reference's random model, not the same numbers: the key order of the
    noise differs.)
    """
    cond = rule["weight_conditioning"]
    scale = float(rule["weight_perturbation"]["scale"])
    residual = [re.compile(_reference_name_to_ours(p)) for p in cond["residual_branch_patterns"]]
    mask_logit = re.compile(_reference_name_to_ours(cond["mask_logit_pattern"]).replace(".", r"\."))
    gen = torch.Generator().manual_seed(10000 + seed)
    with torch.no_grad():
        state = model.state_dict()
        for name in sorted(state):
            t = state[name]
            if not t.is_floating_point():
                continue
            if any(p.search(name) for p in residual):
                t.mul_(float(cond["residual_scale"]))
            if mask_logit.search(name):
                t.mul_(float(cond["mask_logit_scale"]))
            if re.search(r"\.vit\.blocks\.\d+\.ls[12]\.gamma$", name):
                t.fill_(float(cond["layerscale_init"]))
            std = float(t.std()) if t.numel() > 1 else 0.0
            t.add_(scale * torch.randn(t.shape, generator=gen) * (std if std > 0 else 1.0))
            if name.endswith("running_var"):
                t.clamp_(min=1e-3)


def synthetic_clip(frames: int, height: int, width: int, *, seed: int = 0) -> np.ndarray:
    """A smooth moving-blob clip, uint8 [T, H, W, 3] (content does not change the cost)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    out = np.empty((frames, height, width, 3), np.uint8)
    centers = rng.uniform(0, 1, size=(6, 2)) * [height, width]
    colors = rng.uniform(40, 215, size=(6, 3))
    for t in range(frames):
        img = np.stack([xx / width * 255, yy / height * 255, np.full_like(xx, 128)], -1)
        for (cy, cx), col in zip(centers + t * 6.0, colors, strict=True):
            w = np.exp(-(((yy - cy % height) ** 2 + (xx - cx % width) ** 2) / (2 * (0.08 * height) ** 2)))
            img = img * (1 - w[..., None]) + col * w[..., None]
        out[t] = img.clip(0, 255).astype(np.uint8)
    return out


def run_video_bench(
    anchor_path: str | Path,
    *,
    runs: int = 3,
    warmup: int = 1,
    threads: int | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    overrides: tuple[str, ...] = (),
) -> VideoBenchResult:
    """Time vidpan's offline inference on the anchor's configuration and input size.

    ``overrides`` are ``inference.*`` config overrides (e.g. ``inference.segmenter_batch=3``).
    """
    path = Path(anchor_path)
    if not path.is_file():
        raise InputError("speed anchor file not found", path=path)
    anchor = json.loads(path.read_text())
    cfg = anchor["config"]
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(int(cfg.get("seed", 0)))
    config = Config(
        name=str(cfg.get("preset", "anchor")),
        model=model_config_from_reference(cfg),
        inference=inference_config_from_reference(cfg),
    )
    if any(not o.startswith("inference.") for o in overrides):
        raise InputError(f"only inference.* settings can be overridden here, got {list(overrides)}")
    config = apply_overrides(config, overrides)
    model = build_dvis(config.model)
    condition_random_weights(model, cfg, seed=int(cfg.get("seed", 0)))
    predictor = VideoPredictor(model, config, device=device, precision=precision)  # type: ignore[arg-type]
    rss_build = peak_rss_mb()
    frames, height, width = int(cfg["frames"]), int(cfg["height"]), int(cfg["width"])
    clip = synthetic_clip(frames, height, width, seed=int(cfg.get("seed", 0)))

    watch = Stopwatch(predictor.device)
    backbone = model.segmenter.backbone
    vit = getattr(backbone, "vit", None)
    if vit is not None:
        watch.wrap(vit, "run_blocks", "backbone/vit_blocks")
    for stage in getattr(backbone, "interactions", []):
        watch.wrap(stage, "forward", "backbone/extractors")
    if hasattr(backbone, "spm"):
        watch.wrap(backbone.spm, "forward", "backbone/spm")
    watch.wrap(backbone, "forward", "backbone")
    watch.wrap(model.segmenter.pixel_decoder, "forward", "pixel_decoder")
    watch.wrap(model.segmenter.decoder, "forward", "transformer_decoder")

    if predictor.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(predictor.device)
    times, per_run = [], []
    prediction = None
    try:
        for i in range(warmup + runs):
            watch.reset()
            prediction = predictor.predict(clip, mode="offline", task="vps")
            if i >= warmup:
                times.append(prediction.seconds)
                per_run.append(
                    {**watch.seconds, **{f"pipeline/{k}": v for k, v in prediction.timings.items()}}
                )
    finally:
        watch.restore()
    assert prediction is not None
    stages = {k: median([r.get(k, 0.0) for r in per_run]) for k in sorted(per_run[0])}
    return VideoBenchResult(
        config_name=config.name,
        frames=frames,
        height=height,
        width=width,
        threads=torch.get_num_threads(),
        runs_s=times,
        median_s=median(times),
        median_without_postprocess_s=median(
            [t - r.get("pipeline/postprocess", 0.0) for t, r in zip(times, per_run, strict=True)]
        ),
        stages_s=stages,
        peak_rss_mb=peak_rss_mb(),
        rss_after_build_mb=rss_build,
        segments=len(prediction.segments),
        thing_segments=sum(s.isthing for s in prediction.segments),
        reference={
            "median_s": anchor.get("median_s"),
            "median_without_vps_postprocess_s": anchor.get("median_without_vps_postprocess_s"),
            "peak_rss_MB": anchor.get("memory", {}).get("peak_rss_MB"),
            "stage_breakdown_s": (anchor.get("stage_breakdown_s") or [{}])[0],
            "final_output": anchor.get("final_output"),
        },
        overrides=list(overrides),
        device=str(predictor.device),
        precision=precision,
        peak_gpu_mb=(
            torch.cuda.max_memory_allocated(predictor.device) / 2**20
            if predictor.device.type == "cuda"
            else None
        ),
    )


def format_video_bench(result: VideoBenchResult) -> str:
    """A readable comparison table."""
    ref = result.reference
    lines = [
        f"vidpan offline inference, {result.frames} frames {result.width}x{result.height}, "
        f"{result.threads} threads, {result.device} {result.precision}, config {result.config_name!r}"
        + (f" with {' '.join(result.overrides)}" if result.overrides else ""),
        f"  runs: {', '.join(f'{t:.2f}' for t in result.runs_s)} s",
        f"  median: {result.median_s:.2f} s   (reference DVIS++: {ref.get('median_s')} s"
        + (f", ratio {ref['median_s'] / result.median_s:.2f}x)" if ref.get("median_s") else ")"),
        f"  median without VPS post-processing: {result.median_without_postprocess_s:.2f} s "
        f"(reference: {ref.get('median_without_vps_postprocess_s')} s)",
        f"  throughput: {result.frames_per_second:.2f} frames/s"
        + (f"   peak GPU memory: {result.peak_gpu_mb:.0f} MB" if result.peak_gpu_mb is not None else ""),
        f"  peak RSS: {result.peak_rss_mb:.0f} MB (after build {result.rss_after_build_mb:.0f} MB; "
        f"reference: {ref.get('peak_rss_MB')} MB)",
        f"  segments: {result.segments} ({result.thing_segments} things); reference: {ref.get('final_output')}",
        "  stages (median s):",
    ]
    for name, seconds in result.stages_s.items():
        lines.append(f"    {name:<32} {seconds:8.3f}")
    if ref.get("stage_breakdown_s"):
        lines.append("  reference stages (first timed run, s):")
        for name, seconds in ref["stage_breakdown_s"].items():
            lines.append(f"    {name:<32} {seconds:8.3f}")
    return "\n".join(lines)
