"""Bad input to ``vidpan eval``: exit code 2, a message naming the file and the problem, no JSON.

Built on a copy of the first oracle case, so that everything but the planted problem is valid.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from eval_cases import ORACLE, SEEDS
from PIL import Image

from vidpan.cli.main import main
from vidpan.data.formats.rgb_id import read_id_png, write_id_png

VIDEO = "100_synth_s1"
FRAME = "00000005.png"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    assert SEEDS, f"no oracle case under {ORACLE}"
    return Path(shutil.copytree(ORACLE / SEEDS[0] / "data", tmp_path / "data"))


def _vps_args(d: Path) -> list[str]:
    return [
        "eval", "vps",
        "--gt-json", str(d / "VIPSeg_720P" / "panoptic_gt_VIPSeg_val.json"),
        "--gt-masks", str(d / "VIPSeg_720P" / "panomasksRGB"),
        "--pred-json", str(d / "pred" / "pred.json"),
        "--pred-masks", str(d / "pred" / "pan_pred"),
    ]  # fmt: skip


def _vss_args(d: Path) -> list[str]:
    return ["eval", "vss", "--gt-root", str(d / "VSPW"), "--pred-masks", str(d / "vss_pred")]


def _edit_json(path: Path, fn: Callable[[dict], None]) -> None:
    obj = json.loads(path.read_text())
    fn(obj)
    path.write_text(json.dumps(obj))


def _pred_frame(d: Path, obj: dict, video: str = VIDEO, index: int = 1) -> dict:
    return next(a for a in obj["annotations"] if a["video_id"] == video)["annotations"][index]


PRED_JSON = "pred/pred.json"
GT_JSON = "VIPSeg_720P/panoptic_gt_VIPSeg_val.json"
PRED_PNG = f"pred/pan_pred/{VIDEO}/{FRAME}"
GT_PNG = f"VIPSeg_720P/panomasksRGB/{VIDEO}/{FRAME}"


def drop_pred_video(d: Path) -> None:
    _edit_json(
        d / PRED_JSON, lambda o: o.update(annotations=[a for a in o["annotations"] if a["video_id"] != VIDEO])
    )


def drop_pred_frame_json(d: Path) -> None:
    _edit_json(
        d / PRED_JSON,
        lambda o: next(a for a in o["annotations"] if a["video_id"] == VIDEO)["annotations"].pop(),
    )


def delete_pred_png(d: Path) -> None:
    (d / PRED_PNG).unlink()


def delete_gt_png(d: Path) -> None:
    (d / GT_PNG).unlink()


def resize_pred_png(d: Path) -> None:
    Image.open(d / PRED_PNG).resize((50, 30), Image.NEAREST).save(d / PRED_PNG)


def grey_pred_png(d: Path) -> None:
    Image.open(d / PRED_PNG).convert("L").save(d / PRED_PNG)


def unlisted_pred_id(d: Path) -> None:
    _edit_json(d / PRED_JSON, lambda o: _pred_frame(d, o)["segments_info"].pop())


def listed_absent_pred_id(d: Path) -> None:
    seg = {"id": 4242, "category_id": 0, "iscrowd": 0}
    _edit_json(d / PRED_JSON, lambda o: _pred_frame(d, o)["segments_info"].append(seg))


def unknown_category(d: Path) -> None:
    _edit_json(d / PRED_JSON, lambda o: _pred_frame(d, o)["segments_info"][0].update(category_id=999))


def duplicate_segment(d: Path) -> None:
    def fn(o: dict) -> None:
        segs = _pred_frame(d, o)["segments_info"]
        segs.append(dict(segs[0]))

    _edit_json(d / PRED_JSON, fn)


def segment_id_zero(d: Path) -> None:
    ids = read_id_png(d / PRED_PNG)
    victim = int(ids[ids > 0][0])
    ids[ids == victim] = 0
    write_id_png(d / PRED_PNG, ids)
    _edit_json(
        d / PRED_JSON,
        lambda o: [s.update(id=0) for s in _pred_frame(d, o)["segments_info"] if s["id"] == victim],
    )


def malformed_pred_json(d: Path) -> None:
    (d / PRED_JSON).write_text((d / PRED_JSON).read_text()[:-20])


def gt_area_mismatch(d: Path) -> None:
    def fn(o: dict) -> None:
        ann = next(a for a in o["annotations"] if a["video_id"] == VIDEO)["annotations"][1]
        ann["segments_info"][0]["area"] += 1

    _edit_json(d / GT_JSON, fn)


def gt_unknown_category(d: Path) -> None:
    def fn(o: dict) -> None:
        ann = next(a for a in o["annotations"] if a["video_id"] == VIDEO)["annotations"][1]
        ann["segments_info"][0]["category_id"] = 777

    _edit_json(d / GT_JSON, fn)


def gt_unlisted_id(d: Path) -> None:
    def fn(o: dict) -> None:
        next(a for a in o["annotations"] if a["video_id"] == VIDEO)["annotations"][1]["segments_info"].pop()

    _edit_json(d / GT_JSON, fn)


def gt_listed_absent_id(d: Path) -> None:
    seg = {"id": 4242, "category_id": 0, "iscrowd": 0, "area": 10}

    def fn(o: dict) -> None:
        next(a for a in o["annotations"] if a["video_id"] == VIDEO)["annotations"][1]["segments_info"].append(
            seg
        )

    _edit_json(d / GT_JSON, fn)


def gt_video_without_annotations(d: Path) -> None:
    _edit_json(
        d / GT_JSON, lambda o: o.update(annotations=[a for a in o["annotations"] if a["video_id"] != VIDEO])
    )


def rgba_pred_png(d: Path) -> None:
    Image.open(d / PRED_PNG).convert("RGBA").save(d / PRED_PNG)


VPS_CASES = [
    (gt_unknown_category, GT_JSON, "unknown category_id 777"),
    (gt_unlisted_id, GT_PNG, "not in the segments_info"),
    (gt_listed_absent_id, GT_JSON, "listed in the JSON but absent from"),
    (gt_video_without_annotations, GT_JSON, "have no `annotations`"),
    (rgba_pred_png, PRED_PNG, "got mode RGBA"),
    (drop_pred_video, PRED_JSON, "missing from the prediction"),
    (drop_pred_frame_json, PRED_JSON, "predicted frames but the GT has"),
    (delete_pred_png, f"pred/pan_pred/{VIDEO}", f"GT frames have no prediction PNG ({FRAME})"),
    (delete_gt_png, GT_PNG, "file not found"),
    (resize_pred_png, PRED_PNG, "differs from the expected"),
    (grey_pred_png, PRED_PNG, "expected an RGB PNG"),
    (unlisted_pred_id, PRED_PNG, "not in the segments_info"),
    (listed_absent_pred_id, PRED_JSON, "absent from"),
    (unknown_category, PRED_JSON, "unknown category_id 999"),
    (duplicate_segment, PRED_JSON, "listed twice"),
    (segment_id_zero, PRED_JSON, "id 0 is reserved"),
    (malformed_pred_json, PRED_JSON, "malformed JSON"),
    (gt_area_mismatch, GT_JSON, "in the JSON but"),
]


@pytest.mark.parametrize(("corrupt", "culprit", "message"), VPS_CASES, ids=[c[0].__name__ for c in VPS_CASES])
def test_vps_bad_input(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], corrupt: Callable[[Path], None], culprit: str,
    message: str,
) -> None:  # fmt: skip
    out = tmp_path / "out.json"
    corrupt(data)
    code = main([*_vps_args(data), "--json", str(out), "--workers", "2"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert str(data / culprit) in err and message in err, err
    assert not out.exists()


def vss_delete_pred(d: Path) -> None:
    (d / "vss_pred" / VIDEO / FRAME).unlink()


def vss_resize_pred(d: Path) -> None:
    p = d / "vss_pred" / VIDEO / FRAME
    Image.open(p).resize((10, 10), Image.NEAREST).save(p)


def vss_rgb_pred(d: Path) -> None:
    p = d / "vss_pred" / VIDEO / FRAME
    Image.open(p).convert("RGB").save(p)


def vss_out_of_range(d: Path) -> None:
    p = d / "vss_pred" / VIDEO / FRAME
    g = np.asarray(Image.open(d / "VSPW" / "data" / VIDEO / "mask" / FRAME))
    arr = np.asarray(Image.open(p)).copy()
    arr[(g >= 1) & (g <= 124)] = 124
    Image.fromarray(arr).save(p)


def vss_size_changes_in_video(d: Path) -> None:
    for root in (d / "VSPW" / "data" / VIDEO / "mask", d / "vss_pred" / VIDEO):
        Image.open(root / FRAME).resize((20, 10), Image.NEAREST).save(root / FRAME)


def vss_unknown_video(d: Path) -> None:
    (d / "VSPW" / "val.txt").write_text("nope\n")


VSS_CASES = [
    (vss_delete_pred, f"vss_pred/{VIDEO}", f"GT frames have no prediction PNG ({FRAME})"),
    (vss_resize_pred, f"vss_pred/{VIDEO}/{FRAME}", "differs from the expected"),
    (vss_rgb_pred, f"vss_pred/{VIDEO}/{FRAME}", "single-channel"),
    (vss_out_of_range, f"vss_pred/{VIDEO}/{FRAME}", "predicted values [124]"),
    (vss_unknown_video, "VSPW/data/nope/mask", "GT mask directory not found"),
    (vss_size_changes_in_video, f"VSPW/data/{VIDEO}/mask/{FRAME}", "differs from the expected"),
]


@pytest.mark.parametrize(("corrupt", "culprit", "message"), VSS_CASES, ids=[c[0].__name__ for c in VSS_CASES])
def test_vss_bad_input(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], corrupt: Callable[[Path], None], culprit: str,
    message: str,
) -> None:  # fmt: skip
    out = tmp_path / "out.json"
    corrupt(data)
    code = main([*_vss_args(data), "--json", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert str(data / culprit) in err and message in err, err
    assert not out.exists()


def test_missing_directories(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "vss", "--gt-root", str(tmp_path), "--pred-masks", str(tmp_path)]) == 2
    assert str(tmp_path / "data") in capsys.readouterr().err


def test_extra_prediction_video_is_ignored(data: Path) -> None:
    def fn(o: dict) -> None:
        extra = json.loads(json.dumps(o["annotations"][0]))
        extra["video_id"] = "not_in_gt"
        o["annotations"].append(extra)

    _edit_json(data / PRED_JSON, fn)
    assert main(_vps_args(data)) == 0


def test_pred_png_named_by_index_is_paired_by_position(tmp_path: Path) -> None:
    """A prediction whose frames are named 00000000, 00000001, ... (a video file) scores the same
    as one named after the GT frames."""
    import shutil

    from vidpan.data.synthetic import generate
    from vidpan.evaluation import evaluate_vps

    ds = generate(
        tmp_path / "s", videos=1, frames=4, size=(32, 48), seed=2, val_fraction=1.0, predictions="noisy"
    )
    assert ds.pred_json is not None and ds.pred_masks is not None
    expected = evaluate_vps(ds.gt_json_val, ds.gt_masks, ds.pred_json, ds.pred_masks).to_json()
    pred = json.loads(ds.pred_json.read_text())
    renamed = tmp_path / "renamed"
    for video in pred["annotations"]:
        for t, frame in enumerate(video["annotations"]):
            new = f"{t:08d}.png"
            (renamed / video["video_id"]).mkdir(parents=True, exist_ok=True)
            shutil.copy(
                ds.pred_masks / video["video_id"] / frame["file_name"], renamed / video["video_id"] / new
            )
            frame["file_name"] = new
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    got = evaluate_vps(ds.gt_json_val, ds.gt_masks, tmp_path / "pred.json", renamed).to_json()
    assert got == expected
