"""VPQ quirks of the official ``eval_vpq_vspw.py`` on hand-built cases (metrics_reference.md §2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from eval_cases import write_vps_case

from vidpan.cli.main import main
from vidpan.evaluation.evaluator import VPSResult, evaluate_vps

H, W = 4, 10


def cols(spec: dict[tuple[int, int], int]) -> np.ndarray:
    """An [H, W] id map from {(first column, end column): id} (id 0 elsewhere)."""
    out = np.zeros((H, W), np.int64)
    for (a, b), v in spec.items():
        out[:, a:b] = v
    return out


def run(tmp_path: Path, gts, preds, gt_cats, pred_cats, **kw) -> VPSResult:  # type: ignore[no-untyped-def]
    case = write_vps_case(tmp_path, {"v": (gts, preds)}, gt_cats, pred_cats, **kw)
    return evaluate_vps(*case.paths())


def counts(result: VPSResult, k: int, cat: int) -> tuple[int, int, int]:
    r = result.windows[k].per_class.get(cat)
    return (0, 0, 0) if r is None else (r.tp, r.fp, r.fn)


def test_fp_mostly_on_void_is_ignored(tmp_path: Path) -> None:
    gt = cols({(4, 10): 100})  # columns 0-3 void
    pred = cols({(0, 5): 200, (5, 10): 300})  # 200: 16 of its 20 pixels on void
    res = run(tmp_path, [gt], [pred], {100: 0}, {200: 3, 300: 0})
    assert counts(res, 1, 3) == (0, 0, 0)  # not an FP, and class 3 is not counted at all
    assert counts(res, 1, 0) == (1, 0, 0)
    assert res.windows[1].vpq == pytest.approx(100 * 20 / 24)


def test_fp_exactly_half_on_void_counts(tmp_path: Path) -> None:
    gt = cols({(4, 10): 100})
    pred = cols({(2, 6): 200, (6, 10): 300})  # 200: 8 of 16 pixels on void -> not > 0.5
    res = run(tmp_path, [gt], [pred], {100: 0}, {200: 3, 300: 0})
    assert counts(res, 1, 3) == (0, 1, 0)


def test_tp_needs_iou_strictly_above_half(tmp_path: Path) -> None:
    gt = cols({(0, 5): 100, (5, 10): 101})
    pred = np.full((H, W), 301, np.int64)
    pred[:2, 0:5] = 300  # 10 of GT 100's 20 pixels: IoU exactly 0.5
    res = run(tmp_path, [gt], [pred], {100: 0, 101: 1}, {300: 0, 301: 1})
    assert counts(res, 1, 0) == (0, 1, 1)
    assert counts(res, 1, 1) == (1, 0, 0)


def test_union_leaves_out_pred_on_void(tmp_path: Path) -> None:
    gt = cols({(6, 10): 100})  # 24 void pixels, 16 labelled
    pred = np.full((H, W), 300, np.int64)  # IoU = 16 / (40 + 16 - 16 - 24) = 1 (0.4 with void)
    res = run(tmp_path, [gt], [pred], {100: 0}, {300: 0})
    assert counts(res, 1, 0) == (1, 0, 0)
    assert res.windows[1].per_class[0].iou == 1.0


def test_tube_category_from_first_frame_of_window(tmp_path: Path) -> None:
    gt = cols({(0, 5): 100, (5, 10): 101})
    pred = cols({(0, 5): 300, (5, 10): 301})
    # Pred 300 is class 2 in frame 0 and class 3 in frame 1.
    res = run(tmp_path, [gt, gt], [pred, pred], {100: 2, 101: 0}, [{300: 2, 301: 0}, {300: 3, 301: 0}])
    assert counts(res, 1, 2) == (1, 0, 1) and counts(res, 1, 3) == (0, 1, 0)
    # The 2-frame window takes class 2 from frame 0 for the whole tube: a TP.
    assert counts(res, 2, 2) == (1, 0, 0) and counts(res, 2, 3) == (0, 0, 0)
    assert res.windows[2].vpq == 100.0


def test_id_switch_splits_the_tube(tmp_path: Path) -> None:
    gt = cols({(0, 5): 100, (5, 10): 101})
    pred0 = cols({(0, 5): 300, (5, 10): 301})
    pred1 = cols({(0, 5): 302, (5, 10): 301})  # the thing changes id
    res = run(tmp_path, [gt, gt], [pred0, pred1], {100: 2, 101: 0}, {300: 2, 301: 0, 302: 2})
    assert counts(res, 1, 2) == (2, 0, 0)
    assert counts(res, 2, 2) == (0, 2, 1)  # each half has IoU exactly 0.5


def test_crowd_region_ignored(tmp_path: Path) -> None:
    gt = cols({(0, 5): 100, (5, 10): 101})
    pred = cols({(0, 5): 300, (5, 10): 301})
    res = run(tmp_path, [gt], [pred], {100: 2, 101: 0}, {300: 2, 301: 0}, crowd={100})
    assert counts(res, 1, 2) == (0, 0, 0)  # crowd GT: no FN; the pred on it: no FP
    (tmp_path / "b").mkdir()
    res = run(tmp_path / "b", [gt], [pred], {100: 2, 101: 0}, {300: 3, 301: 0}, crowd={100})
    assert counts(res, 1, 3) == (0, 1, 0)  # only the crowd region of the pred's own class counts


def test_class_only_predicted_counts_with_zero(tmp_path: Path) -> None:
    gt = cols({(0, 10): 100})
    pred = cols({(0, 8): 300, (8, 10): 301})
    res = run(tmp_path, [gt], [pred], {100: 0}, {300: 0, 301: 4})
    assert counts(res, 1, 4) == (0, 1, 0)
    assert res.windows[1].num_classes == 2
    assert res.windows[1].vpq == pytest.approx(100 * (0.8 + 0.0) / 2)


def test_window_longer_than_video_is_undefined(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt = cols({(0, 10): 100})
    case = write_vps_case(tmp_path, {"v": ([gt], [gt])}, {100: 0}, {100: 0})
    out = tmp_path / "m.json"
    assert main(["eval", "vps", *case.args(), "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["VPQ1"] == 100.0
    for key in ("VPQ2", "VPQ4", "VPQ6", "VPQ8", "VPQ", "VPQ_1246"):
        assert metrics[key] is None  # the official script raises ZeroDivisionError here
    assert "n/a" in capsys.readouterr().out


def test_pooled_over_windows_and_videos(tmp_path: Path) -> None:
    """Counts are summed over all windows of all videos before PQ; short videos drop out at large k."""
    gt = cols({(0, 5): 100, (5, 10): 101})
    good = cols({(0, 5): 300, (5, 10): 301})
    bad = cols({(0, 2): 300, (2, 10): 301})
    case = write_vps_case(
        tmp_path,
        {"long": ([gt] * 3, [good, bad, good]), "short": ([gt], [good])},
        {100: 2, 101: 0},
        {300: 2, 301: 0},
    )
    res = evaluate_vps(*case.paths())
    assert counts(res, 1, 2) == (3, 1, 1)  # 4 frames, one miss
    # Both 2-frame windows of "long" hold the bad frame, yet their tube IoU is 28/40 = 0.7.
    assert counts(res, 2, 2) == (2, 0, 0)
    assert res.windows[2].per_class[2].iou == pytest.approx(1.4)
    assert res.windows[2].num_windows == 2 and res.windows[4].num_windows == 0
