"""Video Panoptic Quality (VPQ) as the official VIPSeg ``ClipPanoFCN/eval_vpq_vspw.py`` computes it.

Follows ``reference/metrics_reference.md`` §2, quirks included:

- windows of k consecutive annotated frames with stride 1 (``idx = 0 .. T-k``); a video with
  T < k contributes nothing at that k;
- a tube is every pixel sharing one id across the window; its area is the sum of the per-frame
  areas (GT: the JSON ``area``; prediction: the PNG pixel count); its category (and GT
  ``iscrowd``) is the one of the **first frame of the window in which the id appears**;
- a (GT, pred) pair of the same category, GT not crowd, is a TP iff
  ``IoU = I / (A_pred + A_gt - I - I(VOID, pred)) > 0.5`` (strictly);
- unmatched non-crowd GT tubes are FN; an unmatched pred tube is an FP unless
  ``(I(VOID, pred) + I(last crowd tube of its class, pred)) / A_pred > 0.5``;
- counts are pooled over all windows of all videos per class; ``PQ_c = iou_c / (tp + fp/2 +
  fn/2)`` averaged (unweighted) over the GT categories with ``tp + fp + fn > 0``, in the order of
  the category list; VPQ_k = 100 x that mean.

Vectorised: a window's tube intersections, areas and void overlaps are sums of the per-frame pair
counts of :mod:`vidpan.evaluation.pairs`, so each frame-pair entry is replicated to the (at most k)
windows containing it and summed per (window, GT, pred) key — no per-window pixel work. Matched
pairs are visited in ascending (window, GT id, pred id) order, the official order, so per-class IoU
sums are accumulated in the same sequence.

Deliberate difference: where the official script divides by zero for a subset with no counted
class (``ZeroDivisionError``), :func:`pq_average` returns NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vidpan.evaluation.pairs import VideoPairs, group_sum

#: Window sizes (frames) of the official script, ``for nframes in [1, 2, 4, 6, 8]``.
VPQ_WINDOWS: tuple[int, ...] = (1, 2, 4, 6, 8)


@dataclass
class PQCounts:
    """Per-class counts for one window size, pooled over windows. Arrays are [K] (category index).

    Attributes:
        tp, fp, fn: int64 counts.
        iou: float64 sum of the IoUs of the true positives.
        windows: number of windows counted.
    """

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    iou: np.ndarray
    windows: int = 0

    @classmethod
    def zeros(cls, num_categories: int) -> PQCounts:
        z = np.zeros(num_categories, np.int64)
        return cls(z.copy(), z.copy(), z.copy(), np.zeros(num_categories, np.float64), 0)

    def __iadd__(self, other: PQCounts) -> PQCounts:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.iou += other.iou
        self.windows += other.windows
        return self


@dataclass(frozen=True)
class PQClassResult:
    """One class's pooled counts and qualities (``pq`` etc. in 0..1, as ``pq_average``)."""

    pq: float
    sq: float
    rq: float
    iou: float
    tp: int
    fp: int
    fn: int


@dataclass(frozen=True)
class PQSummary:
    """Mean PQ/SQ/RQ (0..1) over the ``n`` counted classes of a subset (NaN if n = 0)."""

    pq: float
    sq: float
    rq: float
    n: int


def pq_average(
    counts: PQCounts, isthing: Sequence[bool], subset: bool | None
) -> tuple[PQSummary, dict[int, PQClassResult]]:
    """The official ``PQStat.pq_average``: classes in category order, skipping tp+fp+fn == 0.

    Args:
        counts: pooled counts.
        isthing: [K] per category index.
        subset: None for all classes, True for things, False for stuff.

    Returns:
        The summary and the per-class results keyed by category index (counted classes only).
    """
    pq = sq = rq = 0.0
    n = 0
    per_class: dict[int, PQClassResult] = {}
    for c in range(len(isthing)):
        if subset is not None and bool(isthing[c]) != subset:
            continue
        tp, fp, fn = int(counts.tp[c]), int(counts.fp[c]), int(counts.fn[c])
        if tp + fp + fn == 0:
            continue
        iou = float(counts.iou[c])
        n += 1
        pq_c = iou / (tp + 0.5 * fp + 0.5 * fn)
        sq_c = iou / tp if tp != 0 else 0.0
        rq_c = tp / (tp + 0.5 * fp + 0.5 * fn)
        per_class[c] = PQClassResult(pq_c, sq_c, rq_c, iou, tp, fp, fn)
        pq += pq_c
        sq += sq_c
        rq += rq_c
    if n == 0:
        nan = float("nan")
        return PQSummary(nan, nan, nan, 0), per_class
    return PQSummary(pq / n, sq / n, rq / n, n), per_class


def _expand(frame: np.ndarray, k: int, num_windows: int) -> tuple[np.ndarray, np.ndarray]:
    """Replicate rows of frame t to the windows s with s <= t < s + k: (row index, window)."""
    s = frame[:, None] - np.arange(k)[None, :]  # [R] -> [R, k] candidate window starts
    rows, offs = np.nonzero((s >= 0) & (s < num_windows))
    return rows, s[rows, offs]


def _run_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Positions where a run of equal values starts in a sorted array."""
    if len(sorted_keys) == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])


@dataclass(frozen=True)
class _Tubes:
    """Tubes of one side over all windows, sorted by key = window * index_space + segment."""

    key: np.ndarray
    area: np.ndarray
    category: np.ndarray
    iscrowd: np.ndarray
    first_frame: np.ndarray
    order: np.ndarray


def _tubes(video: VideoPairs, *, gt: bool, k: int, num_windows: int) -> _Tubes:
    table = video.gt_segments if gt else video.pred_segments
    space = video.num_gt if gt else video.num_pred
    rows, s = _expand(table.frame, k, num_windows)
    key = s * space + table.segment[rows]
    tube_key, area = group_sum(key, table.area[rows])
    # Attributes of the first frame of the window in which the id appears.
    order = np.lexsort((table.frame[rows], key))
    sorted_key = key[order]
    first = _run_starts(sorted_key)
    src = rows[order[first]]
    return _Tubes(
        key=tube_key,
        area=area,
        category=table.category[src],
        iscrowd=table.iscrowd[src],
        first_frame=table.frame[src],
        order=table.order[src],
    )


def video_pq_counts(video: VideoPairs, *, window: int, num_categories: int) -> PQCounts:
    """Per-class tp/fp/fn/iou of one video for window size ``window``, summed over its windows."""
    out = PQCounts.zeros(num_categories)
    k, T = window, video.num_frames
    if k > T:
        return out
    num_windows = T - k + 1
    out.windows = num_windows
    G1, P1 = video.num_gt, video.num_pred
    gt = _tubes(video, gt=True, k=k, num_windows=num_windows)
    pr = _tubes(video, gt=False, k=k, num_windows=num_windows)

    # Window-level intersections: sum of the per-frame pair counts over the window's frames.
    rows, s = _expand(video.frame, k, num_windows)
    jkey, inter = group_sum((s * G1 + video.gt[rows]) * P1 + video.pred[rows], video.count[rows])
    j_win, j_gt, j_pred = jkey // (G1 * P1), (jkey // P1) % G1, jkey % P1

    # I(VOID, pred) per pred tube.
    void_overlap = np.zeros(len(pr.key), np.int64)
    on_void = (j_gt == 0) & (j_pred > 0)
    void_overlap[np.searchsorted(pr.key, j_win[on_void] * P1 + j_pred[on_void])] = inter[on_void]

    # Matching, in ascending (window, GT id, pred id) order as the official script.
    cand = (j_gt > 0) & (j_pred > 0)
    gi = np.searchsorted(gt.key, j_win[cand] * G1 + j_gt[cand])
    pi = np.searchsorted(pr.key, j_win[cand] * P1 + j_pred[cand])
    i_c = inter[cand]
    same = (gt.category[gi] == pr.category[pi]) & ~gt.iscrowd[gi]
    gi, pi, i_c = gi[same], pi[same], i_c[same]
    union = pr.area[pi] + gt.area[gi] - i_c - void_overlap[pi]
    iou = i_c / union
    tp = iou > 0.5
    out.tp += np.bincount(gt.category[gi[tp]], minlength=num_categories)
    out.iou += np.bincount(gt.category[gi[tp]], weights=iou[tp], minlength=num_categories)
    gt_matched = np.zeros(len(gt.key), bool)
    gt_matched[gi[tp]] = True
    pred_matched = np.zeros(len(pr.key), bool)
    pred_matched[pi[tp]] = True

    fn = ~gt_matched & ~gt.iscrowd
    out.fn += np.bincount(gt.category[fn], minlength=num_categories)

    # Unmatched pred tubes lying more than half on VOID (+ the class's crowd region) are ignored.
    ignored = void_overlap.copy()
    if gt.iscrowd.any():
        ignored += _crowd_overlap(gt, pr, jkey, inter, G1=G1, P1=P1, num_categories=num_categories)
    fp = ~pred_matched & ~(ignored / pr.area > 0.5)
    out.fp += np.bincount(pr.category[fp], minlength=num_categories)
    return out


def _crowd_overlap(
    gt: _Tubes,
    pr: _Tubes,
    jkey: np.ndarray,
    inter: np.ndarray,
    *,
    G1: int,
    P1: int,
    num_categories: int,
) -> np.ndarray:
    """Per pred tube: its intersection with the crowd GT tube of its class in its window.

    As the official ``crowd_labels_dict``: when a window holds several crowd tubes of a class,
    the last one in the window's segment order (first frame, then ``segments_info`` position) wins.
    """
    crowd = np.flatnonzero(gt.iscrowd)
    c_win = gt.key[crowd] // G1
    order = np.lexsort((gt.order[crowd], gt.first_frame[crowd], gt.category[crowd], c_win))
    crowd = crowd[order]
    ckey = c_win[order] * num_categories + gt.category[crowd]
    last = np.flatnonzero(np.r_[ckey[1:] != ckey[:-1], True])
    ckey, crowd_seg = ckey[last], gt.key[crowd[last]] % G1

    p_win, p_seg = pr.key // P1, pr.key % P1
    want = p_win * num_categories + pr.category
    idx = np.minimum(np.searchsorted(ckey, want), len(ckey) - 1)
    has = ckey[idx] == want
    out = np.zeros(len(pr.key), np.int64)
    query = (p_win[has] * G1 + crowd_seg[idx[has]]) * P1 + p_seg[has]
    j = np.minimum(np.searchsorted(jkey, query), len(jkey) - 1)
    found = jkey[j] == query
    vals = np.where(found, inter[j], 0)
    out[np.flatnonzero(has)] = vals
    return out
