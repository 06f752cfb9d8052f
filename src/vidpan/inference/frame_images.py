"""Reading one frame image (frame folders): any PIL mode to RGB uint8, EXIF orientation, and the
pixel limit checked from the header before any pixel is decoded (decompression bombs).

``read_image`` raises :class:`~vidpan.errors.InputError` naming the file for anything it cannot
read; 16-bit samples keep their 8 most significant bits (PIL's ``convert("RGB")`` clips them).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from struct import error as struct_error

import numpy as np
from PIL import Image, ImageOps

from vidpan.config import DEFAULT_MAX_INPUT_PIXELS
from vidpan.errors import InputError


def check_pixels(height: int, width: int, max_pixels: int, path: Path, what: str) -> None:
    if max_pixels and height * width > max_pixels:
        raise InputError(
            f"{what} frame size {width}x{height} ({height * width / 1e6:.1f} MP) is above the limit of "
            f"{max_pixels:,} pixels (inference.max_input_pixels; raise it with "
            f"--set inference.max_input_pixels=N, 0 = no limit)",
            path=path,
        )


_HIGH_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


def to_rgb(im: Image.Image) -> np.ndarray:
    """[H, W, 3] uint8 RGB of any PIL image; 16-bit samples keep their 8 most significant bits
    (PIL's own ``convert("RGB")`` clips them at 255, turning a 16-bit frame white)."""
    if im.mode in _HIGH_BIT_MODES:
        gray = np.asarray(im).astype(np.int64)
        gray = (np.clip(gray, 0, 65535) >> 8).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if im.mode == "F":
        gray = np.nan_to_num(np.asarray(im, dtype=np.float64))
        top = float(gray.max()) if gray.size else 0.0
        gray = np.clip(gray * (255.0 / top if top > 1.0 else 255.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    return np.asarray(im.convert("RGB"))


def read_image(path: Path, max_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> np.ndarray:
    """Read a frame image as [H, W, 3] uint8 RGB (EXIF orientation applied), refusing frames
    above ``max_pixels`` from the header, before decoding."""
    try:
        with warnings.catch_warnings():
            # vidpan's own limit applies; PIL's warning would only repeat it (its hard limit,
            # 2 x MAX_IMAGE_PIXELS, still raises DecompressionBombError).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                check_pixels(im.height, im.width, max_pixels, path, "image")
                im.load()
                upright = ImageOps.exif_transpose(im)
                rgb = to_rgb(upright)
    except FileNotFoundError:
        raise InputError("frame file disappeared", path=path) from None
    except Image.DecompressionBombError as exc:
        raise InputError(f"refused as a decompression bomb ({exc})", path=path) from None
    except (OSError, ValueError, SyntaxError, struct_error) as exc:
        raise InputError(f"cannot read the frame image ({_reason(exc)})", path=path) from None
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise InputError(f"cannot read the frame image (decoded to shape {rgb.shape})", path=path)
    return rgb


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).strip()
