"""COCO panoptic format: ``panoptic_<split>.json`` + RGB-id PNGs (reading, for segmenter pre-training).

JSON layout: ``images`` (id, file_name, width, height), ``annotations`` (image_id, file_name of
the PNG, ``segments_info`` with id, category_id, iscrowd, bbox, area), ``categories`` (id, name,
isthing, color). Category ids are sparse (1..200); datasets map them to a contiguous model space.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidpan.data.formats.rgb_id import read_id_png
from vidpan.data.formats.vipseg import (
    Category,
    SegmentInfo,
    parse_categories,
    parse_segments,
    read_json,
    require_field,
)
from vidpan.errors import InputError


@dataclass
class CocoPanopticImage:
    """One annotated image: its file, its panoptic PNG and its segments."""

    image_id: int | str
    file_name: str
    png_name: str
    width: int
    height: int
    segments: list[SegmentInfo]


@dataclass
class CocoPanoptic:
    """A COCO panoptic annotation file with its PNG directory and image directory."""

    images: list[CocoPanopticImage]
    categories: list[Category]
    png_dir: Path
    image_dir: Path | None = None

    def read_ids(self, image: CocoPanopticImage) -> np.ndarray:
        """The [H, W] uint32 id map of ``image``."""
        return read_id_png(self.png_dir / image.png_name, expected_size=(image.height, image.width))

    def image_path(self, image: CocoPanopticImage) -> Path:
        if self.image_dir is None:
            raise InputError("no image directory given for this COCO panoptic dataset")
        return self.image_dir / image.file_name


def read_coco_panoptic(
    json_path: str | Path, png_dir: str | Path, image_dir: str | Path | None = None
) -> CocoPanoptic:
    """Read and validate a COCO panoptic JSON; PNGs are read lazily with :meth:`CocoPanoptic.read_ids`."""
    path = Path(json_path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError("top level: expected an object", path=path)
    images_raw = require_field(data, "images", list, "top level", path)
    anns = require_field(data, "annotations", list, "top level", path)
    categories = parse_categories(require_field(data, "categories", list, "top level", path), source=path)
    meta: dict[int | str, dict] = {}
    for i, im in enumerate(images_raw):
        image_id = require_field(im, "id", (int, str), f"images[{i}]", path)
        meta[image_id] = im
    images = []
    for i, a in enumerate(anns):
        where = f"annotations[{i}]"
        image_id = require_field(a, "image_id", (int, str), where, path)
        if image_id not in meta:
            raise InputError(f"{where}.image_id: {image_id!r} is not in `images`", path=path)
        im = meta[image_id]
        images.append(
            CocoPanopticImage(
                image_id,
                str(require_field(im, "file_name", str, f"images[{image_id}]", path)),
                str(require_field(a, "file_name", str, where, path)),
                int(require_field(im, "width", int, f"images[{image_id}]", path)),
                int(require_field(im, "height", int, f"images[{image_id}]", path)),
                parse_segments(
                    require_field(a, "segments_info", list, where, path), f"{where}.segments_info", path
                ),
            )
        )
    return CocoPanoptic(images, categories, Path(png_dir), Path(image_dir) if image_dir else None)
