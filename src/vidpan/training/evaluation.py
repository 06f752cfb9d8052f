"""Periodic evaluation during training: the hook from ``eval.*`` to the VIPSeg or COCO evaluator.

The trainer takes any callback ``(model, iteration) -> {metric: value}``
(:data:`vidpan.training.trainer.Evaluator`) and logs what it returns; :func:`make_evaluator` builds
the standard one from the config, importing the evaluator lazily so that training never depends
on the inference package unless ``eval.period > 0``:

- VIPSeg stages: VPQ / STQ on ``eval.split`` of ``eval.root`` (default ``data.vipseg_root``).
  The metrics start with ``VPQ_1246``, the mean of VPQ1/2/4/6: the seed paper's and the PVUW
  leaderboard's "VPQ" (its Table 5: 58.26 = mean(59.10, 58.50, 57.90, 57.53)); ``VPQ`` is the
  official script's five-window mean (k = 1, 2, 4, 6, 8).
- COCO stages (``data.dataset: coco``): COCO panoptic PQ / SQ / RQ (the paper's Table 2 metric) on
  ``eval.split`` of ``eval.root`` (default ``data.coco_root``), segmenter alone per image.
"""

from __future__ import annotations

from pathlib import Path

from vidpan.errors import InputError
from vidpan.models.build import DVIS
from vidpan.training.config import TrainConfig
from vidpan.training.trainer import Evaluator

LEADERBOARD_VPQ = "VPQ_1246"


def leaderboard_order(scores: dict[str, float]) -> dict[str, float]:
    """``VPQ_1246`` (the leaderboard's VPQ) first, then the rest in their order."""
    if LEADERBOARD_VPQ not in scores:
        return scores
    return {
        LEADERBOARD_VPQ: scores[LEADERBOARD_VPQ],
        **{k: v for k, v in scores.items() if k != LEADERBOARD_VPQ},
    }


def make_evaluator(cfg: TrainConfig) -> Evaluator | None:
    """The stage's periodic evaluation, or None when ``eval.period`` is 0."""
    if cfg.eval.period <= 0:
        return None
    coco = cfg.data.dataset == "coco"
    root = cfg.eval.root or (cfg.data.coco_root if coco else cfg.data.vipseg_root)
    if not root:
        key = "data.coco_root" if coco else "data.vipseg_root"
        raise InputError(f"eval.period > 0 needs eval.root (or {key}): the dataset root to evaluate on")
    if not Path(root).is_dir():
        raise InputError("eval.root: not a directory", path=root)
    try:
        if coco:
            from vidpan.inference.evaluate_coco import evaluate_coco_split
        else:
            from vidpan.inference.evaluate import evaluate_vipseg_split
    except ImportError as exc:
        raise InputError(
            f"eval.period > 0 but periodic evaluation is unavailable in this installation ({exc}); "
            "set eval.period=0"
        ) from exc
    config, split = cfg.model_config(), cfg.eval.split

    def evaluate(model: DVIS, iteration: int) -> dict[str, float]:
        del iteration
        if coco:
            scores = evaluate_coco_split(model, config, root, split)
        else:
            scores = evaluate_vipseg_split(model, config, root, split)
        # undefined metrics are not logged
        return leaderboard_order({k: v for k, v in scores.items() if isinstance(v, (int, float))})

    return evaluate
