"""COCO panoptic PQ (``vidpan eval coco-panoptic``): hand-computed cases, panopticapi as the oracle
on the synthetic benchmark's COCO output, bad input, and the CLI."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vidpan.data.formats.rgb_id import encode_png, id2rgb
from vidpan.data.synthetic import generate
from vidpan.errors import InputError
from vidpan.evaluation.coco_panoptic import evaluate_coco_panoptic

PANOPTICAPI = Path(os.environ.get("VIDPAN_PANOPTICAPI", "/work/dvis_ref/cocodataset+panopticapi"))
CATS = [
    {"id": 1, "name": "sky", "isthing": 0, "color": [1, 2, 3]},
    {"id": 2, "name": "person", "isthing": 1, "color": [4, 5, 6]},
    {"id": 3, "name": "car", "isthing": 1, "color": [7, 8, 9]},
]


def _write_set(
    root: Path, name: str, images: list[tuple[np.ndarray, list[dict[str, Any]]]], gt: bool
) -> None:
    """images: (id map [H, W], segments_info) per image; GT areas are filled from the map."""
    folder = root / name
    folder.mkdir(parents=True)
    anns, infos = [], []
    for i, (ids, segs) in enumerate(images):
        (folder / f"{i}.png").write_bytes(encode_png(id2rgb(ids.astype(np.uint32))))
        if gt:
            segs = [{**s, "area": s.get("area", int((ids == s["id"]).sum()))} for s in segs]
        anns.append({"image_id": i, "file_name": f"{i}.png", "segments_info": segs})
        infos.append({"id": i, "file_name": f"{i}.jpg", "width": ids.shape[1], "height": ids.shape[0]})
    data: dict[str, Any] = {"annotations": anns}
    if gt:
        data.update(images=infos, categories=CATS)
    (root / f"{name}.json").write_text(json.dumps(data))


def _eval(root: Path) -> Any:
    return evaluate_coco_panoptic(root / "gt.json", root / "gt", root / "pred.json", root / "pred")


def test_hand_computed_case(tmp_path: Path) -> None:
    # 10 x 10 image. GT: sky (id 1) rows 0-4, person (id 2) rows 5-9 cols 0-4, void elsewhere.
    gt = np.zeros((10, 10), np.int64)
    gt[:5] = 1
    gt[5:, :5] = 2
    # Pred: sky exactly; person shifted right by 1 column (cols 1-5: 20 pixels on the GT person,
    # 5 on void); a car (id 9) of 4 pixels on void (ignored: all on void); a car (id 8) of 4
    # pixels inside the sky (a false positive, and it takes 4 sky pixels).
    pred = np.zeros((10, 10), np.int64)
    pred[:5] = 7
    pred[5:, 1:6] = 5
    pred[8:, 8:] = 9
    pred[0:2, 0:2] = 8
    _write_set(tmp_path, "gt", [(gt, [{"id": 1, "category_id": 1, "iscrowd": 0},
                                      {"id": 2, "category_id": 2, "iscrowd": 0}])], gt=True)  # fmt: skip
    _write_set(tmp_path, "pred", [(pred, [{"id": 7, "category_id": 1}, {"id": 5, "category_id": 2},
                                          {"id": 9, "category_id": 3}, {"id": 8, "category_id": 3}])], gt=False)  # fmt: skip
    r = _eval(tmp_path)
    sky_iou = 46 / 50  # pred sky 46 px, all inside the 50-px GT sky
    person_iou = 20 / (25 + 25 - 20 - 5)  # union without the 5 pred pixels on void
    assert r.per_class[1]["pq"] == pytest.approx(sky_iou) and r.per_class[1]["tp"] == 1
    assert r.per_class[2]["pq"] == pytest.approx(person_iou) and r.per_class[2]["tp"] == 1
    car = r.per_class[3]  # one FP (id 8); id 9 is ignored (on void)
    assert (car["tp"], car["fp"], car["fn"], car["pq"]) == (0, 1, 0, 0.0)
    assert r.all.n == 3 and r.all.pq == pytest.approx((sky_iou + person_iou + 0.0) / 3)
    assert r.things.n == 2 and r.things.pq == pytest.approx(person_iou / 2)
    assert r.stuff.pq == pytest.approx(sky_iou) and r.stuff.sq == pytest.approx(sky_iou)


def test_crowd_and_threshold(tmp_path: Path) -> None:
    gt = np.zeros((4, 10), np.int64)
    gt[:, :5] = 3  # crowd person
    gt[:, 5:] = 4  # person
    pred = np.zeros((4, 10), np.int64)
    pred[:, :4] = 1  # person on the crowd region: not a FP (more than half on crowd)
    pred[:, 4:7] = 2  # person overlapping 8 of 20 GT pixels: IoU 8/(12+20-8) = 1/3 -> no match
    _write_set(tmp_path, "gt", [(gt, [{"id": 3, "category_id": 2, "iscrowd": 1},
                                      {"id": 4, "category_id": 2, "iscrowd": 0}])], gt=True)  # fmt: skip
    _write_set(
        tmp_path, "pred", [(pred, [{"id": 1, "category_id": 2}, {"id": 2, "category_id": 2}])], gt=False
    )
    r = _eval(tmp_path)
    person = r.per_class[2]
    assert (person["tp"], person["fp"], person["fn"]) == (0, 1, 1)  # pred 2 is a FP, GT 4 a FN
    assert r.things.n == 1 and r.things.pq == 0.0
    assert r.stuff.n == 0 and np.isnan(r.stuff.pq)


def test_bad_input(tmp_path: Path) -> None:
    gt = np.ones((4, 4), np.int64)
    _write_set(tmp_path, "gt", [(gt, [{"id": 1, "category_id": 1, "iscrowd": 0}])], gt=True)
    _write_set(tmp_path, "pred", [(gt * 5, [{"id": 1, "category_id": 1}])], gt=False)
    with pytest.raises(InputError, match="segment id 5 is in the PNG but not in `segments_info`"):
        _eval(tmp_path)
    (tmp_path / "pred.json").write_text(json.dumps({"annotations": []}))
    with pytest.raises(InputError, match="no prediction for 1 GT images"):
        _eval(tmp_path)
    (tmp_path / "pred.json").write_text(
        json.dumps(
            {
                "annotations": [
                    {"image_id": 0, "file_name": "0.png", "segments_info": [{"id": 5, "category_id": 77}]}
                ]
            }
        )
    )
    with pytest.raises(InputError, match="unknown category_id 77"):
        _eval(tmp_path)


def _perturb(root: Path, rng: np.random.Generator) -> None:
    """Make the synthetic prediction harder in place: erode/shift segments, mark some GT crowd."""
    gt_json = root / "annotations" / "panoptic_val2017.json"
    gt = json.loads(gt_json.read_text())
    for ann in gt["annotations"]:
        for s in ann["segments_info"]:
            if rng.random() < 0.2:
                s["iscrowd"] = 1
    gt_json.write_text(json.dumps(gt))
    pred_json = root / "pred" / "panoptic_val2017.json"
    pred = json.loads(pred_json.read_text())
    from vidpan.data.formats.rgb_id import read_id_png

    for ann in pred["annotations"]:
        png = root / "pred" / "panoptic_val2017" / ann["file_name"]
        ids = read_id_png(png).astype(np.int64)
        ids = np.roll(ids, int(rng.integers(-6, 7)), axis=1)
        ids[rng.random(ids.shape) < 0.05] = 0
        present = set(np.unique(ids).tolist())
        ann["segments_info"] = [s for s in ann["segments_info"] if s["id"] in present]
        for s in ann["segments_info"]:
            if rng.random() < 0.1:
                s["category_id"] = int(rng.integers(1, 17))
        png.write_bytes(encode_png(id2rgb(ids.astype(np.uint32))))
    pred_json.write_text(json.dumps(pred))


def test_equals_panopticapi_on_synthetic_coco(tmp_path: Path) -> None:
    if not (PANOPTICAPI / "panopticapi" / "evaluation.py").is_file():
        pytest.skip(f"panopticapi checkout not found at {PANOPTICAPI} (set VIDPAN_PANOPTICAPI to a checkout)")
    sys.path.insert(0, str(PANOPTICAPI))
    try:
        pq_compute = importlib.import_module("panopticapi.evaluation").pq_compute
    except ImportError as exc:
        pytest.skip(f"panopticapi not importable from {PANOPTICAPI}: {exc}")
    finally:
        sys.path.remove(str(PANOPTICAPI))
    ds = generate(
        tmp_path / "s", videos=5, frames=4, size=(48, 80), val_fraction=0.6, predictions="noisy", coco=True
    )
    assert ds.coco_root is not None
    root = ds.coco_root
    _perturb(root, np.random.default_rng(0))
    args = (
        root / "annotations" / "panoptic_val2017.json",
        root / "pred" / "panoptic_val2017.json",
        root / "panoptic_val2017",
        root / "pred" / "panoptic_val2017",
    )
    official = pq_compute(*(str(a) for a in args))
    ours = evaluate_coco_panoptic(args[0], args[2], args[1], args[3])
    for name, s in (("All", ours.all), ("Things", ours.things), ("Stuff", ours.stuff)):
        ref = official[name]
        assert s.n == ref["n"] and s.n > 0
        for key in ("pq", "sq", "rq"):
            assert getattr(s, key) == pytest.approx(ref[key], abs=1e-12), (name, key)
    for cat, ref in official["per_class"].items():
        for key in ("pq", "sq", "rq"):
            assert ours.per_class[cat][key] == pytest.approx(ref[key], abs=1e-12)
    assert 0.05 < ours.all.pq < 0.95  # the perturbation makes a non-trivial case


def test_cli(tmp_path: Path) -> None:
    ds = generate(
        tmp_path / "s", videos=2, frames=2, size=(32, 48), val_fraction=0.5, predictions="noisy", coco=True
    )
    assert ds.coco_root is not None
    root, out = ds.coco_root, tmp_path / "scores.json"
    cmd = [sys.executable, "-m", "vidpan", "eval", "coco-panoptic",
           "--gt-json", str(root / "annotations/panoptic_val2017.json"), "--gt-masks", str(root / "panoptic_val2017"),
           "--pred-json", str(root / "pred/panoptic_val2017.json"), "--pred-masks", str(root / "pred/panoptic_val2017"),
           "--json", str(out)]  # fmt: skip
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
    )
    assert proc.returncode == 0, proc.stderr
    assert "All" in proc.stdout and "Things" in proc.stdout
    scores = json.loads(out.read_text())
    expected = evaluate_coco_panoptic(
        root / "annotations/panoptic_val2017.json", root / "panoptic_val2017",
        root / "pred/panoptic_val2017.json", root / "pred/panoptic_val2017",
    ).to_json()  # fmt: skip
    assert scores == expected and scores["images"] == 2
    bad = subprocess.run(
        [*cmd[:7], "--gt-masks", str(tmp_path / "nope"), *cmd[9:]], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "GT PNG folder not found" in bad.stderr
