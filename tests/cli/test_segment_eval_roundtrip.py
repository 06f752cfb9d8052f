"""What `vidpan segment` writes is directly scorable by `vidpan eval` (VPS and VSS)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vidpan.cli.main import main
from vidpan.config import load_config
from vidpan.data.categories import CategoryMapping
from vidpan.data.synthetic import generate
from vidpan.models.build import build_dvis
from vidpan.models.checkpoint import save_native


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("roundtrip")
    data = generate(tmp / "synth", videos=3, frames=5, size=(64, 96), seed=11, val_fraction=0.67)
    mapping = CategoryMapping.from_file(data.categories_path)
    overrides = [
        f"model.num_classes={mapping.num_classes}",
        f"model.num_things={mapping.num_things}",
        f"model.class_names={json.dumps(list(mapping.names))}",
        f"model.dataset_category_ids={list(mapping.dataset_ids)}",
        f"model.class_colors={json.dumps([list(c) for c in mapping.colors])}",
        "inference.object_mask_threshold=0.0",
        "inference.overlap_threshold=0.0",
    ]
    config = load_config("tiny", overrides)
    torch.manual_seed(0)
    weights = tmp / "random16.safetensors"
    save_native(weights, build_dvis(config.model).state_dict(), config)
    return tmp / "synth", weights


def test_segment_then_eval_vps(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, weights = setup
    val = [p.strip() for p in (root / "VIPSeg" / "val.txt").read_text().splitlines() if p.strip()]
    inputs = [str(root / "VIPSeg" / "images" / v) for v in val]
    out = tmp_path / "pred"
    assert (
        main(
            [
                "segment",
                *inputs,
                "--weights",
                str(weights),
                "--mode",
                "offline",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    # Outputs keep the source frame names (VIPSeg: every 5th source frame), so they pair by name.
    gt = json.loads((root / "VIPSeg" / "panoptic_gt_VIPSeg_val.json").read_text())
    pred = json.loads((out / "pred.json").read_text())
    pred_names = {a["video_id"]: [f["file_name"] for f in a["annotations"]] for a in pred["annotations"]}
    for video in gt["annotations"]:
        names = [f["file_name"] for f in video["annotations"]]
        assert names[:2] == ["00000000.png", "00000005.png"]
        assert pred_names[video["video_id"]] == names
        assert sorted(p.name for p in (out / "pan_pred" / video["video_id"]).iterdir()) == names
    scores = tmp_path / "scores.json"
    code = main(["eval", "vps", "--gt-json", str(root / "VIPSeg" / "panoptic_gt_VIPSeg_val.json"),
                 "--gt-masks", str(root / "VIPSeg" / "panomasksRGB"), "--pred-json", str(out / "pred.json"),
                 "--pred-masks", str(out / "pan_pred"), "--json", str(scores)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    result = json.loads(scores.read_text())
    assert {"VPQ", "VPQ1", "STQ"} <= set(result)


def test_segment_then_eval_vss(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, weights = setup
    val = [p.strip() for p in (root / "VSPW" / "val.txt").read_text().splitlines() if p.strip()]
    inputs = [str(root / "VSPW" / "data" / v / "origin") for v in val]
    out = tmp_path / "vss"
    # VSPW frame folders (data/<video>/origin) are named after their video.
    assert (
        main(
            [
                "segment",
                *inputs,
                "--weights",
                str(weights),
                "--task",
                "vss",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    for v in val:
        gt_names = sorted(p.name for p in (root / "VSPW" / "data" / v / "mask").iterdir())
        assert gt_names[:2] == ["00000000.png", "00000005.png"]
        assert sorted(p.name for p in (out / "sem_pred" / v).iterdir()) == gt_names
    code = main(["eval", "vss", "--gt-root", str(root / "VSPW"), "--pred-masks", str(out / "sem_pred")])
    assert code == 0, capsys.readouterr().err


def test_segment_rejects_duplicate_video_names(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, weights = setup
    video = str(root / "VIPSeg" / "images" / "0000_synth")
    assert main(["segment", video, video, "--weights", str(weights), "--out", str(tmp_path / "o")]) == 2
    assert "same video name" in capsys.readouterr().err
