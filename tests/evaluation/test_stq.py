"""STQ quirks of the official VIPSeg STQ driver + module on hand-built cases (metrics_reference.md §3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from eval_cases import write_vps_case

from vidpan.evaluation.evaluator import evaluate_vps
from vidpan.evaluation.stq import STQResult

H, W = 4, 10


def cols(spec: dict[tuple[int, int], int]) -> np.ndarray:
    out = np.zeros((H, W), np.int64)
    for (a, b), v in spec.items():
        out[:, a:b] = v
    return out


def stq(tmp_path: Path, gts, preds, gt_cats, pred_cats, **kw) -> STQResult:  # type: ignore[no-untyped-def]
    case = write_vps_case(tmp_path, {"v": (gts, preds)}, gt_cats, pred_cats, **kw)
    return evaluate_vps(*case.paths()).stq


def test_phantom_void_class_in_sq(tmp_path: Path) -> None:
    """GT all class 0, prediction half class 0 and half unlabeled: SQ = (0.5 + 0) / 2."""
    gt = cols({(0, 10): 100})
    pred = cols({(0, 5): 300})
    res = stq(tmp_path, [gt], [pred], {100: 0}, {300: 0})
    assert res.sq == 0.25


def test_prediction_on_gt_void_ignored_in_sq(tmp_path: Path) -> None:
    gt = cols({(0, 5): 100})
    pred = cols({(0, 5): 300, (5, 10): 301})  # 301 (class 1) lies on GT void only
    res = stq(tmp_path, [gt], [pred], {100: 0}, {300: 0, 301: 1})
    assert res.sq == 1.0


def test_first_listed_thing_is_crowd(tmp_path: Path) -> None:
    """Frame 0 holds only things: the first listed GT segment has instance number 0 = crowd."""
    gt = cols({(0, 3): 100, (5, 8): 101})
    pred = cols({(5, 8): 301})  # GT 100 is missed entirely
    res = stq(tmp_path, [gt], [pred], {100: 2, 101: 3}, {301: 3}, gt_order=[100, 101])
    assert res.num_tubes_per_seq == [1]  # 100 is dropped from AQ
    assert res.aq == 1.0
    # With a stuff segment listed first, the same tracks are both counted.
    gt_stuff = gt.copy()
    gt_stuff[:, 9] = 102
    (tmp_path / "b").mkdir()
    res = stq(
        tmp_path / "b", [gt_stuff], [pred], {100: 2, 101: 3, 102: 0}, {301: 3}, gt_order=[102, 100, 101]
    )
    assert res.num_tubes_per_seq == [2]
    assert res.aq == 0.5


def test_association_is_class_agnostic(tmp_path: Path) -> None:
    gt = cols({(0, 5): 101, (5, 10): 100})
    pred = cols({(0, 5): 301, (5, 10): 300})  # the thing predicted as another thing class
    res = stq(tmp_path, [gt], [pred], {101: 0, 100: 2}, {301: 0, 300: 3}, gt_order=[101, 100])
    assert res.aq == 1.0
    assert res.sq == pytest.approx(1 / 3)  # class 0: 1, class 2: 0 (FN), class 3: 0 (FP)


def test_tpa_weighted_tube_iou_and_class_change(tmp_path: Path) -> None:
    """AQ of a GT track split over two predicted tubes, and a pred id changing class (two tubes)."""
    gt = cols({(0, 2): 101, (2, 10): 100})
    pred = cols({(0, 2): 301, (2, 10): 300})
    res = stq(tmp_path, [gt, gt], [pred, pred], {101: 0, 100: 2}, [{301: 0, 300: 2}, {301: 0, 300: 3}],
              gt_order=[101, 100])  # fmt: skip
    # GT tube: 64 px; pred tubes (class 2, frame 0) and (class 3, frame 1): 32 px each, TPA 32.
    # AQ = (1/64) * 2 * (32 * 32/64) = 0.5
    assert res.aq == 0.5


def test_no_thing_tubes_gives_zero(tmp_path: Path) -> None:
    gt = cols({(0, 10): 100})
    res = stq(tmp_path, [gt], [gt], {100: 0}, {100: 0})
    assert res.aq == 0.0 and res.stq == 0.0 and res.sq == 1.0
