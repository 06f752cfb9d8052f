"""Segment-and-score a VIPSeg-layout split; the training-time evaluation hook."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from vidpan.data.synthetic import SyntheticDataset, generate
from vidpan.errors import InputError
from vidpan.inference.evaluate import evaluate_vipseg_split
from vidpan.models.build import build_dvis
from vidpan.training.config import load_train_configs
from vidpan.training.evaluation import make_evaluator


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    return generate(
        tmp_path_factory.mktemp("synth"), videos=3, frames=5, size=(64, 96), seed=5, val_fraction=0.67
    )


def _smoke(synth: SyntheticDataset, tmp_path: Path, *overrides: str):  # type: ignore[no-untyped-def]
    (cfg,) = load_train_configs(
        "smoke_tiny",
        stage="refiner",
        overrides=[f"data.vipseg_root={synth.vipseg_root}", f"output.dir={tmp_path}",
                   "inference.object_mask_threshold=0.0", "inference.overlap_threshold=0.0", *overrides],
    )  # fmt: skip
    return cfg


def test_evaluate_split_and_restore_modes(synth: SyntheticDataset, tmp_path: Path) -> None:
    cfg = _smoke(synth, tmp_path)
    torch.manual_seed(0)
    model = build_dvis(cfg.model)
    model.train()
    model.segmenter.eval()  # as a training stage keeps its frozen parts
    flags = {name: m.training for name, m in model.named_modules()}
    scores = evaluate_vipseg_split(
        model, cfg.model_config(), synth.vipseg_root, "val", vss_root=synth.vspw_root
    )
    assert {"VPQ", "VPQ1", "VPQ6", "STQ", "mIoU", "VC8"} <= set(scores)
    assert all(v is None or (isinstance(v, float) and not math.isnan(v)) for v in scores.values())
    assert {name: m.training for name, m in model.named_modules()} == flags
    kept = tmp_path / "kept"
    evaluate_vipseg_split(model, cfg.model_config(), synth.vipseg_root, "val", mode="minvis", out_dir=kept)
    assert (kept / "predictions" / "pred.json").is_file()
    with pytest.raises(InputError, match="not in the split"):
        evaluate_vipseg_split(model, cfg.model_config(), synth.vipseg_root, "val", videos=["nope"])


def test_training_evaluation_hook(synth: SyntheticDataset, tmp_path: Path) -> None:
    cfg = _smoke(synth, tmp_path, "eval.period=2", "eval.split=val")
    evaluate = make_evaluator(cfg)
    assert evaluate is not None
    scores = evaluate(build_dvis(cfg.model), 2)
    assert "VPQ1" in scores and "STQ" in scores  # (VPQ6, VPQ8 and their mean need >= 8 frames)
