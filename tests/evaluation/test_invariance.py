"""Property tests: every metric depends only on which pixels share an id, not on the id values."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
from eval_cases import random_vps_videos, write_vps_case
from hypothesis import given, settings
from hypothesis import strategies as st

from vidpan.evaluation.evaluator import VPSResult, evaluate_vps


def _relabel(ids: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    out = ids.copy()
    for old, new in mapping.items():
        out[ids == old] = new
    return out


def _assert_same(a: VPSResult, b: VPSResult) -> None:
    ja, jb = a.to_json(per_class=True), b.to_json(per_class=True)
    for key in ja:
        if key == "per_class":
            for k in ja[key]:
                assert ja[key][k].keys() == jb[key][k].keys()
                for cat in ja[key][k]:
                    ra, rb = ja[key][k][cat], jb[key][k][cat]
                    assert (ra["tp"], ra["fp"], ra["fn"]) == (rb["tp"], rb["fp"], rb["fn"])
                    assert math.isclose(ra["iou"], rb["iou"], rel_tol=1e-12, abs_tol=1e-12)
        elif ja[key] is None or jb[key] is None:
            assert ja[key] is jb[key], key
        else:
            assert math.isclose(ja[key], jb[key], rel_tol=1e-12, abs_tol=1e-15), key


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), relabel_gt=st.booleans())
def test_metrics_invariant_to_id_relabelling(seed: int, relabel_gt: bool) -> None:
    rng = np.random.default_rng(seed)
    videos, gt_cats, pred_cats = random_vps_videos(rng)
    # A random injective relabelling of the prediction ids (and optionally of the GT ids).
    pred_map = dict(
        zip(pred_cats, rng.choice(np.arange(1, 1 << 24), len(pred_cats), replace=False).tolist(), strict=True)
    )
    gt_map = dict(
        zip(gt_cats, rng.choice(np.arange(1, 1 << 24), len(gt_cats), replace=False).tolist(), strict=True)
    )
    if not relabel_gt:
        gt_map = {k: k for k in gt_cats}
    relabelled = {
        v: ([_relabel(g, gt_map) for g in gts], [_relabel(p, pred_map) for p in preds])
        for v, (gts, preds) in videos.items()
    }
    # GT segments keep their listing order (STQ instance numbers follow it), whatever the ids.
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        order = sorted(gt_cats)
        (root / "a").mkdir()
        (root / "b").mkdir()
        case_a = write_vps_case(root / "a", videos, gt_cats, pred_cats, gt_order=order)
        case_b = write_vps_case(
            root / "b",
            relabelled,
            {gt_map[k]: c for k, c in gt_cats.items()},
            {pred_map[k]: c for k, c in pred_cats.items()},
            gt_order=[gt_map[k] for k in order],
        )
        _assert_same(evaluate_vps(*case_a.paths()), evaluate_vps(*case_b.paths()))
