"""Segment-and-score a COCO panoptic split (the coco stage's periodic evaluation)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vidpan.data.synthetic import SyntheticDataset, generate
from vidpan.errors import InputError
from vidpan.evaluation.coco_panoptic import evaluate_coco_panoptic
from vidpan.inference.evaluate_coco import evaluate_coco_split
from vidpan.models.build import build_dvis
from vidpan.training.config import load_train_configs
from vidpan.training.evaluation import make_evaluator


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    return generate(
        tmp_path_factory.mktemp("synth"),
        videos=2,
        frames=2,
        size=(64, 96),
        seed=3,
        val_fraction=0.5,
        coco=True,
    )


def test_coco_split_and_hook(synth: SyntheticDataset, tmp_path: Path) -> None:
    assert synth.coco_root is not None
    (cfg,) = load_train_configs(
        "smoke_tiny",
        stage="segmenter",
        overrides=[f"data.coco_root={synth.coco_root}", "data.dataset=coco", "data.split=train2017",
                   f"output.dir={tmp_path}", "eval.period=1", "eval.split=val2017",
                   "inference.object_mask_threshold=0.0", "inference.overlap_threshold=0.0"],
    )  # fmt: skip
    torch.manual_seed(0)
    model = build_dvis(cfg.model, parts=("segmenter",))
    kept = tmp_path / "kept"
    scores = evaluate_coco_split(model, cfg.model_config(), synth.coco_root, "val2017", out_dir=kept)
    assert scores["images"] == 2 and {"PQ", "SQ", "RQ", "PQ_th", "PQ_st", "N"} <= set(scores)
    # the written predictions are a valid COCO submission, scored the same by the evaluator
    pred = json.loads((kept / "panoptic_val2017.json").read_text())
    assert len(pred["annotations"]) == 2 and any(a["segments_info"] for a in pred["annotations"])
    again = evaluate_coco_panoptic(kept / "gt.json", synth.coco_root / "panoptic_val2017",
                                   kept / "panoptic_val2017.json", kept / "panoptic_val2017").to_json()  # fmt: skip
    assert again == scores
    evaluate = make_evaluator(cfg)
    assert evaluate is not None
    hook = evaluate(model, 1)
    assert hook["PQ"] == scores["PQ"]
    with pytest.raises(InputError, match="model predicts"):
        other = load_train_configs(
            "smoke_tiny", stage="segmenter", overrides=["model.num_classes=5", "model.num_things=2"]
        )[0]
        evaluate_coco_split(
            build_dvis(other.model, parts=("segmenter",)), other.model_config(), synth.coco_root
        )
