"""RGB-id PNGs: panoptic segment ids stored as colours, ``id = R + 256 G + 65536 B``.

This is the COCO panoptic / VIPSeg encoding (panopticapi ``rgb2id``). Id 0 (black) is void.
:class:`IdGenerator` picks segment colours the way the official VIPSeg conversion does (stuff =
category colour; a thing's first instance gets the category colour unless it is taken, later
instances random colours within ±30 per channel), but with a seeded generator so conversions are
reproducible, and with (0, 0, 0) really reserved (panopticapi's ``set([0, 0, 0])`` reserves the
integer 0, not the colour).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from vidpan.errors import InputError
from vidpan.utils.atomic import atomic_write_bytes


def rgb2id(rgb: np.ndarray) -> np.ndarray:
    """[..., 3] uint8 colours -> [...] uint32 ids."""
    rgb = rgb.astype(np.uint32)
    return rgb[..., 0] + (rgb[..., 1] << 8) + (rgb[..., 2] << 16)


def id2rgb(ids: np.ndarray) -> np.ndarray:
    """[...] integer ids (< 2**24) -> [..., 3] uint8 colours."""
    ids = np.asarray(ids)
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= 1 << 24):
        raise ValueError("segment ids must lie in [0, 2**24)")
    # Little-endian uint32 bytes are (R, G, B, 0): a view, much cheaper than shifting and stacking.
    as_u32 = np.ascontiguousarray(ids, dtype="<u4")
    return np.ascontiguousarray(as_u32.view(np.uint8).reshape(*ids.shape, 4)[..., :3])


def color_to_id(color: Iterable[int]) -> int:
    r, g, b = (int(c) for c in color)
    return r + 256 * g + 65536 * b


def read_id_png(path: str | Path, *, expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """Read an RGB-id PNG as a [H, W] uint32 id map.

    Raises :class:`InputError` naming the file if it is missing, unreadable, not RGB, or not of
    ``expected_size`` = (height, width).
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            mode, size = im.mode, im.size
            if mode != "RGB":
                raise InputError(
                    f"expected an RGB PNG (id = R + 256 G + 65536 B), got mode {mode}", path=path
                )
            if expected_size is not None and (size[1], size[0]) != tuple(expected_size):
                raise InputError(
                    f"size {size[1]}x{size[0]} (HxW) differs from the expected "
                    f"{expected_size[0]}x{expected_size[1]}",
                    path=path,
                )
            # Pillow holds RGB pixels as 4 bytes (R, G, B, pad): read them as little-endian
            # uint32 and drop the pad byte -- R + 256 G + 65536 B without a 3-channel round trip.
            packed = np.frombuffer(im.tobytes("raw", "RGBX"), dtype="<u4").reshape(size[1], size[0])
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot read PNG ({exc})", path=path) from None
    return (packed & np.uint32(0xFFFFFF)).astype(np.uint32)


def encode_png(array: np.ndarray) -> bytes:
    """Encode an array as PNG bytes: [H, W] uint16 -> 16-bit grey, [H, W] uint8 -> 8-bit grey,
    [H, W, 3] uint8 -> RGB."""
    import io

    if array.dtype not in (np.uint8, np.uint16) or array.ndim not in (2, 3):
        raise ValueError(f"cannot encode a {array.dtype} array of shape {array.shape} as PNG")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG")
    return buf.getvalue()


def write_id_png(path: str | Path, ids: np.ndarray) -> None:
    """Write a [H, W] id map as an RGB-id PNG (atomically)."""
    atomic_write_bytes(path, encode_png(id2rgb(ids)))


class IdGenerator:
    """Segment-id (colour) allocator with the official VIPSeg / panopticapi rules, seeded.

    Args:
        categories: mapping category id -> (isthing, colour).
        seed: seed of the generator drawing colours for repeated thing instances.
    """

    def __init__(self, categories: dict[int, tuple[bool, tuple[int, int, int]]], *, seed: int = 0) -> None:
        self._categories = categories
        self._rng = np.random.default_rng(seed)
        self._taken: set[tuple[int, int, int]] = {(0, 0, 0)}
        for isthing, color in categories.values():
            if not isthing:
                self._taken.add(tuple(int(c) for c in color))  # type: ignore[arg-type]

    def get_color(self, category_id: int) -> tuple[int, int, int]:
        """The colour of a new segment of ``category_id`` (stuff: always the category colour)."""
        if category_id not in self._categories:
            raise KeyError(f"unknown category id {category_id}")
        isthing, base = self._categories[category_id]
        base_t = (int(base[0]), int(base[1]), int(base[2]))
        if not isthing:
            return base_t
        if base_t not in self._taken:
            self._taken.add(base_t)
            return base_t
        base_arr = np.asarray(base_t, dtype=np.int64)
        for _ in range(100000):
            c = np.clip(base_arr + self._rng.integers(-30, 31, size=3), 0, 255)
            color = (int(c[0]), int(c[1]), int(c[2]))
            if color not in self._taken:
                self._taken.add(color)
                return color
        raise RuntimeError(f"no free colour left near the colour of category {category_id}")

    def get_id(self, category_id: int) -> int:
        """The id (``R + 256 G + 65536 B``) of a new segment of ``category_id``."""
        return color_to_id(self.get_color(category_id))
