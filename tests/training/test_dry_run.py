"""``vidpan train --dry-run``: one step per stage through the real training path, freezing checked.

The default-run test uses the tiny smoke recipe in this process; the ``slow`` test runs the seed
recipe (``vipseg_vitg``: coco -> segmenter -> tracker -> refiner -> finetune -> vss) with the
``vitl`` preset's ViT and adapter, each stage in its own process, as the command line does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vidpan.training import dry_run
from vidpan.training.config import recipe_stage_names
from vidpan.training.trainer import Trainer


def test_configs_of_the_seed_recipe(tmp_path: Path) -> None:
    cfgs = dry_run.dry_run_configs(
        "vipseg_vitg", tmp_path / "runs", tmp_path / "s", stage=None, crop=64, overrides=[]
    )
    assert [c.stage.name for c in cfgs] == recipe_stage_names("vipseg_vitg")
    by = {c.stage.name: c for c in cfgs}
    assert by["coco"].stage.init == ""  # the DINOv2 file is replaced by random weights
    assert by["coco"].data.dataset == "coco" and by["coco"].data.split == "train2017"
    assert by["vss"].data.dataset == "vspw"
    for c in cfgs:
        assert (c.solver.max_iter, c.solver.clips_per_batch, c.data.augmentation.crop_size) == (
            1,
            1,
            (64, 64),
        )
        assert c.model.vit.depth == 40 and c.model.vit.embed_dim == 1536  # the real ViT-g
        assert (c.model.num_classes, c.model.num_things) == (16, 8)
    assert by["refiner"].data.sampling.num_frames == 21 and by["tracker"].data.sampling.num_frames == 5
    assert by["tracker"].stage.init == "stage:segmenter"
    (only,) = dry_run.dry_run_configs(
        "vipseg_vitg", tmp_path, tmp_path, stage="tracker", crop=64, overrides=[]
    )
    assert only.stage.init == ""  # its segmenter is not part of the run
    vitl = dry_run.preset_overrides("vitl")
    assert (
        "model.vit.depth=24" in vitl
        and "model.adapter.interaction_indexes=[[0,5],[6,11],[12,17],[18,23]]" in vitl
    )


def test_smoke_dry_run_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    reports = dry_run.run_dry_run("smoke_tiny", isolate=False, frames=6)
    assert [r.stage for r in reports] == ["segmenter", "tracker", "refiner", "finetune", "vss"]
    seg, trk, ref = reports[0], reports[1], reports[2]
    assert (
        seg.frozen == ("vit",)
        and trk.frozen == ("vit", "segmenter")
        and ref.frozen == ("vit", "segmenter", "tracker")
    )
    assert seg.init == "random" and trk.init == "stage:segmenter"
    assert 0 < trk.trainable_params < ref.trainable_params < ref.total_params
    assert all(r.seconds > 0 and r.peak_rss_gb > 0 for r in reports)
    out = capsys.readouterr().out
    assert dry_run.HEADER in out and "vss" in out


def test_the_freezing_check_can_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the frozen segmenter left in train mode its BatchNorm statistics move: caught."""
    monkeypatch.setattr(Trainer, "_set_modes", lambda self: self.model.train())
    with pytest.raises(AssertionError, match="the frozen segmenter changed"):
        dry_run.run_dry_run("smoke_tiny", stage="tracker", isolate=False, frames=6, echo=False)


@pytest.mark.slow
def test_seed_recipe_dry_run_with_vitl(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "vidpan", "train", "--config", "vipseg_vitg", "--dry-run", "--preset", "vitl",
         "--out", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=3600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = proc.stdout.split("freezing checked\n", 1)[1].splitlines()
    assert [line.split()[0] for line in table[1:]] == [
        "coco",
        "segmenter",
        "tracker",
        "refiner",
        "finetune",
        "vss",
    ]
