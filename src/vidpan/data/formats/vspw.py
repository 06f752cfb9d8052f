"""VSPW on-disk formats: ``data/<video>/{origin/*.jpg, mask/*.png}`` with raw uint8 labels.

Raw labels (VSPW download README): 0 = "others", 255 = void, 1..124 = class + 1. For training and
mIoU both 0 and 255 are ignored and classes are shifted to 0..123 (``l[l==0]=255; l=l-1;
l[l==254]=255``, DVIS++ ``_vspw_preprocess``). These are the same 124 classes, in the same order,
as VIPSeg's 0-based category ids. Predictions are single-channel uint8 PNGs of 0-based class ids.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vidpan.data.formats.rgb_id import encode_png
from vidpan.errors import InputError
from vidpan.utils.atomic import atomic_write_bytes

VSPW_IGNORE = 255


def read_label_png(path: str | Path, *, expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """Read a single-channel 8-bit label PNG as [H, W] uint8 (raw values, no shift).

    Raises :class:`InputError` if the file is missing, not single-channel 8-bit, or not of
    ``expected_size`` = (height, width).
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            # Palette PNGs hold indices; keep them (VSPW masks are often saved with a palette).
            arr = np.asarray(im)
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot read PNG ({exc})", path=path) from None
    if mode not in ("L", "P") or arr.ndim != 2:
        raise InputError(f"expected a single-channel 8-bit label PNG, got mode {mode}", path=path)
    if expected_size is not None and arr.shape != tuple(expected_size):
        raise InputError(
            f"size {arr.shape[0]}x{arr.shape[1]} (HxW) differs from the expected "
            f"{expected_size[0]}x{expected_size[1]}",
            path=path,
        )
    return arr.astype(np.uint8)


def write_label_png(path: str | Path, labels: np.ndarray) -> None:
    """Write a [H, W] uint8 label map as a grayscale PNG (atomically)."""
    if labels.min() < 0 or labels.max() > 255:
        raise ValueError("labels must fit in uint8")
    atomic_write_bytes(path, encode_png(labels.astype(np.uint8)))


def raw_to_train_ids(raw: np.ndarray) -> np.ndarray:
    """VSPW raw labels -> 0-based class ids with 255 = ignore (0 'others' and 255 void)."""
    raw = raw.astype(np.int32)
    out = raw - 1
    out[(raw == 0) | (raw == 255)] = VSPW_IGNORE
    return out.astype(np.uint8)


def train_ids_to_raw(ids: np.ndarray) -> np.ndarray:
    """0-based class ids (255 = void) -> VSPW raw labels (void written as 255)."""
    ids = ids.astype(np.int32)
    out = ids + 1
    out[ids == VSPW_IGNORE] = 255
    return out.astype(np.uint8)


def vspw_video_dir(root: str | Path, video_id: str) -> Path:
    return Path(root) / "data" / video_id
