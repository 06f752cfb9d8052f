"""Geometry of label maps: per-region area and bounding box, boundaries, label anchor points.

Shared by the writers (``area`` / ``bbox`` of the submission and of the per-frame JSON) and by
the overlay drawing. Everything is O(H·W) per frame (bincount + ``scipy.ndimage.find_objects``),
so it keeps up with video decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Ids below this are counted with a dense bincount; larger ones (e.g. 24-bit RGB ids) with unique.
_DENSE_LIMIT = 1 << 20


@dataclass
class RegionStats:
    """The non-zero regions of a [H, W] label map (0 = void)."""

    ids: np.ndarray  # [S] int64 region ids present, ascending
    areas: np.ndarray  # [S] int64 pixel counts
    bboxes: np.ndarray  # [S, 4] int64 x, y, w, h (COCO: w = x_max - x_min + 1)
    compact: np.ndarray  # [H, W] int32: 0 void, k + 1 for ids[k]

    def index(self) -> dict[int, int]:
        """Region id -> row k."""
        return {int(i): k for k, i in enumerate(self.ids.tolist())}


def region_stats(label_map: np.ndarray) -> RegionStats:
    """Area and bounding box of every non-zero id of a [H, W] non-negative integer map."""
    if label_map.ndim != 2:
        raise ValueError(f"expected a [H, W] label map, got shape {label_map.shape}")
    if label_map.size == 0:
        empty = np.zeros(0, np.int64)
        return RegionStats(empty, empty, np.zeros((0, 4), np.int64), np.zeros(label_map.shape, np.int32))
    if label_map.min() < 0:
        raise ValueError("label map ids must be >= 0")
    top = int(label_map.max())
    if top < _DENSE_LIMIT:
        counts = np.bincount(label_map.ravel(), minlength=top + 1)
        ids = np.flatnonzero(counts)
        ids = ids[ids != 0]
        lut = np.zeros(top + 1, np.int32)
        lut[ids] = np.arange(1, len(ids) + 1, dtype=np.int32)
        compact = lut[label_map]
        areas = counts[ids]
    else:
        uniq, inverse, counts = np.unique(label_map.ravel(), return_inverse=True, return_counts=True)
        keep = uniq != 0
        ids, areas = uniq[keep], counts[keep]
        lut = np.cumsum(keep).astype(np.int32) * keep  # 0 for the void entry, else 1..S
        compact = lut[inverse].reshape(label_map.shape)
    from scipy import ndimage  # lazy: not needed to segment, only to describe regions

    bboxes = np.zeros((len(ids), 4), np.int64)
    for k, sl in enumerate(ndimage.find_objects(compact, max_label=len(ids))):
        if sl is not None:
            ys, xs = sl
            bboxes[k] = (xs.start, ys.start, xs.stop - xs.start, ys.stop - ys.start)
    return RegionStats(ids.astype(np.int64), areas.astype(np.int64), bboxes, compact.astype(np.int32))


def boundaries(label_map: np.ndarray) -> np.ndarray:
    """[H, W] bool: pixels whose right/left/up/down neighbour has another label (2 px lines)."""
    edge = np.zeros(label_map.shape, dtype=bool)
    horizontal = label_map[:, 1:] != label_map[:, :-1]
    vertical = label_map[1:, :] != label_map[:-1, :]
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    return edge


def label_point(compact: np.ndarray, k: int, bbox: np.ndarray, *, max_side: int = 128) -> tuple[int, int]:
    """A robust interior point (x, y) of region ``k`` (label ``k + 1`` of ``compact``).

    The maximum of the distance transform inside the region's bounding box: the point deepest
    inside the region, which for non-convex regions (a ring, an L) lies inside unlike the bbox
    centre. The crop is subsampled so its long side is at most ``max_side`` (cost per region is
    bounded); a region too thin to survive the subsampling falls back to its median pixel.
    """
    x, y, w, h = (int(v) for v in bbox)
    mask = compact[y : y + h, x : x + w] == k + 1
    step = max(1, -(-max(h, w) // max_side))  # ceil division
    small = mask[::step, ::step]
    if small.any():
        from scipy import ndimage

        # Zero padding makes the bbox border count as outside.
        dist = ndimage.distance_transform_edt(np.pad(small, 1))[1:-1, 1:-1]
        sy, sx = np.unravel_index(int(np.argmax(dist)), dist.shape)
        return x + int(sx) * step, y + int(sy) * step
    ys, xs = np.nonzero(mask)
    order = np.argsort(ys * w + xs)
    mid = int(order[len(order) // 2])
    return x + int(xs[mid]), y + int(ys[mid])
