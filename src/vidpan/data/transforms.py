"""Clip-consistent training augmentation on torch tensors (no torchvision, no OpenCV).

Follows DVIS++'s VPS/VSS mappers (reference §4.3): the first frame draws the transforms, every
frame and every mask of the clip gets exactly the same ones, in this order:

1. ``ResizeShortestEdge`` (detectron2): one short side per clip, chosen from a list (``choice``) or
   uniformly from ``[min, max]`` (``range``); the long side is capped at ``max_long_side``; output
   size ``int(x + 0.5)``. Images are resized bilinearly as PIL does (antialiased when shrinking;
   torch's uint8 path, equal to PIL within one grey level), masks with PIL's NEAREST rule
   (bit-exact, see :func:`nearest_indices`).
2. optional ``RandomCrop_CategoryAreaConstraint`` with an absolute crop size (clipped to the image):
   up to 10 random windows are tried until no single category covers ``single_category_max_area``
   or more of the non-ignored pixels of the first frame and at least two categories are present
   (the last window is kept otherwise); with a limit >= 1.0 it is a plain ``RandomCrop``.
3. ``RandomFlip``: horizontal with probability ``flip_prob``.
4. pseudo-video rotation (image datasets only, DVIS's ``RandomRotationClip``): per-frame angles
   drawn uniformly in ±``pseudo_rotation_degrees``, sorted (reversed with p = 0.5), about one
   centre drawn in the middle 40-60 % of the frame; same size output, zero / void outside. Same
   geometry as detectron2's ``RotationTransform`` (cv2 convention), not bit-exact with cv2.

No colour jitter (DVIS++ uses none). Padding to a multiple of 32 is the model's job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from vidpan.data.datasets.base import VOID, LabelledClip
from vidpan.errors import InputError


def short_side_choices(low: int, high: int, step: int) -> tuple[int, ...]:
    """``low, low + step, ..., <= high`` — e.g. Mask2Former's 480..800 step 32, or the seed's 480..1080."""
    if step <= 0 or low <= 0 or high < low:
        raise InputError(f"short sides: need 0 < low <= high and step > 0, got {low}, {high}, {step}")
    return tuple(range(low, high + 1, step))


@dataclass(frozen=True)
class ClipAugmentation:
    """Training augmentation parameters (DVIS++ ``INPUT.*``).

    Attributes:
        short_sides: candidate short sides (``choice``) or ``(min, max)`` (``range``); 0 = no resize.
        sampling: ``choice`` or ``range`` (``MIN_SIZE_TRAIN_SAMPLING``).
        max_long_side: cap on the long side after resizing (``MAX_SIZE_TRAIN``).
        crop_size: ``(height, width)`` of an absolute random crop, or None (``INPUT.CROP``).
        single_category_max_area: the crop's category-area constraint (1.0 disables it).
        flip_prob: probability of a horizontal flip of the whole clip.
        pseudo_rotation_degrees: per-frame rotation range for pseudo-videos (0 disables it).
    """

    short_sides: tuple[int, ...] = short_side_choices(480, 800, 32)
    sampling: Literal["choice", "range"] = "choice"
    max_long_side: int = 1333
    crop_size: tuple[int, int] | None = None
    single_category_max_area: float = 1.0
    flip_prob: float = 0.5
    pseudo_rotation_degrees: float = 0.0

    def __post_init__(self) -> None:
        if not self.short_sides or any(s < 0 for s in self.short_sides):
            raise InputError(f"augmentation: short_sides must be non-negative, got {self.short_sides}")
        if self.sampling not in ("choice", "range"):
            raise InputError(f"augmentation: sampling must be 'choice' or 'range', got {self.sampling!r}")
        if self.sampling == "range" and (
            len(self.short_sides) != 2 or self.short_sides[0] > self.short_sides[1]
        ):
            raise InputError(f"augmentation: 'range' sampling needs (min, max), got {self.short_sides}")
        if self.max_long_side <= 0:
            raise InputError(f"augmentation: max_long_side must be > 0, got {self.max_long_side}")
        if self.crop_size is not None and (len(self.crop_size) != 2 or min(self.crop_size) <= 0):
            raise InputError(f"augmentation: crop_size must be (height, width) > 0, got {self.crop_size}")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise InputError(f"augmentation: flip_prob must lie in [0, 1], got {self.flip_prob}")
        if self.single_category_max_area <= 0:
            raise InputError("augmentation: single_category_max_area must be > 0")


# ------------------------------------------------------------------------------------------
# Geometry
# ------------------------------------------------------------------------------------------


def resized_shape(height: int, width: int, short_side: int, max_long_side: int) -> tuple[int, int]:
    """detectron2 ``ResizeShortestEdge.get_output_shape``: (new height, new width)."""
    scale = short_side / min(height, width)
    if height < width:
        new_h, new_w = float(short_side), scale * width
    else:
        new_h, new_w = scale * height, float(short_side)
    if max(new_h, new_w) > max_long_side:
        rescale = max_long_side / max(new_h, new_w)
        new_h, new_w = new_h * rescale, new_w * rescale
    return int(new_h + 0.5), int(new_w + 0.5)


def nearest_indices(n_in: int, n_out: int) -> torch.Tensor:
    """Source index of each output pixel under PIL's NEAREST resize.

    PIL walks the output pixel centres with a running double sum (``x_0 = s / 2``,
    ``x_{k+1} = x_k + s``, ``s = n_in / n_out``) and truncates; the sequential accumulation is
    reproduced so masks match PIL bit for bit.
    """
    step = n_in / n_out
    steps = np.full(n_out, step, dtype=np.float64)
    steps[0] = step * 0.5
    idx = np.add.accumulate(steps).astype(np.int64)  # sequential, like PIL's loop
    return torch.from_numpy(np.minimum(idx, n_in - 1))


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize as PIL: frames [T, 3, H, W] uint8 -> [T, 3, h, w] uint8."""
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    return F.interpolate(frames, size=size, mode="bilinear", align_corners=False, antialias=True)


def resize_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest resize as PIL: labels [..., H, W] (any dtype) -> [..., h, w]."""
    h, w = labels.shape[-2:]
    if (h, w) == tuple(size):
        return labels
    ys = nearest_indices(h, size[0])
    xs = nearest_indices(w, size[1])
    return labels.index_select(-2, ys).index_select(-1, xs)


def choose_crop(
    category_map: torch.Tensor,
    crop_size: tuple[int, int],
    single_category_max_area: float,
    rng: np.random.Generator,
    *,
    ignore: int = VOID,
    tries: int = 10,
) -> tuple[int, int, int, int]:
    """detectron2 ``RandomCrop_CategoryAreaConstraint`` (``absolute`` crop type).

    Args:
        category_map: [H, W] class of each pixel of the first frame (``ignore`` not counted).
    Returns:
        (y0, x0, crop height, crop width).
    """
    h, w = category_map.shape
    ch, cw = min(crop_size[0], h), min(crop_size[1], w)
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    if single_category_max_area >= 1.0:
        return y0, x0, ch, cw
    for attempt in range(tries):
        if attempt:
            y0 = int(rng.integers(0, h - ch + 1))
            x0 = int(rng.integers(0, w - cw + 1))
        window = category_map[y0 : y0 + ch, x0 : x0 + cw]
        labels, counts = torch.unique(window, return_counts=True)
        counts = counts[labels != ignore]
        if len(counts) > 1 and counts.max().item() < counts.sum().item() * single_category_max_area:
            break
    return y0, x0, ch, cw


def _rotation_sources(
    height: int, width: int, angle_deg: float, center: tuple[float, float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """[H, W] source x and y of each output pixel for a counter-clockwise rotation about ``center``
    (cv2 ``getRotationMatrix2D`` + ``warpAffine``: pixel centres at integer coordinates)."""
    a = math.radians(angle_deg)
    cos, sin = math.cos(a), math.sin(a)
    cx, cy = center
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij"
    )
    dx, dy = xs - cx, ys - cy
    return cx + cos * dx - sin * dy, cy + sin * dx + cos * dy


def rotate_frame(
    frame: torch.Tensor, labels: torch.Tensor, angle_deg: float, center: tuple[float, float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate one frame [3, H, W] uint8 (bilinear, zero fill) and its labels [H, W] (nearest, VOID fill)."""
    h, w = labels.shape
    sx, sy = _rotation_sources(h, w, angle_deg, center)
    # pixel coordinates -> grid_sample's [-1, 1] with align_corners=True (pixel centres at +-1)
    grid = torch.stack([2 * sx / max(w - 1, 1) - 1, 2 * sy / max(h - 1, 1) - 1], dim=-1).float()
    image = F.grid_sample(
        frame[None].float(), grid[None], mode="bilinear", padding_mode="zeros", align_corners=True
    )
    image = image[0].round().clamp(0, 255).to(torch.uint8)
    ix, iy = torch.floor(sx + 0.5).long(), torch.floor(sy + 0.5).long()
    inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    out = labels[iy.clamp(0, h - 1), ix.clamp(0, w - 1)]
    return image, torch.where(inside, out, torch.full_like(out, VOID))


# ------------------------------------------------------------------------------------------
# The clip transform
# ------------------------------------------------------------------------------------------


def augment_clip(clip: LabelledClip, aug: ClipAugmentation, rng: np.random.Generator) -> LabelledClip:
    """Apply one random resize / crop / flip (and pseudo rotation) to every frame and mask of a clip.

    Deterministic given ``rng``'s state. Frames [T, 3, H, W] uint8 and segment map [T, H, W] in,
    the same layout out (new H, W).
    """
    frames, ids = clip.frames, clip.segment_map
    if aug.sampling == "range":
        short = int(rng.integers(aug.short_sides[0], aug.short_sides[1] + 1))
    else:
        short = int(aug.short_sides[int(rng.integers(0, len(aug.short_sides)))])
    if short > 0:
        size = resized_shape(int(frames.shape[-2]), int(frames.shape[-1]), short, aug.max_long_side)
        frames, ids = resize_frames(frames, size), resize_labels(ids, size)
    if aug.crop_size is not None:
        categories = replace(clip, frames=frames, segment_map=ids).category_map(0)
        y0, x0, ch, cw = choose_crop(categories, aug.crop_size, aug.single_category_max_area, rng)
        frames = frames[..., y0 : y0 + ch, x0 : x0 + cw]
        ids = ids[..., y0 : y0 + ch, x0 : x0 + cw]
    if rng.random() < aug.flip_prob:
        frames, ids = frames.flip(-1), ids.flip(-1)
    if aug.pseudo_rotation_degrees > 0:
        frames, ids = _rotate_clip(frames, ids, aug.pseudo_rotation_degrees, rng)
    return replace(clip, frames=frames.contiguous(), segment_map=ids.contiguous())


def _rotate_clip(
    frames: torch.Tensor, ids: torch.Tensor, max_degrees: float, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    t, _, h, w = frames.shape
    angles = np.sort(rng.uniform(-max_degrees, max_degrees, size=t))
    center_x, center_y = rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6)
    if rng.random() < 0.5:
        angles = angles[::-1]
    center = (float(center_x * w), float(center_y * h))
    out_frames, out_ids = [], []
    for k in range(t):
        f, m = rotate_frame(frames[k], ids[k], float(angles[k]), center)
        out_frames.append(f)
        out_ids.append(m)
    return torch.stack(out_frames), torch.stack(out_ids)
