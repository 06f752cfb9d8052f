"""Segment a VIPSeg-layout split and score it with the official metrics, in one call.

Used by periodic evaluation during training (:mod:`vidpan.training.evaluation`), by the demo and
by the embedded model's score table. The split's videos are read from ``<root>/images/<video>/``
(frame folders, as VIPSeg and the synthetic benchmark store them), segmented with
:class:`~vidpan.inference.predictor.VideoPredictor`, written as a VIPSeg submission into a
temporary directory and scored with :func:`vidpan.evaluation.evaluate_vps` against
``panoptic_gt_VIPSeg_<split>.json`` + ``panomasksRGB``. Optionally the VSPW-style semantic
metrics too (``vss_root``).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from vidpan.config import Config
from vidpan.data.categories import CategoryMapping
from vidpan.data.formats.vipseg import read_panoptic_video_json, subset, write_panoptic_video_json
from vidpan.errors import InputError
from vidpan.evaluation import evaluate_vps, evaluate_vss
from vidpan.inference.output import FrameWriter, OutputDirectory
from vidpan.inference.predictor import Mode, VideoPredictor
from vidpan.inference.writers import SemanticPNGWriter, VIPSegSubmissionWriter
from vidpan.models.build import DVIS


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Evaluate, then give every submodule back its own train/eval flag (training keeps frozen
    parts in eval mode, which a plain ``model.train()`` would undo)."""
    flags = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        for m, training in flags:
            m.training = training


def default_mode(model: DVIS) -> Mode:
    """The most complete inference the model supports: offline > online > minvis."""
    if model.refiner is not None:
        return "offline"
    return "online" if model.tracker is not None else "minvis"


def evaluate_vipseg_split(
    model: DVIS,
    config: Config,
    root: str | Path,
    split: str = "val",
    *,
    mode: Mode | None = None,
    videos: Sequence[str] | None = None,
    vss_root: str | Path | None = None,
    device: str | torch.device | None = None,
    out_dir: str | Path | None = None,
) -> dict[str, float | None]:
    """Segment the videos of a split and return the official metrics (``vidpan eval`` keys).

    Args:
        model, config: the model and its configuration (thresholds, window, resize).
        root: a VIPSeg-layout root (``images/``, ``panomasksRGB/``, ``panoptic_gt_VIPSeg_<split>.json``).
        split: which GT JSON.
        mode: inference mode (default :func:`default_mode`).
        videos: restrict to these videos (default: all of the split).
        vss_root: also score ``mIoU``/``fwIoU``/``VC8``/``VC16`` against this VSPW root.
        device: where to run (default: where the model is).
        out_dir: keep the predictions there (default: a temporary directory, deleted).
    """
    root = Path(root)
    gt_json = root / f"panoptic_gt_VIPSeg_{split}.json"
    gt = read_panoptic_video_json(gt_json)
    if videos is not None:
        missing = sorted(set(videos) - {v.video_id for v in gt.videos})
        if missing:
            raise InputError(f"videos not in the split: {missing[:5]}", path=gt_json)
        gt = subset(gt, videos)
    if not gt.videos:
        raise InputError("the split has no videos", path=gt_json)
    categories = CategoryMapping.from_categories(gt.categories)
    if categories.num_classes != config.model.num_classes:
        raise InputError(
            f"{categories.num_classes} categories but the model predicts {config.model.num_classes} classes",
            path=gt_json,
        )
    device = device if device is not None else next(model.parameters()).device
    mode = mode or default_mode(model)
    with _eval_mode(model), contextlib.ExitStack() as stack:
        base = (
            Path(out_dir) if out_dir is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        )
        predictions = base / "predictions"
        predictor = VideoPredictor(model, config, device=device, categories=categories)
        with OutputDirectory(predictions) as out:
            panoptic: list[FrameWriter] = [VIPSegSubmissionWriter(out, labels=categories)]
            semantic: list[FrameWriter] = [SemanticPNGWriter(out, labels=categories)] if vss_root else []
            for video in gt.videos:
                frames = root / "images" / video.video_id
                predictor.predict(frames, mode=mode, task="vps", writers=panoptic, keep_frames=False)
                if semantic:  # the model's own per-pixel classes (VSS inference), no void pixels
                    predictor.predict(frames, mode=mode, task="vss", writers=semantic, keep_frames=False)
        gt_subset = base / f"gt_{split}.json"
        write_panoptic_video_json(gt_subset, gt)
        scores: dict[str, float | None] = dict(
            evaluate_vps(
                gt_subset, root / "panomasksRGB", predictions / "pred.json", predictions / "pan_pred"
            ).to_json()
        )
        if vss_root is not None:
            split_file = base / "vss_split.txt"
            split_file.write_text("".join(f"{v.video_id}\n" for v in gt.videos))
            scores.update(evaluate_vss(vss_root, predictions / "sem_pred", split=split_file).to_json())
    return scores
