"""Exact resume: a run that crashes and resumes from its last checkpoint logs the same losses as an
uninterrupted run (with DataLoader workers) and ends with identical weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from training_helpers import smoke_config

from vidpan.data.synthetic import SyntheticDataset
from vidpan.models.checkpoint import load_native
from vidpan.training.checkpoints import latest_checkpoint, list_checkpoints, load_checkpoint
from vidpan.training.metrics import read_metrics
from vidpan.training.stages import Batch
from vidpan.training.trainer import StepResult, Trainer

LOGGED = ("loss", "loss_ce", "loss_mask", "loss_dice", "loss_dice_aux0", "grad_norm", "lr")


def _losses(run_dir: Path) -> list[tuple[int, tuple[float, ...]]]:
    return [(r["iteration"], tuple(r[k] for k in LOGGED)) for r in read_metrics(run_dir)]


@pytest.mark.parametrize(
    ("stage", "extra"),
    [
        # Segmenter: BatchNorm statistics, point sampling, two DataLoader workers.
        ("segmenter", ["data.num_workers=2"]),
        # Tracker: identity noise on the CPU generator, first-half matching switch at iteration 3.
        ("tracker", ["data.num_workers=1"]),
    ],
)
def test_resume_gives_the_losses_of_an_uninterrupted_run(
    stage: str, extra: list[str], synth: SyntheticDataset, tmp_path: Path
) -> None:
    common = ["solver.max_iter=6", "solver.steps=[4]", "output.checkpoint_period=3", *extra]
    if stage == "tracker":
        seg = smoke_config(synth, tmp_path / "seg", "segmenter", ["solver.max_iter=1"])
        Trainer(seg).run()
        common.append(f"stage.init={seg.run_dir / 'model_final.safetensors'}")

    straight = smoke_config(synth, tmp_path / "straight", stage, common)
    Trainer(straight).run()

    # The same config crashes during iteration 5 (the last checkpoint is at 3, iteration 4 was
    # logged but not checkpointed), then resumes.
    interrupted = smoke_config(synth, tmp_path / "interrupted", stage, common)
    crashing = Trainer(interrupted)
    real_step = crashing.train_step

    def step(batch: Batch) -> StepResult:
        if crashing.iteration == 4:
            raise RuntimeError("simulated crash")
        return real_step(batch)

    crashing.train_step = step  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashing.run()
    assert [r["iteration"] for r in read_metrics(interrupted.run_dir)] == [1, 2, 3, 4]
    resumed = Trainer(interrupted, resume=True)
    assert resumed.iteration == 3
    resumed.run()

    a, b = _losses(straight.run_dir), _losses(interrupted.run_dir)
    assert [it for it, _ in b] == [1, 2, 3, 4, 5, 6]  # the orphaned record of iteration 4 was replaced
    assert a == b

    _, final_a = load_native(straight.run_dir / "model_final.safetensors")
    _, final_b = load_native(interrupted.run_dir / "model_final.safetensors")
    assert final_a.keys() == final_b.keys()
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)


def test_checkpoint_contents(synth: SyntheticDataset, tmp_path: Path) -> None:
    cfg = smoke_config(synth, tmp_path, "segmenter", ["solver.max_iter=2", "output.checkpoint_period=1"])
    Trainer(cfg).run()
    assert [p.name for p in list_checkpoints(cfg.run_dir)] == ["iter_0000001.pt", "iter_0000002.pt"]
    ckpt = load_checkpoint(latest_checkpoint(cfg.run_dir))  # type: ignore[arg-type]
    assert ckpt["iteration"] == 2
    assert {"model", "optimizer", "scheduler", "scaler", "rng", "data", "config"} <= set(ckpt)
    assert ckpt["data"] == {"world_size": 1, "per_rank_batch": 2, "clips_consumed_per_rank": 4}
    assert set(ckpt["rng"][0]) >= {"python", "numpy", "torch", "generators"}
    assert set(ckpt["rng"][0]["generators"]) == {"loss", "noise"}
    # No init file: the frozen ViT is part of the checkpoint (nothing else could restore it).
    assert any(k.startswith("segmenter.backbone.vit.") for k in ckpt["model"])
    assert (cfg.run_dir / "config.yaml").is_file()


def test_checkpoints_skip_frozen_parts_loaded_from_init(synth: SyntheticDataset, tmp_path: Path) -> None:
    seg = smoke_config(synth, tmp_path / "seg", "segmenter", ["solver.max_iter=1"])
    Trainer(seg).run()
    cfg = smoke_config(
        synth,
        tmp_path / "trk",
        "tracker",
        ["solver.max_iter=1", f"stage.init={seg.run_dir / 'model_final.safetensors'}"],
    )
    Trainer(cfg).run()
    ckpt = load_checkpoint(latest_checkpoint(cfg.run_dir))  # type: ignore[arg-type]
    assert ckpt["model"] and all(k.startswith("tracker.") for k in ckpt["model"])
    _, exported = load_native(cfg.run_dir / "model_final.safetensors")
    assert {k.split(".")[0] for k in exported} == {"segmenter", "tracker"}
