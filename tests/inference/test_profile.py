"""``vidpan segment --profile`` prints a per-stage table; the profiler leaves outputs unchanged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from vidpan.bench.memory import write_moving_video
from vidpan.inference.profile import ModelProfiler, RunProfile


def test_segment_profile_prints_stages(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    write_moving_video(video, 6, 64, 96)
    proc = subprocess.run(
        [sys.executable, "-m", "vidpan", "segment", str(video), "--out", str(tmp_path / "out"),
         "--no-progress", "--profile", "--threads", "1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout[proc.stdout.index("profile: 6 frames") :]
    for stage in ("decode", "segmenter", "pixel decoder", "transformer decoder", "postprocess", "write"):
        assert f"  {stage}" in table, table
    assert "1 thread(s)" in table


def test_model_profiler_restores_forward_and_keeps_outputs() -> None:
    seq = torch.nn.Sequential(torch.nn.Linear(4, 4))
    holder = torch.nn.Module()
    holder.segmenter = torch.nn.Module()
    holder.segmenter.decoder = seq
    x = torch.randn(2, 4)
    expected = seq(x)
    with ModelProfiler(holder) as prof:
        torch.testing.assert_close(seq(x), expected)
    assert set(prof.seconds) == {"transformer decoder"}
    assert "forward" not in seq.__dict__  # wrapper removed


def test_run_profile_table_rows() -> None:
    prof = RunProfile(frames=0, wall_s=2.0, cpu_s=1.5, threads=2)
    prof.add_pipeline({"segmenter": 1.0, "decode": 0.5, "custom": 0.1}, frames=4)
    prof.model_s = {"pixel decoder": 0.4}
    lines = prof.table().splitlines()
    assert lines[0].startswith("profile: 4 frames in 2.00 s wall (2.00 frames/s)")
    names = [line.split()[0] for line in lines[2:]]
    assert names == ["decode", "segmenter", "pixel", "custom", "other"]
