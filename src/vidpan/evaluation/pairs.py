"""Per-frame (GT id, pred id) pixel-pair counts: the one table VPQ and STQ are computed from.

Every quantity the official VIPSeg evaluators derive from the pixels is a sum over pixels of some
function of the pair (GT id, pred id) at that pixel: tube areas, tube intersections, void
overlaps (``eval_vpq_vspw.py``), semantic confusion, tube sizes and tube intersections
(``segmentation_and_tracking_quality.py``). A window's or a sequence's counts are therefore sums of
per-frame pair counts, so each frame is decoded and counted exactly once (``reference/
metrics_reference.md`` §2.2, §3.1) and the metrics work on these small tables only.

:func:`count_pairs` builds one frame's table; :class:`VideoPairsBuilder` collects a video's frames
together with the ``segments_info`` rows and validates each frame's JSON against its PNGs;
:class:`VideoPairs` is the finished, compactly indexed result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidpan.data.formats.vipseg import SegmentInfo
from vidpan.errors import InputError

# Ids are RGB colours (< 2**24), so a (gt, pred) pair packs into one uint64 key.
_ID_BITS = np.uint64(24)
_ID_MASK = np.uint64((1 << 24) - 1)


def count_pairs(gt: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel counts of every (GT id, pred id) pair present in one frame.

    Args:
        gt: [H, W] GT ids (0 = void), integers < 2**24.
        pred: [H, W] predicted ids (0 = unlabeled), integers < 2**24.

    Returns:
        ``(gt_ids, pred_ids, counts)``, each [M] int64, one entry per distinct pair, sorted by
        (gt id, pred id).
    """
    key = (gt.astype(np.uint64) << _ID_BITS) | pred.astype(np.uint64)  # [H, W] -> [H, W] packed pairs
    keys, counts = _count_values(key.ravel())
    return (keys >> _ID_BITS).astype(np.int64), (keys & _ID_MASK).astype(np.int64), counts


def _count_values(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(flat, return_counts=True)`` (counts int64), run-length encoded first.

    Segmentation maps are constant along long runs of a row, so sorting the (value, run length)
    pairs instead of every pixel is ~5x faster on 720p frames; maps with short runs (noise) take
    the plain path. Same result either way.
    """
    if flat.size == 0:
        return flat.copy(), np.zeros(0, np.int64)
    change = np.empty(flat.shape, bool)
    change[0] = True
    np.not_equal(flat[1:], flat[:-1], out=change[1:])
    starts = np.flatnonzero(change)  # [R] first pixel of each run
    if len(starts) > flat.size // 4:
        keys, counts = np.unique(flat, return_counts=True)
        return keys, counts.astype(np.int64)
    lengths = np.diff(starts, append=flat.size)
    values = flat[starts]
    order = np.argsort(values, kind="stable")
    values, lengths = values[order], lengths[order]
    first = np.empty(values.shape, bool)
    first[0] = True
    np.not_equal(values[1:], values[:-1], out=first[1:])
    groups = np.flatnonzero(first)
    return values[groups], np.add.reduceat(lengths, groups).astype(np.int64)


def group_sum(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum integer ``values`` over equal ``keys``: returns (sorted unique keys, int64 sums)."""
    uniq, inverse = np.unique(keys, return_inverse=True)
    sums = np.bincount(inverse.ravel(), weights=values, minlength=len(uniq))
    # Counts are integers far below 2**53, so the float64 sums are exact.
    return uniq, np.rint(sums).astype(np.int64)


@dataclass(frozen=True)
class SegmentTable:
    """One row per (frame, listed segment) of one side (GT or prediction) of a video.

    All arrays are [S] int64 (``iscrowd`` bool); ``segment`` is the compact segment index
    (1-based, see :class:`VideoPairs`), ``category`` the category *index* (position in the
    dataset's category list), ``order`` the position in that frame's ``segments_info``.
    """

    frame: np.ndarray
    segment: np.ndarray
    category: np.ndarray
    iscrowd: np.ndarray
    area: np.ndarray
    order: np.ndarray


@dataclass(frozen=True)
class VideoPairs:
    """A video's per-frame pair counts with compact segment indices.

    Segment index 0 is id 0 (GT void / unlabeled prediction); ids 1.. are the video's distinct
    non-zero ids in ascending raw-id order (so index order is raw-id order, the order in which the
    official script visits pairs).

    Attributes:
        num_frames: T.
        frame, gt, pred, count: [M] int64 pair table over all frames (frame t, GT index, pred
            index, pixel count), sorted by (frame, gt, pred).
        gt_segments, pred_segments: the ``segments_info`` rows.
        gt_instance, pred_instance: [G+1] / [P+1] int64 STQ instance numbers: rank of first
            appearance over the video's ``segments_info`` lists, frame by frame, in list order
            (``eval_stq_vspw.py``); -1 for index 0.
    """

    num_frames: int
    frame: np.ndarray
    gt: np.ndarray
    pred: np.ndarray
    count: np.ndarray
    gt_segments: SegmentTable
    pred_segments: SegmentTable
    gt_instance: np.ndarray
    pred_instance: np.ndarray

    @property
    def num_gt(self) -> int:
        """G + 1 (GT index space size, including void)."""
        return len(self.gt_instance)

    @property
    def num_pred(self) -> int:
        """P + 1 (pred index space size, including unlabeled)."""
        return len(self.pred_instance)


class VideoPairsBuilder:
    """Collects one video frame by frame, validating every frame's JSON against its PNGs.

    Args:
        category_index: dataset category id -> category index (position in the category list).
        gt_json, pred_json: the JSON files (named in error messages).
    """

    def __init__(self, category_index: Mapping[int, int], *, gt_json: Path, pred_json: Path) -> None:
        self._cat_index = category_index
        self._gt_json = gt_json
        self._pred_json = pred_json
        self._pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._gt_rows: list[tuple[int, int, int, int, int, int]] = []
        self._pred_rows: list[tuple[int, int, int, int, int, int]] = []

    def _segment_rows(
        self, segments: Sequence[SegmentInfo], *, is_gt: bool, where: str
    ) -> dict[int, tuple[int, int, int]]:
        """id -> (order, category index, iscrowd) of one frame's ``segments_info``."""
        source = self._gt_json if is_gt else self._pred_json
        rows: dict[int, tuple[int, int, int]] = {}
        for k, s in enumerate(segments):
            w = f"{where}.segments_info[{k}]"
            if s.id == 0:
                raise InputError(f"{w}: segment id 0 is reserved for unlabeled pixels", path=source)
            if not 0 < s.id < 1 << 24:
                raise InputError(f"{w}: segment id {s.id} is not an RGB id in [1, 2**24)", path=source)
            if s.id in rows:
                raise InputError(f"{w}: segment id {s.id} is listed twice in this frame", path=source)
            if s.category_id not in self._cat_index:
                raise InputError(
                    f"{w}: unknown category_id {s.category_id} (not in the GT categories)", path=source
                )
            rows[s.id] = (k, self._cat_index[s.category_id], int(s.iscrowd == 1) if is_gt else 0)
        return rows

    def add_frame(
        self,
        gt: np.ndarray,
        pred: np.ndarray,
        gt_segments: Sequence[SegmentInfo],
        pred_segments: Sequence[SegmentInfo],
        *,
        gt_png: Path,
        pred_png: Path,
        where: str,
    ) -> None:
        """Count one frame's pairs and check that each PNG holds exactly the ids its JSON lists.

        Args:
            gt, pred: [H, W] id maps of the frame.
            gt_segments, pred_segments: the frame's ``segments_info``.
            gt_png, pred_png: the PNG files (named in error messages).
            where: position of the frame in the JSON, e.g. ``video 'x' frame 3 (00015.png)``.
        """
        t = len(self._pairs)
        g, p, c = count_pairs(gt, pred)
        gt_rows = self._segment_rows(gt_segments, is_gt=True, where=where)
        pred_rows = self._segment_rows(pred_segments, is_gt=False, where=where)

        gt_ids, gt_area = group_sum(g, c)
        gt_area_of = dict(zip(gt_ids.tolist(), gt_area.tolist(), strict=True))
        gt_area_of.pop(0, None)
        for seg in gt_segments:
            png_area = gt_area_of.get(seg.id, 0)
            if png_area == 0:
                raise InputError(
                    f"{where}: GT segment {seg.id} is listed in the JSON but absent from {gt_png}",
                    path=self._gt_json,
                )
            if png_area != seg.area:
                raise InputError(
                    f"{where}: GT segment {seg.id} has area {seg.area} in the JSON but {png_area} "
                    f"pixels in {gt_png} (the official VPQ uses the JSON area; they must agree)",
                    path=self._gt_json,
                )
        unlisted = sorted(set(gt_area_of) - set(gt_rows))
        if unlisted:
            raise InputError(
                f"GT ids {unlisted[:10]} are present in the PNG but not in the segments_info of {where} "
                f"in {self._gt_json}",
                path=gt_png,
            )

        pred_ids, pred_area = group_sum(p, c)
        pred_area_of = dict(zip(pred_ids.tolist(), pred_area.tolist(), strict=True))
        pred_area_of.pop(0, None)
        unlisted = sorted(set(pred_area_of) - set(pred_rows))
        if unlisted:
            raise InputError(
                f"ids {unlisted[:10]} are present in the PNG but not in the segments_info of {where} "
                f"in {self._pred_json}",
                path=pred_png,
            )
        absent = sorted(set(pred_rows) - set(pred_area_of))
        if absent:
            raise InputError(
                f"{where}: segments {absent[:10]} are listed in segments_info but absent from {pred_png}",
                path=self._pred_json,
            )

        self._pairs.append((g, p, c))
        for seg in gt_segments:
            k, cat, crowd = gt_rows[seg.id]
            self._gt_rows.append((t, seg.id, cat, crowd, int(seg.area), k))
        for seg in pred_segments:
            k, cat, _ = pred_rows[seg.id]
            self._pred_rows.append((t, seg.id, cat, 0, pred_area_of[seg.id], k))

    def build(self) -> VideoPairs:
        """The collected frames as a :class:`VideoPairs`."""
        num_frames = len(self._pairs)
        frame = np.concatenate(
            [np.full(len(c), t, np.int64) for t, (_, _, c) in enumerate(self._pairs)]
            or [np.zeros(0, np.int64)]
        )
        g_raw = np.concatenate([g for g, _, _ in self._pairs] or [np.zeros(0, np.int64)])
        p_raw = np.concatenate([p for _, p, _ in self._pairs] or [np.zeros(0, np.int64)])
        count = np.concatenate([c for _, _, c in self._pairs] or [np.zeros(0, np.int64)])
        gt_table, gt_ids, gt_inst = _segment_table(self._gt_rows)
        pred_table, pred_ids, pred_inst = _segment_table(self._pred_rows)
        # Every non-zero PNG id is listed (validated), so the listed ids cover the pair table.
        return VideoPairs(
            num_frames=num_frames,
            frame=frame,
            gt=np.searchsorted(gt_ids, g_raw).astype(np.int64),
            pred=np.searchsorted(pred_ids, p_raw).astype(np.int64),
            count=count,
            gt_segments=gt_table,
            pred_segments=pred_table,
            gt_instance=gt_inst,
            pred_instance=pred_inst,
        )


def _segment_table(
    rows: list[tuple[int, int, int, int, int, int]],
) -> tuple[SegmentTable, np.ndarray, np.ndarray]:
    """Rows (frame, raw id, category, iscrowd, area, order) in listing order -> table, sorted raw
    ids with 0 prepended, instance numbers per compact index."""
    arr = np.asarray(rows, dtype=np.int64).reshape(-1, 6)
    ids = np.concatenate([[0], np.unique(arr[:, 1])]).astype(np.int64)
    segment = np.searchsorted(ids, arr[:, 1]).astype(np.int64)
    # Rows are in listing order (frame by frame, list order): the first row of each index is its
    # first appearance; instance number = rank of that first appearance.
    _, first_row = np.unique(segment, return_index=True)
    instance = np.full(len(ids), -1, np.int64)
    instance[segment[np.sort(first_row)]] = np.arange(len(first_row))
    table = SegmentTable(
        frame=arr[:, 0].copy(),
        segment=segment,
        category=arr[:, 2].copy(),
        iscrowd=arr[:, 3].astype(bool),
        area=arr[:, 4].copy(),
        order=arr[:, 5].copy(),
    )
    return table, ids, instance
