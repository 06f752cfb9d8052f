"""When prediction frames cannot pair with the GT, `vidpan eval` says which frames and why, in one line.

Built on a small synthetic VIPSeg/VSPW benchmark (GT frames named like VIPSeg's: every 5th source
frame, 00000000, 00000005, ...) with its noisy predictions; each test breaks the pairing one way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from vidpan.cli.main import main
from vidpan.data.synthetic import SyntheticDataset, generate


@pytest.fixture
def ds(tmp_path: Path) -> SyntheticDataset:
    return generate(
        tmp_path / "synth", videos=2, frames=4, size=(32, 48), seed=5, val_fraction=0.5, predictions="noisy"
    )


def _video(ds: SyntheticDataset) -> str:
    return ds.val_videos[0]


def _edit_pred(ds: SyntheticDataset, fn: Callable[[dict], None]) -> None:
    assert ds.pred_json is not None
    obj = json.loads(ds.pred_json.read_text())
    fn(next(a for a in obj["annotations"] if a["video_id"] == _video(ds)))
    ds.pred_json.write_text(json.dumps(obj))


def _vps(ds: SyntheticDataset, capsys: pytest.CaptureFixture[str]) -> str:
    args = ["eval", "vps", "--gt-json", str(ds.gt_json_val), "--gt-masks", str(ds.gt_masks),
            "--pred-json", str(ds.pred_json), "--pred-masks", str(ds.pred_masks)]  # fmt: skip
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _vss(ds: SyntheticDataset, capsys: pytest.CaptureFixture[str]) -> str:
    code = main(["eval", "vss", "--gt-root", str(ds.vspw_root), "--pred-masks", str(ds.vss_pred)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_fixture_names_and_pairs(ds: SyntheticDataset, capsys: pytest.CaptureFixture[str]) -> None:
    """The unbroken benchmark has VIPSeg-style names on both sides and evaluates."""
    assert ds.pred_masks is not None
    names = sorted(p.name for p in (ds.pred_masks / _video(ds)).iterdir())
    assert names == ["00000000.png", "00000005.png", "00000010.png", "00000015.png"]
    args = ["eval", "vps", "--gt-json", str(ds.gt_json_val), "--gt-masks", str(ds.gt_masks),
            "--pred-json", str(ds.pred_json), "--pred-masks", str(ds.pred_masks)]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    assert main(["eval", "vss", "--gt-root", str(ds.vspw_root), "--pred-masks", str(ds.vss_pred)]) == 0


def test_vps_gt_frames_without_png(ds: SyntheticDataset, capsys: pytest.CaptureFixture[str]) -> None:
    assert ds.pred_masks is not None
    folder = ds.pred_masks / _video(ds)
    for name in ("00000005.png", "00000010.png", "00000015.png"):
        (folder / name).unlink()
    err = _vps(ds, capsys)
    assert f"{folder}: video {_video(ds)!r}: 3 of 4 GT frames have no prediction PNG " in err, err
    assert "(00000005.png, 00000010.png, 00000015.png)" in err, err
    assert "the folder holds 1 PNGs (00000000.png)" in err, err
    assert "named by index" not in err, err


def test_vps_index_names_that_do_not_exist(ds: SyntheticDataset, capsys: pytest.CaptureFixture[str]) -> None:
    """pred.json lists index names 00000000.. but the PNGs are numbered from 1: frame 0 cannot pair."""
    assert ds.pred_masks is not None
    folder = ds.pred_masks / _video(ds)
    gt_names = sorted(p.name for p in folder.iterdir())
    for t, name in enumerate(gt_names):
        (folder / name).rename(folder / f"tmp{t}")
    for t in range(len(gt_names)):
        (folder / f"tmp{t}").rename(folder / f"{t + 1:08d}.png")

    def rename(video: dict) -> None:
        for t, frame in enumerate(video["annotations"]):
            frame["file_name"] = f"{t:08d}.png"

    _edit_pred(ds, rename)
    err = _vps(ds, capsys)
    assert "1 of 4 GT frames have no prediction PNG (00000000.png)" in err, err
    assert "the folder holds 4 PNGs (00000001.png..00000004.png)" in err, err
    assert "prediction frames are named by index (00000000.png..00000003.png)" in err, err
    assert f"images/{_video(ds)}" in err, err


def test_vps_count_mismatch_from_video_file(ds: SyntheticDataset, capsys: pytest.CaptureFixture[str]) -> None:
    """A prediction of the full-rate source video has every frame, the GT every 5th."""

    def full_rate(video: dict) -> None:
        first = video["annotations"][0]
        video["annotations"] = [dict(first, file_name=f"{t:08d}.png") for t in range(16)]

    _edit_pred(ds, full_rate)
    err = _vps(ds, capsys)
    assert f"video {_video(ds)!r}: 16 predicted frames but the GT has 4" in err, err
    assert "GT 00000000.png..00000015.png, prediction 00000000.png..00000015.png" in err, err
    assert "named by index" in err and "segment the frame folder" in err, err


def test_vps_count_mismatch_names_missing_frames(
    ds: SyntheticDataset, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit_pred(ds, lambda v: v["annotations"].pop(1))
    err = _vps(ds, capsys)
    assert f"{ds.pred_json}: video {_video(ds)!r}: 3 predicted frames but the GT has 4" in err, err
    assert "GT frames not in the prediction: 00000005.png" in err, err


def test_vps_frames_in_another_order(ds: SyntheticDataset, capsys: pytest.CaptureFixture[str]) -> None:
    def swap(video: dict) -> None:
        a = video["annotations"]
        a[1], a[2] = a[2], a[1]

    _edit_pred(ds, swap)
    err = _vps(ds, capsys)
    assert "prediction frame 1 is 00000010.png but GT frame 1 is 00000005.png" in err, err
    assert "list them in the GT order" in err, err


def test_vps_video_named_differently(ds: SyntheticDataset, capsys: pytest.CaptureFixture[str]) -> None:
    _edit_pred(ds, lambda v: v.update(video_id="renamed"))
    err = _vps(ds, capsys)
    assert f"video {_video(ds)!r} of the GT is missing from the prediction" in err, err
    assert "pred.json has 2 other videos:" in err and "'renamed'" in err, err


def test_vss_video_folder_missing(ds: SyntheticDataset, capsys: pytest.CaptureFixture[str]) -> None:
    assert ds.vss_pred is not None
    (ds.vss_pred / _video(ds)).rename(ds.vss_pred / "renamed")
    err = _vss(ds, capsys)
    assert f"{ds.vss_pred / _video(ds)}: video {_video(ds)!r} of the GT is missing" in err, err
    assert "'renamed'" in err, err


def test_vss_frames_missing(ds: SyntheticDataset, capsys: pytest.CaptureFixture[str]) -> None:
    assert ds.vss_pred is not None
    folder = ds.vss_pred / _video(ds)
    (folder / "00000010.png").unlink()
    err = _vss(ds, capsys)
    assert f"{folder}: video {_video(ds)!r}: 1 of 4 GT frames have no prediction PNG (00000010.png)" in err, (
        err
    )
    assert "named by index" not in err, err


def test_vss_index_names(ds: SyntheticDataset, capsys: pytest.CaptureFixture[str]) -> None:
    assert ds.vss_pred is not None
    folder = ds.vss_pred / _video(ds)
    for t, p in enumerate(sorted(folder.iterdir())):
        p.rename(folder / f"{t:08d}.png")
    err = _vss(ds, capsys)
    assert "3 of 4 GT frames have no prediction PNG (00000005.png, 00000010.png, 00000015.png)" in err, err
    assert "prediction frames are named by index (00000000.png..00000003.png)" in err, err
    assert f"data/{_video(ds)}/origin" in err, err


def test_listing_is_capped() -> None:
    from vidpan.evaluation.pairing import listing

    names = [f"{5 * t:08d}.png" for t in range(12)]
    assert listing(names) == (
        "00000000.png, 00000005.png, 00000010.png, 00000015.png, 00000020.png, ... (first 5 of 12 listed)"
    )
