"""Periodic evaluation reports the leaderboard's VPQ (VPQ_1246, the seed paper's "VPQ") first and
names it in the log, beside the official five-window VPQ."""

from __future__ import annotations

from pathlib import Path

from training_helpers import smoke_config

from vidpan.data.synthetic import SyntheticDataset
from vidpan.models.build import DVIS
from vidpan.training.evaluation import leaderboard_order
from vidpan.training.trainer import Trainer


def test_leaderboard_order() -> None:
    scores = {"VPQ1": 60.0, "VPQ": 57.0, "VPQ_1246": 58.0, "STQ": 0.5}
    assert list(leaderboard_order(scores)) == ["VPQ_1246", "VPQ1", "VPQ", "STQ"]
    assert leaderboard_order({"PQ": 1.0}) == {"PQ": 1.0}


def test_training_log_names_the_leaderboard_vpq(synth: SyntheticDataset, tmp_path: Path) -> None:
    cfg = smoke_config(synth, tmp_path, "segmenter", ["solver.max_iter=1", "eval.period=1"])

    def evaluate(model: DVIS, iteration: int) -> dict[str, float]:
        del model, iteration
        return leaderboard_order({"VPQ1": 59.10, "VPQ2": 58.50, "VPQ4": 57.90, "VPQ6": 57.53, "VPQ8": 57.0,
                                  "VPQ": 58.006, "VPQ_1246": 58.2575})  # fmt: skip

    Trainer(cfg, evaluate=evaluate).run()
    log = (cfg.run_dir / "log.txt").read_text()
    assert "leaderboard VPQ (mean of VPQ1/2/4/6, the paper's VPQ) 58.26; official 5-window VPQ 58.01" in log
