"""The shipped model (src/vidpan/assets/synthetic_tiny): it loads, and its held-out score is the
documented one (model card and scores.json, produced by benchmarks/embedded_model_scores.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidpan.data.synthetic import generate
from vidpan.demo import SHIPPED_WEIGHTS
from vidpan.inference.evaluate import evaluate_vipseg_split
from vidpan.models.build import load_pretrained

DOCUMENTED = json.loads((SHIPPED_WEIGHTS.parent / "scores.json").read_text())
MARGIN = 1.0  # VPQ points: other CPUs / thread counts may flip a few near-tie voxels


def test_shipped_model_is_small_and_complete() -> None:
    assert SHIPPED_WEIGHTS.stat().st_size <= 25 * 2**20
    config, model = load_pretrained(SHIPPED_WEIGHTS)
    assert model.parts == ("segmenter", "tracker", "refiner")
    assert len(config.model.class_names) == config.model.num_classes == 16


@pytest.mark.parametrize("mode", ["offline"])
def test_shipped_model_heldout_vpq(mode: str, tmp_path: Path) -> None:
    heldout = DOCUMENTED["heldout"]
    data = generate(tmp_path / "heldout", videos=heldout["videos"], frames=heldout["frames"],
                    size=tuple(heldout["size"]), seed=heldout["seed"], val_fraction=1.0)  # fmt: skip
    config, model = load_pretrained(SHIPPED_WEIGHTS)
    scores = evaluate_vipseg_split(model, config, data.vipseg_root, "val", mode=mode)  # type: ignore[arg-type]
    expected = DOCUMENTED["scores"][mode]
    for key in ("VPQ", "VPQ6"):
        assert abs(scores[key] - expected[key]) <= MARGIN, (key, scores[key], expected[key])
    assert scores["VPQ"] >= 40.0
