"""Segmenter and video benchmarks run end to end on small configurations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidpan.bench.segmenter import format_segmenter_bench, run_segmenter_bench
from vidpan.bench.video import format_video_bench, run_video_bench
from vidpan.cli.main import main


def test_bench_segmenter_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "seg.json"
    assert (
        main(["bench", "segmenter", "--preset", "tiny", "--size", "64x96", "--runs", "1", "--json", str(out)])
        == 0
    )
    text = capsys.readouterr().out
    for module in ("vit", "adapter", "pixel_decoder", "transformer_decoder", "total"):
        assert module in text
    report = json.loads(out.read_text())
    assert report["seconds"]["total"] >= report["seconds"]["pixel_decoder"] > 0
    assert main(["bench", "segmenter", "--preset", "tiny", "--precision", "fp16"]) == 2


def test_video_bench_on_fixture_config(dvis_fixture: Path) -> None:
    """The anchor machinery runs on any file with the reference harness's `config` layout."""
    result = run_video_bench(dvis_fixture / "meta.json", runs=1, warmup=0)
    assert result.frames == json.loads((dvis_fixture / "meta.json").read_text())["config"]["frames"]
    assert result.median_s > 0 and result.peak_rss_mb > 0
    assert result.stages_s["pixel_decoder"] > 0 and result.stages_s["backbone/vit_blocks"] > 0
    assert "median" in format_video_bench(result)
    assert result.frames_per_second == pytest.approx(result.frames / result.median_s)
    assert result.peak_gpu_mb is None and "throughput" in format_video_bench(result)


def test_bench_segmenter_bf16_on_cpu_reports_fps() -> None:
    result = run_segmenter_bench("tiny", size=(64, 96), runs=1, warmup=0, precision="bf16")
    assert result.precision == "bf16" and result.frames_per_second > 0
    assert "frames/s" in format_segmenter_bench(result)
