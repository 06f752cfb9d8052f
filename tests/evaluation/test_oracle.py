"""Parity with the official VIPSeg / VSPW evaluators on every oracle case under
``shared/fixtures/metrics_oracle/seed_*`` (numbers the official scripts produced, ``results.json``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from eval_cases import ORACLE, SEEDS

from vidpan.cli.main import main
from vidpan.evaluation.evaluator import evaluate_vps, evaluate_vss

REL = 1e-9

# Our JSON key -> results.json headline key.
HEADLINE = {
    "VPQ1": "VPQ1",
    "VPQ2": "VPQ2",
    "VPQ4": "VPQ4",
    "VPQ6": "VPQ6",
    "VPQ8": "VPQ8",
    "VPQ": "VPQ_official_mean_1_2_4_6_8",
    "VPQ_1246": "VPQ_mean_1_2_4_6",
    "STQ": "STQ",
    "AQ": "AQ",
    "SQ": "SQ",
    "mIoU": "mIoU",
    "fwIoU": "fwIoU",
    "VC8": "VC8",
    "VC16": "VC16",
}


def _close(a: float, b: float, rel: float = REL) -> bool:
    return abs(a - b) <= rel * max(abs(b), 1e-300) or a == b


def _results(seed: str) -> dict[str, Any]:
    return json.loads((ORACLE / seed / "results.json").read_text())


def _vps_args(data: Path) -> list[str]:
    return [
        "--gt-json",
        str(data / "VIPSeg_720P" / "panoptic_gt_VIPSeg_val.json"),
        "--gt-masks",
        str(data / "VIPSeg_720P" / "panomasksRGB"),
        "--pred-json",
        str(data / "pred" / "pred.json"),
        "--pred-masks",
        str(data / "pred" / "pan_pred"),
    ]


def _vps(seed: str, workers: int = 1):  # type: ignore[no-untyped-def]
    data = ORACLE / seed / "data"
    args = _vps_args(data)
    return evaluate_vps(args[1], args[3], args[5], args[7], workers=workers)


def _vss(seed: str, workers: int = 1):  # type: ignore[no-untyped-def]
    data = ORACLE / seed / "data"
    return evaluate_vss(data / "VSPW", data / "vss_pred", workers=workers)


def test_oracle_cases_exist() -> None:
    assert SEEDS, f"no oracle case found under {ORACLE}"


@pytest.mark.parametrize("seed", SEEDS)
def test_oracle_headline_library(seed: str) -> None:
    headline = _results(seed)["headline"]
    ours = {**_vps(seed).to_json(), **_vss(seed).to_json()}
    for key, ref_key in HEADLINE.items():
        assert _close(ours[key], headline[ref_key]), (key, ours[key], headline[ref_key])


@pytest.mark.parametrize("seed", SEEDS)
def test_oracle_headline_cli(seed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    headline = _results(seed)["headline"]
    data = ORACLE / seed / "data"
    assert main(["eval", "vps", *_vps_args(data), "--json", str(tmp_path / "vps.json")]) == 0
    assert main(
        ["eval", "vss", "--gt-root", str(data / "VSPW"), "--pred-masks", str(data / "vss_pred"),
         "--json", str(tmp_path / "vss.json")]
    ) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "STQ" in out and "mIoU" in out
    vps = json.loads((tmp_path / "vps.json").read_text())
    vss = json.loads((tmp_path / "vss.json").read_text())
    assert list(vps) == ["VPQ1", "VPQ2", "VPQ4", "VPQ6", "VPQ8", "VPQ", "VPQ_1246", "VPQ_thing", "VPQ_stuff",
                         "STQ", "AQ", "SQ"]  # fmt: skip
    assert list(vss) == ["mIoU", "fwIoU", "VC8", "VC16"]
    ours = {**vps, **vss}
    for key, ref_key in HEADLINE.items():
        assert _close(ours[key], headline[ref_key]), (key, ours[key], headline[ref_key])


@pytest.mark.parametrize("seed", SEEDS)
def test_oracle_vpq_per_class_counts(seed: str) -> None:
    """Per window size: per-class tp/fp/fn/iou, thing/stuff means, class counts."""
    ref = _results(seed)["vpq"]
    ours = _vps(seed)
    for k_str, per_k in ref["per_nframes"].items():
        w = ours.windows[int(k_str)]
        assert w.num_windows == per_k["n_windows"]
        assert w.num_classes == per_k["all"]["n"]
        assert _close(w.vpq_thing, per_k["vpq_thing"]) and _close(w.vpq_stuff, per_k["vpq_stuff"])
        assert sorted(w.per_class) == sorted(int(c) for c in per_k["per_class"])
        for cat, r in per_k["per_class"].items():
            mine = w.per_class[int(cat)]
            assert (mine.tp, mine.fp, mine.fn) == (r["tp"], r["fp"], r["fn"]), (k_str, cat)
            for name in ("iou", "pq", "sq", "rq"):
                assert _close(getattr(mine, name), r[name]), (k_str, cat, name)
    summary = ref["summary"]["official_mean_nframes_1_2_4_6_8"]
    assert _close(ours.vpq_thing, summary["vpq_thing"]) and _close(ours.vpq_stuff, summary["vpq_stuff"])


@pytest.mark.parametrize("seed", SEEDS)
def test_oracle_stq_per_sequence(seed: str) -> None:
    ref = _results(seed)["stq"]["vipseg_bundled_numpy"]
    stq = _vps(seed).stq
    assert stq.num_tubes_per_seq == ref["num_gt_thing_tubes_per_seq"]
    for mine, theirs in (
        (stq.stq_per_seq, ref["STQ_per_seq"]),
        (stq.aq_per_seq, ref["AQ_per_seq"]),
        (stq.sq_per_seq, ref["IoU_per_seq"]),
    ):
        assert len(mine) == len(theirs)
        for a, b in zip(mine, theirs, strict=True):
            assert (math.isnan(a) and math.isnan(b)) or _close(a, b)


@pytest.mark.parametrize("seed", SEEDS)
def test_oracle_vss_details(seed: str) -> None:
    """Confusion matrix cells and every VC window score."""
    ref = _results(seed)["vss"]
    vss = _vss(seed)
    cm = np.zeros((124, 124), np.int64)
    for g, p, v in ref["miou_dvis_eval_miou_vspw"]["confusion_matrix"]["nonzero"]:
        cm[g, p] = v
    assert np.array_equal(vss.confusion, cm)
    for n in (8, 16):
        windows = ref[f"vc{n}_vspw_code_VC_perclip"]["windows"]
        assert len(vss.vc_windows[n]) == len(windows)
        for a, b in zip(vss.vc_windows[n], windows, strict=True):
            assert (math.isnan(a) and (b is None or math.isnan(b))) or _close(a, b)


@pytest.mark.parametrize("seed", SEEDS)
def test_oracle_workers_identical(seed: str) -> None:
    serial_vps, parallel_vps = _vps(seed), _vps(seed, workers=2)
    assert serial_vps.to_json(per_class=True) == parallel_vps.to_json(per_class=True)
    assert serial_vps.stq == parallel_vps.stq
    serial_vss, parallel_vss = _vss(seed), _vss(seed, workers=2)
    assert serial_vss.to_json() == parallel_vss.to_json()
    assert np.array_equal(serial_vss.confusion, parallel_vss.confusion)
