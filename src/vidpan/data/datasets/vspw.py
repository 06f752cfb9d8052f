"""VSPW as a training dataset of semantic clips (video semantic segmentation).

Layout (DVIS++ ``datasets/vss.py``, ``reference/metrics_reference.md`` §4.1)::

    <root>/<split>.txt                      one video id per line
    <root>/data/<video>/origin/<frame>.jpg
    <root>/data/<video>/mask/<frame>.png    uint8 raw labels: 0 others, 255 void, 1..124 = class + 1

Labels are shifted with ``raw_to_train_ids`` (0 and 255 ignored, classes 0..123 = VIPSeg's
category ids) and mapped to the model's things-first space (DVIS++ VSS metadata orders the same
124 categories things first). As in ``dataset_mapper_vss.py`` every class present in the clip is one
"instance" (ascending dataset class id); its segment id is the dataset class id. Frames are the
sorted ``origin`` files; each is paired with the mask of the same stem (DVIS++ pairs two sorted
listings by position, which is the same thing when both folders are complete).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidpan.data.categories import CategoryMapping
from vidpan.data.datasets.base import (
    VOID,
    LabelledClip,
    check_frame_indices,
    read_once,
    read_rgb_image,
    require_files,
)
from vidpan.data.formats.vipseg import read_split
from vidpan.data.formats.vspw import VSPW_IGNORE, raw_to_train_ids, read_label_png
from vidpan.errors import InputError

_IMAGE_SUFFIXES = (".jpg", ".jpeg")


@dataclass(frozen=True)
class _Video:
    video_id: str
    names: tuple[str, ...]
    images: tuple[Path, ...]
    masks: tuple[Path, ...]


class VspwDataset:
    """VSPW videos of one split; clips are read lazily with :meth:`load_labelled_clip`.

    Args:
        root: the VSPW root (``VSPW_480p``) holding ``data/`` and the split lists.
        mapping: the model class space over VIPSeg/VSPW category ids (VSPW ships no category
            file; use the VIPSeg list, e.g. ``CategoryMapping.from_file(panoVIPSeg_categories.json)``).
        split: ``train`` / ``val`` (reads ``<root>/<split>.txt`` unless ``split_file`` is given).
        check_files: verify upfront that every frame has its mask.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        mapping: CategoryMapping,
        split: str = "train",
        split_file: str | Path | None = None,
        check_files: bool = True,
    ) -> None:
        self.root = Path(root)
        self.mapping = mapping
        self.split_file = Path(split_file) if split_file is not None else self.root / f"{split}.txt"
        video_ids = read_split(self.split_file)
        if not video_ids:
            raise InputError(f"split {split!r} lists no videos", path=self.split_file)
        self._lut = mapping.dataset_to_model_lut()
        self.videos = [self._index(v) for v in video_ids]
        if check_files:
            require_files(
                [m for v in self.videos for m in v.masks], what="mask files", where=self.root / "data"
            )

    def _index(self, video_id: str) -> _Video:
        vdir = self.root / "data" / video_id
        origin = vdir / "origin"
        if not origin.is_dir():
            raise InputError(
                f"video {video_id!r} (listed in {self.split_file.name}) has no origin/ folder", path=vdir
            )
        images = sorted(p for p in origin.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        if not images:
            raise InputError(f"video {video_id!r} has no .jpg frames", path=origin)
        return _Video(
            video_id,
            tuple(p.stem for p in images),
            tuple(images),
            tuple(vdir / "mask" / f"{p.stem}.png" for p in images),
        )

    def __len__(self) -> int:
        return len(self.videos)

    def video_id(self, index: int) -> str:
        return self.videos[index].video_id

    def num_frames(self, index: int) -> int:
        return len(self.videos[index].images)

    def _read_classes(self, path: Path) -> torch.Tensor:
        """[H, W] int64 dataset class ids of one mask, VOID where ignored."""
        train_ids = raw_to_train_ids(read_label_png(path)).astype(np.int64)
        valid = train_ids != VSPW_IGNORE
        known = np.zeros_like(valid)
        in_range = valid & (train_ids < len(self._lut))
        known[in_range] = self._lut[train_ids[in_range]] >= 0
        if (valid & ~known).any():
            unknown = sorted(set(np.unique(train_ids[valid & ~known]).tolist()))
            raise InputError(
                f"label values {[u + 1 for u in unknown]} decode to unknown class ids {unknown}", path=path
            )
        return torch.from_numpy(np.where(valid, train_ids, VOID))

    def load_labelled_clip(self, index: int, frame_indices: Sequence[int]) -> LabelledClip:
        """Frames ``frame_indices`` of video ``index`` (repeats allowed), unaugmented.

        Returns frames [T, 3, H, W] uint8 and class ids [T, H, W] (void = -1).
        """
        video = self.videos[index]
        check_frame_indices(frame_indices, len(video.images), video.video_id)
        images = read_once(frame_indices, lambda i: read_rgb_image(video.images[i]))
        classes = read_once(frame_indices, lambda i: self._read_classes(video.masks[i]))
        for i, img, cls in zip(frame_indices, images, classes, strict=True):
            if tuple(img.shape[1:]) != tuple(cls.shape):
                raise InputError(
                    f"mask is {cls.shape[0]}x{cls.shape[1]} but its frame is {img.shape[1]}x{img.shape[2]}",
                    path=video.masks[i],
                )
        sizes = {tuple(img.shape[1:]) for img in images}
        if len(sizes) > 1:
            raise InputError(
                f"video {video.video_id!r}: frames of different sizes {sorted(sizes)}", path=self.root
            )
        segment_map = torch.stack(classes)
        present = [c for c in torch.unique(segment_map).tolist() if c != VOID]
        return LabelledClip(
            video_id=video.video_id,
            frame_names=[video.names[i] for i in frame_indices],
            frames=torch.stack(images),
            segment_map=segment_map,
            segments={c: int(self._lut[c]) for c in present},
        )
