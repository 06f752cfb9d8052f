"""COCO panoptic images as single frames or pseudo-clips, for segmenter pre-training.

Each annotated image is a one-frame "video". A clip of T frames asks for frame 0 T times and gets
the same image T times; the clip transform (``vidpan.data.transforms``) then applies one scale,
crop and flip to all of them, as DVIS's pseudo-video mapper does (``CocoClipDatasetMapper`` with
``build_pseudo_augmentation``: the ``*_by_clip`` augmentations draw once per clip). Its default
``INPUT.PSEUDO.AUGMENTATIONS = ['rotation']`` additionally rotates every frame by its own angle
(sorted angles in ±15°, so the pseudo camera turns steadily); enable that with the transform's
``pseudo_rotation_degrees``. With T = 1 this is plain single-image training.

Category ids (sparse, 1..200 for COCO) map to the model space things first (COCO's own order is
already things first). Crowd segments and unlisted ids are void.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vidpan.data.categories import CategoryMapping
from vidpan.data.datasets.base import VOID, LabelledClip, read_rgb_image, require_files
from vidpan.data.formats.coco_panoptic import CocoPanoptic, read_coco_panoptic
from vidpan.errors import InputError


class CocoPanopticDataset:
    """COCO panoptic images; each is a video of one frame.

    Args:
        json_path: ``panoptic_<split>.json``.
        png_dir: the folder of panoptic PNGs (``panoptic_<split>/``).
        image_dir: the folder of images (``<split>/``).
        mapping: the model class space; default things-first from the JSON categories.
        check_files: verify upfront that every image and PNG exists.
    """

    def __init__(
        self,
        json_path: str | Path,
        png_dir: str | Path,
        image_dir: str | Path,
        *,
        mapping: CategoryMapping | None = None,
        check_files: bool = True,
    ) -> None:
        self.json_path = Path(json_path)
        self.coco: CocoPanoptic = read_coco_panoptic(json_path, png_dir, image_dir)
        if not self.coco.images:
            raise InputError("no annotated images", path=self.json_path)
        self.mapping = (
            mapping if mapping is not None else CategoryMapping.from_categories(self.coco.categories)
        )
        for im in self.coco.images:
            for s in im.segments:
                if not self.mapping.has_dataset_id(s.category_id):
                    raise InputError(
                        f"image {im.image_id!r}: segment {s.id} has unknown category id {s.category_id}",
                        path=self.json_path,
                    )
        if check_files:
            require_files(
                [self.coco.image_path(im) for im in self.coco.images],
                what="image files",
                where=Path(image_dir),
            )
            require_files(
                [self.coco.png_dir / im.png_name for im in self.coco.images],
                what="panoptic PNGs",
                where=Path(png_dir),
            )

    def __len__(self) -> int:
        return len(self.coco.images)

    def video_id(self, index: int) -> str:
        return str(self.coco.images[index].image_id)

    def num_frames(self, index: int) -> int:
        return 1

    def load_labelled_clip(self, index: int, frame_indices: Sequence[int]) -> LabelledClip:
        """The image ``index`` repeated ``len(frame_indices)`` times (every index must be 0)."""
        im = self.coco.images[index]
        if not frame_indices or any(i != 0 for i in frame_indices):
            raise IndexError(
                f"image {im.image_id!r} is a single frame; got frame indices {list(frame_indices)}"
            )
        image = read_rgb_image(self.coco.image_path(im), expected_size=(im.height, im.width))
        ids = self.coco.read_ids(im).astype(np.int64)
        segments = {s.id: self.mapping.to_model(s.category_id) for s in im.segments if not s.iscrowd}
        listed = np.isin(ids, np.array(sorted(segments), dtype=np.int64))
        ids_t = torch.from_numpy(np.where(listed, ids, VOID))
        t = len(frame_indices)
        name = Path(im.file_name).stem
        return LabelledClip(
            video_id=str(im.image_id),
            frame_names=[name] * t,
            frames=image.unsqueeze(0).expand(t, -1, -1, -1).contiguous(),
            segment_map=ids_t.unsqueeze(0).expand(t, -1, -1).contiguous(),
            segments=segments,
        )
