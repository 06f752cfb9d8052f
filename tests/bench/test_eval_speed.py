"""The evaluation benchmark: case builder in the official formats, timing harness, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidpan.bench.eval_speed import EvalCase, benchmark_eval, make_eval_case
from vidpan.cli.main import main
from vidpan.data.formats.vipseg import read_panoptic_video_json


def test_make_eval_case_is_valid_and_imperfect(tmp_path: Path) -> None:
    case = make_eval_case(tmp_path / "case", videos=2, frames=9, height=64, width=96, seed=3)
    assert case == EvalCase.at(tmp_path / "case")
    gt = read_panoptic_video_json(case.gt_json)
    assert [len(v.frames) for v in gt.videos] == [9, 9]
    from vidpan.data.synthetic import CATEGORIES

    assert len(gt.categories) == len(CATEGORIES)
    result = benchmark_eval(case, runs=1, workers=2)
    assert result.metrics_serial == result.metrics_parallel
    m = result.metrics_serial
    for key in ("VPQ1", "VPQ8", "VPQ"):
        assert m[key] is not None and 0 < m[key] < 100, key  # planted errors: neither 0 nor perfect
    for key in ("STQ", "AQ", "SQ", "mIoU", "fwIoU", "VC8"):
        assert m[key] is not None and 0 < m[key] < 1, key
    assert m["VC16"] is None  # 9 frames: no VC16 window
    assert "vidpan serial" in result.table()
    assert len(result.vidpan_cli.vps) == len(result.vidpan_cli.vss) == 1  # the CLI processes ran (exit 0)


def test_make_eval_case_is_deterministic(tmp_path: Path) -> None:
    a = make_eval_case(tmp_path / "a", videos=1, frames=3, height=32, width=48, seed=7)
    b = make_eval_case(tmp_path / "b", videos=1, frames=3, height=32, width=48, seed=7)
    assert a.gt_json.read_text() == b.gt_json.read_text()
    assert a.pred_json.read_text() == b.pred_json.read_text()


def test_bench_eval_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "eval", "--videos", "1", "--frames", "9", "--size", "32x48", "--runs", "1"]
    assert main([*args, "--data", str(tmp_path / "case"), "--json", str(out)]) == 0
    assert "median seconds" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert set(report["timings"]) == {"vidpan_serial", "vidpan_workers2", "vidpan_cli"}
    assert main([*args, "--official-dir", str(tmp_path)]) == 2
    assert "eval_vpq_vspw.py not found" in capsys.readouterr().err
