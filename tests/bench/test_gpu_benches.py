"""CUDA benchmark paths (marked ``gpu``; skipped without a CUDA device)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vidpan.bench.segmenter import run_segmenter_bench
from vidpan.bench.video import run_video_bench

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_segmenter_bench_cuda_reports_gpu_memory(precision: str) -> None:
    result = run_segmenter_bench("tiny", size=(128, 192), runs=1, device="cuda", precision=precision)
    assert result.device.startswith("cuda") and result.frames_per_second > 0
    assert result.peak_gpu_mb is not None and result.peak_gpu_mb > 0


def test_video_bench_cuda_bf16(dvis_fixture: Path) -> None:
    result = run_video_bench(dvis_fixture / "meta.json", runs=1, warmup=0, device="cuda", precision="bf16")
    assert result.device.startswith("cuda") and result.precision == "bf16"
    assert result.peak_gpu_mb is not None and result.peak_gpu_mb > 0
    assert result.stages_s["pixel_decoder"] > 0


def test_segmenter_cuda_bf16_close_to_fp32() -> None:
    from vidpan.config import load_config
    from vidpan.models.build import build_model_segmenter

    torch.manual_seed(0)
    model = build_model_segmenter(load_config("tiny").model).cuda().eval()
    images = torch.randint(0, 256, (2, 3, 96, 128), dtype=torch.uint8, device="cuda")
    with torch.inference_mode():
        ref = model(images, return_aux=False)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(images, return_aux=False)
    assert out.mask_features.dtype == torch.float32
    diff = (out.mask_logits.float() - ref.mask_logits).abs().max()
    assert diff < 0.1 * ref.mask_logits.abs().max() + 0.05
