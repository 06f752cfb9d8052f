"""Does it learn: on the tiny synthetic benchmark the segmenter's loss drops clearly in 50 iterations."""

from __future__ import annotations

import statistics
from pathlib import Path

from training_helpers import smoke_config

from vidpan.data.synthetic import SyntheticDataset
from vidpan.training.metrics import read_metrics
from vidpan.training.trainer import Trainer


def test_segmenter_loss_decreases(synth: SyntheticDataset, tmp_path: Path) -> None:
    cfg = smoke_config(
        synth,
        tmp_path,
        "segmenter",
        ["solver.max_iter=50", "solver.base_lr=1e-3", "solver.steps=[]", "output.checkpoint_period=1000"],
    )
    Trainer(cfg).run()
    records = read_metrics(cfg.run_dir)
    assert len(records) == 50
    loss = [r["loss"] for r in records]
    ce = [r["loss_ce"] for r in records]
    first, last = statistics.mean(loss[:10]), statistics.mean(loss[-10:])
    assert last < 0.85 * first, f"loss {first:.2f} -> {last:.2f}"
    assert statistics.mean(ce[-10:]) < 0.85 * statistics.mean(ce[:10])
