"""``vidpan segment --task vps,vss --weights A --weights-vss B`` (one frozen ViT, two models) equals two
separate runs, byte for byte; differing ViTs are refused; ``--vss-from panoptic`` is the VPS output
merged by class, scored by ``vidpan eval vss``."""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vidpan.cli.main import main
from vidpan.config import apply_overrides, load_config
from vidpan.data.categories import CategoryMapping
from vidpan.data.formats.rgb_id import read_id_png
from vidpan.data.formats.vipseg import read_panoptic_video_json
from vidpan.data.synthetic import SyntheticDataset, generate
from vidpan.demo import SHIPPED_WEIGHTS
from vidpan.inference.vss_merge import merge_panoptic_by_class
from vidpan.models.build import build_dvis, load_pretrained
from vidpan.models.checkpoint import save_native
from vidpan.structures import PanopticFrame, Segment

OVERRIDES = ["model.num_classes=16", "model.num_things=8", "inference.object_mask_threshold=0.0",
             "inference.overlap_threshold=0.0", "inference.short_side=0", "inference.mode=online"]  # fmt: skip


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[SyntheticDataset, dict[str, Path]]:
    tmp = tmp_path_factory.mktemp("tasks")
    synth = generate(tmp / "synth", videos=1, frames=4, size=(64, 96), seed=2, val_fraction=1.0)
    config = apply_overrides(load_config("tiny"), OVERRIDES)
    models = {}
    for name, seed in (("a", 0), ("b", 1), ("c", 2)):
        torch.manual_seed(seed)
        models[name] = build_dvis(config.model, parts=("segmenter", "tracker"))
        with torch.no_grad():
            for head in (models[name].segmenter.decoder.class_embed, models[name].tracker.class_embed):
                head.bias[-1] = -20.0  # random heads: predict classes, not "no object"
    vit = models["a"].segmenter.backbone.vit.state_dict()
    models["b"].segmenter.backbone.vit.load_state_dict(vit)  # b shares a's frozen ViT; c does not
    paths = {}
    for name, m in models.items():
        paths[name] = tmp / f"{name}.safetensors"
        save_native(paths[name], m.state_dict(), config)
    return synth, paths


def _segment(frames: Path, out: Path, *args: str) -> None:
    assert main(["segment", str(frames), "--out", str(out), "--no-progress", *args]) == 0


def _same_tree(a: Path, b: Path) -> None:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b and files_a
    for rel in files_a:
        assert filecmp.cmp(a / rel, b / rel, shallow=False), rel


def test_two_tasks_one_vit_equal_separate_runs(
    setup: tuple[SyntheticDataset, dict[str, Path]], tmp_path: Path
) -> None:
    synth, w = setup
    frames = synth.vipseg_root / "images" / synth.val_videos[0]
    _segment(
        frames, tmp_path / "both", "--task", "vps,vss", "--weights", str(w["a"]), "--weights-vss", str(w["b"])
    )
    _segment(frames, tmp_path / "vps", "--task", "vps", "--weights", str(w["a"]))
    _segment(frames, tmp_path / "vss", "--task", "vss", "--weights", str(w["b"]))
    _same_tree(tmp_path / "both" / "pan_pred", tmp_path / "vps" / "pan_pred")
    assert (tmp_path / "both" / "pred.json").read_bytes() == (tmp_path / "vps" / "pred.json").read_bytes()
    assert (tmp_path / "both" / "frames.jsonl").read_bytes() == (
        tmp_path / "vps" / "frames.jsonl"
    ).read_bytes()
    _same_tree(tmp_path / "both" / "sem_pred", tmp_path / "vss" / "sem_pred")
    pred = read_panoptic_video_json(tmp_path / "both" / "pred.json", require_videos=False)
    assert any(segs for v in pred.videos for segs in v.segments)  # a non-trivial output


def test_differing_vits_are_refused(setup: tuple[SyntheticDataset, dict[str, Path]], tmp_path: Path) -> None:
    synth, w = setup
    frames = synth.vipseg_root / "images" / synth.val_videos[0]
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "vidpan", "segment", str(frames), "--out", str(tmp_path / "o"), "--task", "vps,vss",
         "--weights", str(w["a"]), "--weights-vss", str(w["c"])],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert proc.returncode == 2 and "frozen ViT differs" in proc.stderr, proc.stderr
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_vss_from_panoptic(tmp_path: Path) -> None:
    """With the shipped model (trained; random heads give the same labels both ways)."""
    synth = generate(tmp_path / "synth", videos=1, frames=4, size=(128, 224), seed=11, val_fraction=1.0)
    frames = synth.vipseg_root / "images" / synth.val_videos[0]
    weights = str(SHIPPED_WEIGHTS)
    _segment(frames, tmp_path / "merged", "--task", "vss", "--vss-from", "panoptic", "--weights", weights)
    _segment(frames, tmp_path / "soft", "--task", "vss", "--weights", weights)
    _segment(frames, tmp_path / "vps", "--task", "vps", "--weights", weights)
    labels = CategoryMapping.from_model_config(load_pretrained(SHIPPED_WEIGHTS)[0].model)
    pred = read_panoptic_video_json(tmp_path / "vps" / "pred.json", require_videos=False)
    video = pred.videos[0]
    differ = 0
    for frame, segs in zip(video.frames, video.segments, strict=True):
        ids = read_id_png(tmp_path / "vps" / "pan_pred" / video.video_id / frame.file_name).astype(np.int32)
        # the submission holds dataset category ids: back to the model space, merge, forward again
        model_segs = [Segment(s.id, labels.to_model(s.category_id), False, 1.0, 0) for s in segs]
        merged = merge_panoptic_by_class(PanopticFrame(0, ids, model_segs)).classes
        expected = np.array([labels.to_dataset(c) for c in range(labels.num_classes)], np.uint8)[merged]
        got = np.array(Image.open(tmp_path / "merged" / "sem_pred" / video.video_id / frame.file_name))
        soft = np.array(Image.open(tmp_path / "soft" / "sem_pred" / video.video_id / frame.file_name))
        np.testing.assert_array_equal(got, expected)
        differ += int((got != soft).sum())
    assert differ > 0
    for name in ("merged", "soft"):
        assert main(["eval", "vss", "--gt-root", str(synth.vspw_root), "--pred-masks", str(tmp_path / name / "sem_pred"),
                     "--split", str(synth.vspw_root / "val.txt"), "--json", str(tmp_path / f"{name}.json")]) == 0  # fmt: skip
    assert json.loads((tmp_path / "merged.json").read_text()) != json.loads(
        (tmp_path / "soft.json").read_text()
    )
