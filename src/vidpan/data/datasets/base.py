"""What every training dataset provides: a labelled clip before augmentation, and its targets.

A dataset is an index of videos (``__len__``, ``num_frames``) that loads a clip lazily for given
frame indices as a :class:`LabelledClip`: frames plus one segment-id map per frame. Augmentation
(``vidpan.data.transforms``) works on that id map, so masks are resized / cropped / flipped once
as integers; :func:`to_clip_sample` then expands it into per-instance masks the way DVIS++'s VPS /
VSS mappers do (``dataset_mapper_vps.py`` / ``dataset_mapper_vss.py``, reference §4.4):

- instances are the segments listed for the clip's frames, in order of first appearance (frames
  in clip order, segments in annotation order), kept only if some pixel of the augmented clip
  still carries them (a segment cropped away is dropped);
- every instance has a mask in every frame (all False where it is absent), labels in the model's
  things-first class space; DVIS++ then uses ``arange(M)`` as track ids (never -1) — we keep the
  dataset's segment id in :attr:`ClipTargets.ids`, the position in the list is the track index.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np
import torch
from PIL import Image

from vidpan.data.categories import CategoryMapping
from vidpan.errors import InputError
from vidpan.structures import ClipSample, ClipTargets

_T = TypeVar("_T")

VOID = -1
"""Segment id of unlabelled / ignored pixels in a :class:`LabelledClip` map."""


@dataclass
class LabelledClip:
    """A clip with its segment-id maps, before or after augmentation.

    ``segments`` maps each listed segment id to its model class, in instance order; every pixel
    of ``segment_map`` is either :data:`VOID` or one of its keys.
    """

    video_id: str
    frame_names: list[str]
    frames: torch.Tensor  # [T, 3, H, W] uint8 RGB
    segment_map: torch.Tensor  # [T, H, W] int64 segment ids, VOID = -1
    segments: dict[int, int]

    def __post_init__(self) -> None:
        t, c, h, w = self.frames.shape
        if c != 3 or tuple(self.segment_map.shape) != (t, h, w):
            raise ValueError(
                f"frames {tuple(self.frames.shape)} and segment map {tuple(self.segment_map.shape)} disagree"
            )

    def category_map(self, frame: int = 0) -> torch.Tensor:
        """[H, W] int64 model classes of one frame (VOID where unlabelled)."""
        ids = self.segment_map[frame]
        if not self.segments:
            return torch.full_like(ids, VOID)
        keys = torch.tensor(sorted(self.segments), dtype=torch.int64)
        values = torch.tensor([self.segments[k] for k in sorted(self.segments)], dtype=torch.int64)
        pos = torch.searchsorted(keys, ids.clamp(min=0)).clamp(max=len(keys) - 1)
        return torch.where(ids == VOID, torch.full_like(ids, VOID), values[pos])


class ClipSource(Protocol):
    """A training dataset of videos that loads labelled clips lazily."""

    mapping: CategoryMapping

    def __len__(self) -> int: ...

    def video_id(self, index: int) -> str: ...

    def num_frames(self, index: int) -> int: ...

    def load_labelled_clip(self, index: int, frame_indices: Sequence[int]) -> LabelledClip: ...


def to_clip_sample(clip: LabelledClip) -> ClipSample:
    """Expand a labelled clip into one instance per segment still visible somewhere in the clip."""
    ids_map = clip.segment_map
    listed = torch.tensor(list(clip.segments), dtype=torch.int64)
    labels_all = torch.tensor(list(clip.segments.values()), dtype=torch.int64)
    masks = ids_map.unsqueeze(0) == listed.view(-1, 1, 1, 1)  # [M_listed, T, H, W]
    present = masks.flatten(1).any(1)  # cropped-away segments are dropped (DVIS++)
    ids, labels = listed[present], labels_all[present]
    masks = masks if bool(present.all()) else masks[present]
    return ClipSample(
        video_id=clip.video_id,
        frame_names=list(clip.frame_names),
        frames=clip.frames,
        targets=ClipTargets(labels=labels, ids=ids, masks=masks),
    )


def read_rgb_image(path: Path, *, expected_size: tuple[int, int] | None = None) -> torch.Tensor:
    """Read an image file as [3, H, W] uint8 RGB; errors name the file.

    ``expected_size`` = (height, width) as the annotation declares it (detectron2's
    ``check_image_size`` refuses mismatches too).
    """
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise InputError("image file not found", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot read image ({exc})", path=path) from None
    if expected_size is not None and arr.shape[:2] != tuple(expected_size):
        raise InputError(
            f"image is {arr.shape[0]}x{arr.shape[1]} (HxW) but the annotation says "
            f"{expected_size[0]}x{expected_size[1]}",
            path=path,
        )
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def require_files(paths: Sequence[Path], *, what: str, where: Path, show: int = 5) -> None:
    """Raise one :class:`InputError` listing the first ``show`` missing files, if any."""
    missing = [p for p in paths if not p.is_file()]
    if missing:
        listed = ", ".join(str(p) for p in missing[:show])
        more = f" and {len(missing) - show} more" if len(missing) > show else ""
        raise InputError(f"{len(missing)} {what} missing: {listed}{more}", path=where)


def read_once(frame_indices: Sequence[int], reader: Callable[[int], _T]) -> list[_T]:
    """``[reader(i) for i in frame_indices]``, calling ``reader`` once per distinct index (clips
    of short videos repeat frames)."""
    cache: dict[int, _T] = {}
    for i in frame_indices:
        if i not in cache:
            cache[i] = reader(i)
    return [cache[i] for i in frame_indices]


def check_frame_indices(frame_indices: Sequence[int], length: int, video_id: str) -> None:
    if not frame_indices:
        raise ValueError(f"video {video_id!r}: empty clip requested")
    bad = [i for i in frame_indices if not 0 <= i < length]
    if bad:
        raise IndexError(f"video {video_id!r} has {length} frames; frame indices {bad} are out of range")
