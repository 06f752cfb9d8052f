"""Test helpers: tiny datasets in the official VIPSeg / VSPW / COCO panoptic layouts, written with the
format writers (the fixtures wrapping them are in ``conftest.py``).

Every image pixel's colour is a function of its segment (:func:`segment_color`), so a test can check
after augmentation that masks still cover the image content they were drawn from.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vidpan.data.formats.rgb_id import write_id_png
from vidpan.data.formats.vipseg import (
    Category,
    FrameInfo,
    PanopticVideoDataset,
    VideoAnnotation,
    convert_video,
    encode_raw,
    read_panoptic_video_json,
    write_panomask,
    write_panoptic_video_json,
    write_split,
)
from vidpan.data.formats.vspw import write_label_png

# Interleaved things / stuff, as in VIPSeg (0 wall = stuff, 2 door = thing, ...).
CATEGORIES = [
    Category(0, "wall", False, (120, 120, 120)),
    Category(1, "door", True, (6, 230, 230)),
    Category(2, "sky", False, (70, 130, 180)),
    Category(3, "person", True, (220, 20, 60)),
    Category(4, "road", False, (128, 64, 128)),
]


def segment_color(value: int) -> tuple[int, int, int]:
    """A colour that identifies a segment (raw value / id); far apart for different values."""
    rng = np.random.default_rng(value & 0xFFFFFFFF)
    return tuple(int(c) for c in rng.integers(0, 6, size=3) * 50)  # type: ignore[return-value]


def paint(labels: np.ndarray, void_color: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """[H, W] segment values -> [H, W, 3] uint8 image with one flat colour per segment."""
    out = np.empty((*labels.shape, 3), dtype=np.uint8)
    out[:] = void_color
    for v in np.unique(labels):
        out[labels == v] = segment_color(int(v))
    return out


def save_jpeg(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, format="JPEG", quality=100, subsampling=0)


def raw_video(num_frames: int, height: int = 40, width: int = 60, *, shift: int = 0) -> list[np.ndarray]:
    """Raw VIPSeg panomasks: wall (top) and road (bottom) stuff, a door moving right, person #0 in
    every frame, person #1 only from frame 2 on, a void strip on the left."""
    frames = []
    for t in range(num_frames):
        raw = np.full((height, width), encode_raw(0, None), dtype=np.int32)
        raw[height // 2 :] = encode_raw(4, None)
        x = 4 + 3 * t + shift
        raw[5:20, x : x + 10] = encode_raw(1, 0)
        raw[22:36, 30:38] = encode_raw(3, 0)
        if t >= 2:
            raw[22:36, 44:52] = encode_raw(3, 1)
        raw[:, :2] = 0
        frames.append(raw)
    return frames


def write_vipseg(
    root: Path, videos: dict[str, list[np.ndarray]], *, split: str = "train", images: bool = True
) -> PanopticVideoDataset:
    """Write a VIPSeg root: panomasks, panomasksRGB, images, panoptic_gt_VIPSeg_<split>.json, split list."""
    annotations = []
    for i, (vid, raws) in enumerate(videos.items()):
        id_maps, segments = convert_video(raws, CATEGORIES, seed=i)
        frames = []
        for t, (raw, ids) in enumerate(zip(raws, id_maps, strict=True)):
            stem = f"{t * 5:08d}"
            write_panomask(root / "panomasks" / vid / f"{stem}.png", raw)
            write_id_png(root / "panomasksRGB" / vid / f"{stem}.png", ids)
            if images:
                save_jpeg(root / "images" / vid / f"{stem}.jpg", paint(ids.astype(np.int64), (0, 0, 0)))
            frames.append(FrameInfo(stem, f"{stem}.png", raw.shape[1], raw.shape[0]))
        annotations.append(VideoAnnotation(vid, frames, segments))
    dataset = PanopticVideoDataset(annotations, list(CATEGORIES))
    write_panoptic_video_json(root / f"panoptic_gt_VIPSeg_{split}.json", dataset)
    write_split(root / f"{split}.txt", list(videos))
    return dataset


def build_tiny_vipseg(tmp_path: Path) -> Path:
    root = tmp_path / "VIPSeg_720P"
    write_vipseg(root, {"vid_a": raw_video(6), "vid_b": raw_video(3, shift=20)})
    return root


def write_vspw(root: Path, videos: dict[str, list[np.ndarray]], *, split: str = "train") -> None:
    """VSPW layout: data/<video>/{origin/*.jpg, mask/*.png} with raw labels, and <split>.txt."""
    for vid, raws in videos.items():
        for t, raw in enumerate(raws):
            stem = f"{t:08d}"
            write_label_png(root / "data" / vid / "mask" / f"{stem}.png", raw.astype(np.uint8))
            save_jpeg(root / "data" / vid / "origin" / f"{stem}.jpg", paint(raw.astype(np.int64)))
    write_split(root / f"{split}.txt", list(videos))


def raw_vspw_video(num_frames: int, height: int = 30, width: int = 40) -> list[np.ndarray]:
    """VSPW raw labels: wall (1), road (5), a person (4) from frame 1 on, 'others' (0) and void (255)."""
    frames = []
    for t in range(num_frames):
        raw = np.full((height, width), 1, dtype=np.uint8)
        raw[height // 2 :] = 5
        if t >= 1:
            raw[10:25, 5 + 2 * t : 15 + 2 * t] = 4
        raw[:3, :] = 0
        raw[:, -3:] = 255
        frames.append(raw)
    return frames


def build_tiny_vspw(tmp_path: Path) -> Path:
    root = tmp_path / "VSPW_480p"
    write_vspw(root, {"v1": raw_vspw_video(5), "v2": raw_vspw_video(2)})
    return root


COCO_CATEGORIES = [
    {"id": 1, "name": "person", "isthing": 1, "color": [220, 20, 60]},
    {"id": 3, "name": "car", "isthing": 1, "color": [0, 0, 142]},
    {"id": 7, "name": "sky", "isthing": 0, "color": [70, 130, 180]},
    {"id": 12, "name": "grass", "isthing": 0, "color": [0, 255, 0]},
]


def build_tiny_coco(tmp_path: Path) -> Path:
    """A COCO panoptic folder: panoptic_train.json, panoptic_train/*.png, train/*.jpg (2 images)."""
    root = tmp_path / "coco"
    images, annotations = [], []
    for k in range(2):
        ids = np.full((32, 48), 70, dtype=np.int64)  # sky
        ids[16:] = 120  # grass
        ids[8:24, 10:20] = 1001  # person
        ids[20:30, 30:44] = 3001 + k  # car
        ids[0:4, 0:6] = 9999  # crowd person
        ids[28:, :4] = 0  # void
        name = f"{k:012d}"
        write_id_png(root / "panoptic_train" / f"{name}.png", ids)
        save_jpeg(root / "train" / f"{name}.jpg", paint(ids))
        images.append({"id": k, "file_name": f"{name}.jpg", "width": 48, "height": 32})
        segs = [
            {"id": 70, "category_id": 7, "iscrowd": 0, "area": 1, "bbox": [0, 0, 1, 1]},
            {"id": 120, "category_id": 12, "iscrowd": 0, "area": 1, "bbox": [0, 0, 1, 1]},
            {"id": 1001, "category_id": 1, "iscrowd": 0, "area": 1, "bbox": [0, 0, 1, 1]},
            {"id": 3001 + k, "category_id": 3, "iscrowd": 0, "area": 1, "bbox": [0, 0, 1, 1]},
            {"id": 9999, "category_id": 1, "iscrowd": 1, "area": 1, "bbox": [0, 0, 1, 1]},
        ]
        annotations.append({"image_id": k, "file_name": f"{name}.png", "segments_info": segs})
    data = {"images": images, "annotations": annotations, "categories": COCO_CATEGORIES}
    (root / "panoptic_train.json").write_text(json.dumps(data))
    return root


def oracle_roots_builder(tmp_path: Path, shared_dir: Path) -> Callable[[], tuple[Path, Path]]:
    """The metrics oracle's VIPSeg and VSPW GT (read-only) with dummy images added in tmp."""
    oracle = shared_dir / "fixtures" / "metrics_oracle" / "seed_1" / "data"

    def build() -> tuple[Path, Path]:
        if not oracle.is_dir():
            pytest.fail(f"metrics oracle not found at {oracle}")
        vip = tmp_path / "oracle" / "VIPSeg_720P"
        vip.mkdir(parents=True)
        for name in ("panomasksRGB", "panoptic_gt_VIPSeg_val.json"):
            os.symlink(oracle / "VIPSeg_720P" / name, vip / name)
        gt = read_panoptic_video_json(vip / "panoptic_gt_VIPSeg_val.json")
        for v in gt.videos:
            for f in v.frames:
                save_jpeg(
                    vip / "images" / v.video_id / f"{Path(f.file_name).stem}.jpg",
                    np.full((f.height, f.width, 3), 90, np.uint8),
                )
        vspw = tmp_path / "oracle" / "VSPW"
        (vspw / "data").mkdir(parents=True)
        shutil.copy(oracle / "VSPW" / "val.txt", vspw / "val.txt")
        for vdir in sorted((oracle / "VSPW" / "data").iterdir()):
            (vspw / "data" / vdir.name).mkdir()
            os.symlink(vdir / "mask", vspw / "data" / vdir.name / "mask")
            for m in sorted((vdir / "mask").iterdir()):
                with Image.open(m) as im:
                    w, h = im.size
                save_jpeg(
                    vspw / "data" / vdir.name / "origin" / f"{m.stem}.jpg", np.full((h, w, 3), 90, np.uint8)
                )
        return vip, vspw

    return build
