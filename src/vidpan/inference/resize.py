"""Test-time resize: detectron2 ``ResizeShortestEdge(MIN_SIZE_TEST, MAX_SIZE_TEST)`` +
``ResizeTransform.apply_image`` for uint8 images (a PIL bilinear resize), as DVIS++ inference does
(``reference/dvis_reference.md`` §1.9). Padding to a multiple of 32 happens inside the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

# ------------------------------------------------------------------------------------------
# Test-time resize (detectron2 ResizeShortestEdge + ResizeTransform semantics)
# ------------------------------------------------------------------------------------------


def test_size(height: int, width: int, short_side: int = 720, max_size: int = 1333) -> tuple[int, int]:
    """Size (h, w) a [height, width] frame is resized to at test time.

    detectron2 ``ResizeShortestEdge.get_transform``: the short side becomes ``short_side``; if
    the long side would then exceed ``max_size``, both are scaled down so it equals ``max_size``;
    each side is rounded half up (``int(x + 0.5)``). ``short_side=0`` keeps the size.
    """
    if short_side == 0:
        return height, width
    if height <= 0 or width <= 0 or short_side < 0:
        raise ValueError(f"invalid size {height}x{width} or short side {short_side}")
    scale = short_side / min(height, width)
    # The short side is set to short_side exactly (not via the scale) as detectron2 does.
    new_h, new_w = (
        (float(short_side), scale * width) if height < width else (scale * height, float(short_side))
    )
    if max(new_h, new_w) > max_size:
        shrink = max_size / max(new_h, new_w)
        new_h, new_w = new_h * shrink, new_w * shrink
    return int(new_h + 0.5), int(new_w + 0.5)


test_size.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite the name


def resize_frames(
    frames: np.ndarray | Sequence[np.ndarray], *, short_side: int = 720, max_size: int = 1333
) -> torch.Tensor:
    """Resize frames for the model: uint8 [T, H, W, 3] (or a list of [H, W, 3]) -> uint8 [T, 3, h, w].

    (h, w) = :func:`test_size`; each frame goes through a PIL bilinear resize, which is exactly
    what detectron2 ``ResizeTransform.apply_image`` does for uint8 images (so it matches DVIS++
    given the same Pillow). All frames must share one size.
    """
    if isinstance(frames, np.ndarray):
        if frames.ndim != 4:
            raise ValueError(f"expected frames [T, H, W, 3], got shape {frames.shape}")
        seq: Sequence[np.ndarray] = list(frames)
    else:
        seq = frames
    if not seq:
        raise ValueError("no frames to resize")
    height, width = seq[0].shape[:2]
    h, w = test_size(height, width, short_side, max_size)
    out = torch.empty((len(seq), 3, h, w), dtype=torch.uint8)
    out_np = out.numpy()  # shares memory; numpy copies PIL's read-only buffers without torch warnings
    for t, frame in enumerate(seq):
        if frame.dtype != np.uint8 or frame.shape != (height, width, 3):
            raise ValueError(
                f"frame {t}: expected uint8 [{height}, {width}, 3] like frame 0, got {frame.dtype} {frame.shape}"
            )
        if (h, w) != (height, width):
            frame = np.asarray(Image.fromarray(frame).resize((w, h), Image.Resampling.BILINEAR))
        out_np[t] = frame.transpose(2, 0, 1)  # [h, w, 3] -> [3, h, w]
    return out
