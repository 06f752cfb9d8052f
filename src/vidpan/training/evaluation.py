"""Periodic evaluation during training: the hook from ``eval.*`` to the VIPSeg evaluator.

The trainer takes any callback ``(model, iteration) -> {metric: value}``
(:data:`vidpan.training.trainer.Evaluator`) and logs what it returns; :func:`make_evaluator` builds
the standard one from the config, importing the evaluator lazily so that training never depends
on the inference package unless ``eval.period > 0``.
"""

from __future__ import annotations

from pathlib import Path

from vidpan.errors import InputError
from vidpan.models.build import DVIS
from vidpan.training.config import TrainConfig
from vidpan.training.trainer import Evaluator


def make_evaluator(cfg: TrainConfig) -> Evaluator | None:
    """VPQ/STQ on a VIPSeg split every ``eval.period`` iterations, or None when ``eval.period`` is 0."""
    if cfg.eval.period <= 0:
        return None
    root = cfg.eval.root or cfg.data.vipseg_root
    if not root:
        raise InputError(
            "eval.period > 0 needs eval.root (or data.vipseg_root): the VIPSeg root to evaluate on"
        )
    if not Path(root).is_dir():
        raise InputError("eval.root: not a directory", path=root)
    try:
        from vidpan.inference.evaluate import evaluate_vipseg_split
    except ImportError as exc:
        raise InputError(
            f"eval.period > 0 but periodic evaluation is unavailable in this installation ({exc}); "
            "set eval.period=0"
        ) from exc
    config, split = cfg.model_config(), cfg.eval.split

    def evaluate(model: DVIS, iteration: int) -> dict[str, float]:
        del iteration
        scores = evaluate_vipseg_split(model, config, root, split)
        return {k: v for k, v in scores.items() if v is not None}  # undefined metrics are not logged

    return evaluate
