"""The synthetic benchmark's frames as a COCO panoptic dataset (the real COCO 2017 layout).

``generate(..., coco=True)`` writes every frame of every video a second time as a COCO panoptic
image, so the segmenter's COCO pre-training stage (and ``vidpan eval coco-panoptic``) run on the
same code path as real COCO::

    coco/train2017/<image>.jpg                  RGB images (the VIPSeg frame's JPEG bytes)
    coco/val2017/<image>.jpg
    coco/panoptic_train2017/<image>.png         RGB-id PNGs (the frame's VIPSeg ids)
    coco/panoptic_val2017/<image>.png
    coco/annotations/panoptic_{train,val}2017.json
    coco/pred/panoptic_val2017.json + coco/pred/panoptic_val2017/<image>.png   (predictions="noisy")

Train videos give ``train2017``, val videos ``val2017``. Image ids are ``video_index * 10000 +
frame`` (file stems zero-padded to 12 digits as in COCO). Category ids are the synthetic ids + 1
(COCO ids start at 1; the loader maps them to the model's things-first space), with COCO's
``supercategory`` field. Segment ``area`` and ``bbox`` are those of the frame. The noisy
prediction is the VIPSeg noisy prediction of the same frame (``pred/``), re-labelled the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidpan.data.formats.rgb_id import encode_png, id2rgb
from vidpan.data.formats.vipseg import Category, SegmentInfo

COCO_DIR = "coco"
SPLITS = {"train": "train2017", "val": "val2017"}
FRAMES_PER_VIDEO_ID = 10000


def coco_category_id(category: int) -> int:
    """Synthetic (0-based) category id -> COCO-style id (1-based)."""
    return category + 1


def coco_image_id(video_index: int, frame: int) -> int:
    return video_index * FRAMES_PER_VIDEO_ID + frame


def coco_categories(categories: tuple[Category, ...] | list[Category]) -> list[dict[str, Any]]:
    return [
        {
            "id": coco_category_id(c.id),
            "name": c.name,
            "isthing": int(c.isthing),
            "color": list(c.color),
            "supercategory": "thing" if c.isthing else "stuff",
        }
        for c in categories
    ]


def _segments_json(segments: list[SegmentInfo]) -> list[dict[str, Any]]:
    out = []
    for s in segments:
        entry = s.to_json()
        entry["category_id"] = coco_category_id(s.category_id)
        out.append(entry)
    return out


@dataclass
class CocoSplit:
    """The images and annotations of one split, accumulated while the videos are written."""

    name: str  # train2017 / val2017
    images: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    pred_annotations: list[dict[str, Any]] = field(default_factory=list)


def write_coco_frame(
    root: Path,
    split: CocoSplit,
    image_id: int,
    *,
    jpeg: bytes,
    ids: np.ndarray,
    segments: list[SegmentInfo],
    pred_ids: np.ndarray | None = None,
    pred_segments: list[SegmentInfo] | None = None,
) -> None:
    """Write one frame's image, GT PNG (and prediction PNG) under ``root`` (= ``<out>/coco``).

    Args:
        ids, pred_ids: [H, W] panoptic id maps (0 = void).
    """
    stem = f"{image_id:012d}"
    h, w = ids.shape
    _write(root / split.name / f"{stem}.jpg", jpeg)
    _write(root / f"panoptic_{split.name}" / f"{stem}.png", encode_png(id2rgb(ids)))
    split.images.append({"id": image_id, "file_name": f"{stem}.jpg", "width": w, "height": h})
    split.annotations.append(
        {"image_id": image_id, "file_name": f"{stem}.png", "segments_info": _segments_json(segments)}
    )
    if pred_ids is not None and pred_segments is not None:
        _write(root / "pred" / f"panoptic_{split.name}" / f"{stem}.png", encode_png(id2rgb(pred_ids)))
        split.pred_annotations.append(
            {"image_id": image_id, "file_name": f"{stem}.png", "segments_info": _segments_json(pred_segments)}
        )


def write_coco_jsons(root: Path, splits: list[CocoSplit], categories: list[dict[str, Any]]) -> None:
    """``annotations/panoptic_<split>.json`` per split (and the prediction JSON when there is one)."""
    info = {"description": "vidpan synthetic benchmark frames, COCO panoptic layout", "version": "1.0"}
    for split in splits:
        data = {
            "info": info,
            "images": split.images,
            "annotations": split.annotations,
            "categories": categories,
        }
        _write(root / "annotations" / f"panoptic_{split.name}.json", (json.dumps(data) + "\n").encode())
        if split.pred_annotations:
            pred = {"annotations": split.pred_annotations}
            _write(root / "pred" / f"panoptic_{split.name}.json", (json.dumps(pred) + "\n").encode())


def _write(path: Path, data: bytes) -> None:
    # Plain writes: the generator renames the whole tree into place only when complete.
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
