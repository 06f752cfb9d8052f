"""VIPSeg (official 720P layout) as a training dataset of panoptic clips.

Layout (DVIS++ ``datasets/vps.py``, ``reference/metrics_reference.md`` §1)::

    <root>/images/<video>/<frame>.jpg
    <root>/panomasksRGB/<video>/<frame>.png          RGB-id PNGs (id = R + 256 G + 65536 B, 0 = void)
    <root>/panoptic_gt_VIPSeg_<split>.json           videos / annotations / categories

If ``panoptic_gt_VIPSeg_<split>.json`` is absent but the unsplit ``panoptic_gt_VIPSeg.json`` and a
split list ``<root>/<split>.txt`` are there, the split is taken from the list (as ``splitjson.py``).
Frames are paired by list position between ``videos`` and ``annotations`` (as the official code);
the JPEG of a frame is its PNG ``file_name`` with the suffix ``.jpg``.

Everything that can be checked without decoding images is checked at construction: the split is
not empty, every listed image and mask exists (the first few missing are named), every segment's
category is known, a segment id keeps one category within a video. Pixels are read only when a clip
is requested. Every segment id is one instance: things per panoptic segment; stuff ids in VIPSeg are
the category colour, so each stuff class present is one instance (DVIS++ ``dataset_mapper_vps.py``).
Crowd segments (none in VIPSeg) and pixels of ids not listed in ``segments_info`` are void.
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
from vidpan.data.formats.rgb_id import read_id_png
from vidpan.data.formats.vipseg import (
    PanopticVideoDataset,
    read_categories,
    read_panoptic_video_json,
    read_split,
    subset,
)
from vidpan.errors import InputError


@dataclass(frozen=True)
class _Frame:
    name: str
    image: Path
    mask: Path
    height: int
    width: int
    segments: tuple[tuple[int, int], ...]  # (segment id, model class), crowd excluded


@dataclass(frozen=True)
class _Video:
    video_id: str
    frames: tuple[_Frame, ...]


def _resolve_json(root: Path, split: str) -> tuple[Path, PanopticVideoDataset]:
    """The annotation file used for ``split`` and its content."""
    split_json = root / f"panoptic_gt_VIPSeg_{split}.json"
    if split_json.is_file():
        return split_json, read_panoptic_video_json(split_json)
    full_json, split_list = root / "panoptic_gt_VIPSeg.json", root / f"{split}.txt"
    if full_json.is_file() and split_list.is_file():
        return full_json, subset(read_panoptic_video_json(full_json), read_split(split_list))
    raise InputError(
        f"no annotations for split {split!r}: expected {split_json.name}, or panoptic_gt_VIPSeg.json "
        f"with a split list {split}.txt",
        path=root,
    )


class VipsegDataset:
    """VIPSeg videos of one split; clips are read lazily with :meth:`load_labelled_clip`.

    Args:
        root: the VIPSeg root (``VIPSeg_720P``) holding ``images/``, ``panomasksRGB/`` and the JSONs.
        split: ``train`` / ``val`` (selects ``panoptic_gt_VIPSeg_<split>.json``).
        json_path, image_dir, mask_dir: override the default locations under ``root``.
        mapping: the model class space; default things-first from the JSON's categories (or
            ``<root>/panoVIPSeg_categories.json`` when the JSON has none).
        check_files: verify upfront that every image and mask file exists.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        split: str = "train",
        json_path: str | Path | None = None,
        image_dir: str | Path | None = None,
        mask_dir: str | Path | None = None,
        mapping: CategoryMapping | None = None,
        check_files: bool = True,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError("VIPSeg root is not a directory", path=self.root)
        self.image_dir = Path(image_dir) if image_dir is not None else self.root / "images"
        self.mask_dir = Path(mask_dir) if mask_dir is not None else self.root / "panomasksRGB"
        if json_path is not None:
            self.json_path = Path(json_path)
            gt = read_panoptic_video_json(self.json_path)
        else:
            self.json_path, gt = _resolve_json(self.root, split)
        if mapping is None:
            if gt.categories:
                mapping = CategoryMapping.from_categories(gt.categories)
            else:
                mapping = CategoryMapping.from_categories(
                    read_categories(self.root / "panoVIPSeg_categories.json")
                )
        self.mapping = mapping
        self.videos = self._index(gt)
        if not self.videos:
            raise InputError(f"split {split!r} has no videos", path=self.json_path)
        if check_files:
            for d, what in ((self.image_dir, "image"), (self.mask_dir, "mask")):
                if not d.is_dir():
                    raise InputError(f"{what} directory not found", path=d)
            frames = [f for v in self.videos for f in v.frames]
            require_files([f.image for f in frames], what="image files", where=self.image_dir)
            require_files([f.mask for f in frames], what="mask files", where=self.mask_dir)

    def _index(self, gt: PanopticVideoDataset) -> list[_Video]:
        videos = []
        for video in gt.videos:
            if not video.frames:
                raise InputError(f"video {video.video_id!r} has no frames", path=self.json_path)
            category_of: dict[int, int] = {}
            frames = []
            for frame, segments in zip(video.frames, video.segments, strict=True):
                where = f"video {video.video_id!r} frame {frame.file_name!r}"
                listed = []
                for s in segments:
                    if not self.mapping.has_dataset_id(s.category_id):
                        raise InputError(
                            f"{where}: segment {s.id} has unknown category id {s.category_id}",
                            path=self.json_path,
                        )
                    if category_of.setdefault(s.id, s.category_id) != s.category_id:
                        raise InputError(
                            f"{where}: segment {s.id} has category {s.category_id} but "
                            f"{category_of[s.id]} in an earlier frame",
                            path=self.json_path,
                        )
                    if s.id == 0:
                        raise InputError(f"{where}: segment id 0 is reserved for void", path=self.json_path)
                    if not s.iscrowd:
                        listed.append((s.id, self.mapping.to_model(s.category_id)))
                name = Path(frame.file_name)
                frames.append(
                    _Frame(
                        name=frame.id,
                        image=self.image_dir / video.video_id / name.with_suffix(".jpg").name,
                        mask=self.mask_dir / video.video_id / frame.file_name,
                        height=frame.height,
                        width=frame.width,
                        segments=tuple(listed),
                    )
                )
            sizes = {(f.height, f.width) for f in frames}
            if len(sizes) > 1:
                raise InputError(
                    f"video {video.video_id!r}: frames of different sizes {sorted(sizes)} (HxW)",
                    path=self.json_path,
                )
            videos.append(_Video(video.video_id, tuple(frames)))
        return videos

    def __len__(self) -> int:
        return len(self.videos)

    def video_id(self, index: int) -> str:
        return self.videos[index].video_id

    def num_frames(self, index: int) -> int:
        return len(self.videos[index].frames)

    def load_labelled_clip(self, index: int, frame_indices: Sequence[int]) -> LabelledClip:
        """Frames ``frame_indices`` of video ``index`` (repeats allowed), unaugmented.

        Returns frames [T, 3, H, W] uint8 and segment ids [T, H, W] (void = -1).
        """
        video = self.videos[index]
        check_frame_indices(frame_indices, len(video.frames), video.video_id)
        frames = [video.frames[i] for i in frame_indices]
        segments: dict[int, int] = {}
        for f in frames:  # first appearance in clip order, then annotation order (DVIS++)
            for seg_id, label in f.segments:
                segments.setdefault(seg_id, label)

        def read_image(i: int) -> torch.Tensor:
            f = video.frames[i]
            return read_rgb_image(f.image, expected_size=(f.height, f.width))

        def read_ids(i: int) -> torch.Tensor:
            f = video.frames[i]
            return torch.from_numpy(read_id_png(f.mask, expected_size=(f.height, f.width)).astype(np.int64))

        images = torch.stack(read_once(frame_indices, read_image))
        ids = torch.stack(read_once(frame_indices, read_ids))
        known = torch.tensor(sorted(segments), dtype=torch.int64)
        ids = torch.where(torch.isin(ids, known), ids, torch.full_like(ids, VOID))
        return LabelledClip(
            video_id=video.video_id,
            frame_names=[f.name for f in frames],
            frames=images,
            segment_map=ids,
            segments=segments,
        )
