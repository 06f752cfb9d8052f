"""VSS metrics (metrics_reference.md §4): the VSPW label shift, mIoU/fwIoU, the VC_n definition."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from eval_cases import write_vss_case

from vidpan.errors import InputError
from vidpan.evaluation.evaluator import evaluate_vss
from vidpan.evaluation.semantic import VCAccumulator, frame_confusion, semantic_scores


def test_label_shift_and_void() -> None:
    gt = np.array([[1, 1, 2, 0, 255, 200]], np.uint8)  # raw: class 0, 0, 1, others, void, invalid
    pred = np.array([[0, 1, 1, 7, 250, 123]], np.uint8)
    cm, bad = frame_confusion(gt, pred)
    assert not bad.any()
    assert cm.sum() == 3 and cm[0, 0] == 1 and cm[0, 1] == 1 and cm[1, 1] == 1


def test_prediction_out_of_range_on_valid_gt() -> None:
    gt = np.array([[4, 124]], np.uint8)
    pred = np.array([[130, 255]], np.uint8)
    _, bad = frame_confusion(gt, pred)
    assert bad.sum() == 2 and bad[130 - 124] == 1 and bad[255 - 124] == 1


def test_miou_fwiou_by_hand() -> None:
    cm = np.zeros((124, 124), np.int64)
    cm[0, 0], cm[0, 1], cm[1, 1], cm[2, 1] = 6, 2, 3, 1  # class 2 never predicted right
    cm[5, 5] = 0
    s = semantic_scores(cm)
    iou = [6 / 8, 3 / (3 + 6 - 3), 0.0]
    assert s.miou == pytest.approx(sum(iou) / 3)  # classes absent from GT excluded
    assert s.fwiou == pytest.approx((8 * iou[0] + 3 * iou[1] + 1 * iou[2]) / 12)


def test_class_predicted_but_absent_from_gt_is_not_averaged() -> None:
    cm = np.zeros((124, 124), np.int64)
    cm[0, 0], cm[0, 7] = 3, 1
    assert semantic_scores(cm).miou == pytest.approx(0.75)


def _vc(gts: list[np.ndarray], preds: list[np.ndarray], n: int) -> list[float]:
    acc = VCAccumulator((n,))
    for g, p in zip(gts, preds, strict=True):
        acc.update(g, p)
    return acc.scores()[n]


def test_vc_skips_videos_not_longer_than_n_and_drops_last_window() -> None:
    g = np.zeros((2, 3), np.uint8)
    p = [np.zeros((2, 3), np.uint8) for _ in range(9)]
    p[8] = p[8] + 1  # the prediction changes in the ninth frame only
    assert _vc([g] * 8, p[:8], 8) == []  # T = n: skipped (T <= n)
    # T = 9: only the window starting at 0 (range(T - n)); the one starting at 1 would score 0.
    assert _vc([g] * 9, p, 8) == [1.0]


def test_vc_uses_raw_labels_and_ignores_correctness() -> None:
    g0 = np.array([[0, 255, 5, 5]], np.uint8)
    g1 = np.array([[255, 255, 5, 5]], np.uint8)  # 'others' -> void counts as a GT change
    p = np.array([[9, 9, 9, 3]], np.uint8)  # constant but wrong prediction
    p1 = np.array([[9, 9, 9, 4]], np.uint8)
    assert _vc([g0, g1, g1], [p, p1, p1], 2) == [2 / 3]  # G = 3 pixels, prediction stable on 2
    no_common = [np.array([[1]], np.uint8), np.array([[2]], np.uint8), np.array([[3]], np.uint8)]
    assert math.isnan(_vc(no_common, no_common, 2)[0])


def test_vss_end_to_end(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = rng.choice(np.array([0, 1, 2, 255], np.uint8), size=(5, 6))
    gts = []
    for t in range(10):
        g = base.copy()
        g[t % 5, t % 6] = 2  # the GT changes at one pixel per frame
        gts.append(g)
    preds = [np.where(g == 2, 1, 0).astype(np.uint8) for g in gts]
    root = write_vss_case(tmp_path, {"a": (gts, preds), "b": (gts[:3], preds[:3])})
    res = evaluate_vss(root, root / "pred")
    assert res.miou == 1.0 and res.fwiou == 1.0
    assert len(res.vc_windows[8]) == 2 and res.vc_windows[16] == []  # only "a" (T = 10) has VC8 windows
    assert math.isnan(res.vc[16]) and res.to_json()["VC16"] is None
    assert res.vc[8] == 1.0  # a correct prediction is consistent wherever the GT is
    # An explicit split restricts the videos.
    (tmp_path / "only_b.txt").write_text("b\n")
    assert evaluate_vss(root, root / "pred", split=tmp_path / "only_b.txt").vc_windows[8] == []


def test_vss_rejects_out_of_range_prediction(tmp_path: Path) -> None:
    g = np.full((3, 3), 5, np.uint8)
    g[0, 0] = 255
    ok = np.full((3, 3), 4, np.uint8)
    ok[0, 0] = 200  # on void GT: never read, allowed
    root = write_vss_case(tmp_path, {"a": ([g], [ok])})
    assert evaluate_vss(root, root / "pred").miou == 1.0
    bad = ok.copy()
    bad[1, 1] = 124
    root = write_vss_case(tmp_path / "x", {"a": ([g], [bad])})
    with pytest.raises(InputError, match=r"00000\.png.*124"):
        evaluate_vss(root, root / "pred")
