"""Segment a COCO panoptic split with a segmenter and score it with COCO PQ, in one call.

The seed paper's Table 2 metric for the COCO stage. Every image of ``<root>/<split>/`` listed in
``<root>/annotations/panoptic_<split>.json`` is segmented as a one-frame video in ``minvis`` mode
(the segmenter alone; the VPS post-processing on one frame is Mask2Former's
``panoptic_inference``: thresholds, stuff merged by class), written in the COCO panoptic format
(RGB-id PNGs + a prediction JSON with the dataset's category ids) and scored with
:func:`vidpan.evaluation.coco_panoptic.evaluate_coco_panoptic` (panopticapi's ``pq_compute``).
Used by the coco stage's periodic evaluation (:mod:`vidpan.training.evaluation`).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from vidpan.config import Config
from vidpan.data.categories import CategoryMapping
from vidpan.data.datasets.base import read_rgb_image
from vidpan.data.formats.coco_panoptic import read_coco_panoptic
from vidpan.data.formats.rgb_id import encode_png, id2rgb
from vidpan.errors import InputError
from vidpan.evaluation.coco_panoptic import evaluate_coco_panoptic
from vidpan.inference.evaluate import _eval_mode
from vidpan.inference.predictor import VideoPredictor
from vidpan.models.build import DVIS
from vidpan.structures import PanopticFrame


def evaluate_coco_split(
    model: DVIS,
    config: Config,
    root: str | Path,
    split: str = "val2017",
    *,
    max_images: int | None = None,
    device: str | torch.device | None = None,
    out_dir: str | Path | None = None,
) -> dict[str, float | None]:
    """COCO PQ of ``model``'s segmenter on a split (``vidpan eval coco-panoptic`` keys).

    Args:
        root: a COCO root (``annotations/panoptic_<split>.json``, ``panoptic_<split>/``, ``<split>/``).
        max_images: score only the first N annotated images (quick periodic checks).
        out_dir: keep the predictions there (default: a temporary directory, deleted).
    """
    root = Path(root)
    gt_json = root / "annotations" / f"panoptic_{split}.json"
    coco = read_coco_panoptic(gt_json, root / f"panoptic_{split}", root / split)
    images = coco.images[:max_images] if max_images else coco.images
    if not images:
        raise InputError("the split has no annotated images", path=gt_json)
    categories = CategoryMapping.from_categories(coco.categories)
    if categories.num_classes != config.model.num_classes:
        raise InputError(
            f"{categories.num_classes} categories but the model predicts {config.model.num_classes} classes",
            path=gt_json,
        )
    device = device if device is not None else next(model.parameters()).device
    with _eval_mode(model), contextlib.ExitStack() as stack:
        base = (
            Path(out_dir) if out_dir is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        )
        pred_dir = base / f"panoptic_{split}"
        pred_dir.mkdir(parents=True, exist_ok=True)
        predictor = VideoPredictor(model, config, device=device, categories=categories)
        annotations = []
        for im in images:
            frame = read_rgb_image(coco.image_path(im), expected_size=(im.height, im.width))
            video = frame.permute(1, 2, 0).numpy()[None]  # [1, H, W, 3] uint8
            result = predictor.predict(video, mode="minvis", task="vps", keep_frames=True).frames[0]
            if not isinstance(result, PanopticFrame):
                raise TypeError(f"expected a panoptic frame, got {type(result).__name__}")
            png = f"{Path(im.png_name).stem}.png"
            (pred_dir / png).write_bytes(encode_png(id2rgb(result.segment_ids.astype(np.uint32))))
            segments = [
                {
                    "id": s.id,
                    "category_id": categories.to_dataset(s.category_id),
                    "iscrowd": 0,
                    "area": int((result.segment_ids == s.id).sum()),
                }
                for s in result.segments
            ]
            annotations.append({"image_id": im.image_id, "file_name": png, "segments_info": segments})
        # The GT of the scored images only (max_images), in the same layout.
        gt_subset = base / "gt.json"
        raw = json.loads(gt_json.read_text(encoding="utf-8"))
        keep = {im.image_id for im in images}
        raw["annotations"] = [a for a in raw["annotations"] if a["image_id"] in keep]
        gt_subset.write_text(json.dumps(raw), encoding="utf-8")
        pred_json = base / f"panoptic_{split}.json"
        pred_json.write_text(json.dumps({"annotations": annotations}), encoding="utf-8")
        result_json = evaluate_coco_panoptic(
            gt_subset, root / f"panoptic_{split}", pred_json, pred_dir
        ).to_json()
    return dict(result_json)
