"""Segmentation and Tracking Quality (STQ = sqrt(AQ x SQ)) as the official VIPSeg STQ evaluation.

Follows ``reference/metrics_reference.md`` §3: the driver ``ClipPanoFCN/eval_stq_vspw.py`` and its
copy of deeplab2's numpy ``segmentation_and_tracking_quality.py``, quirks included:

- each video is one sequence; every segment id of a video gets an *instance number*, its rank of
  first appearance over the video's ``segments_info`` lists (frame by frame, list order, stuff
  and things alike), separately for GT and prediction; a pixel's label is (category of the id in
  *that frame's* JSON, instance number); id 0 is void;
- **GT instance number 0 is crowd**: thing pixels of the first segment listed in the video are
  dropped from AQ (GT and the predictions on them), though they still count in SQ;
- SQ is the IoU over a (K+1)x(K+1) confusion matrix whose last row/column is void: GT-void rows
  are zeroed, the pred-void column is kept, so any unlabeled prediction on labelled GT adds a
  **phantom zero-IoU void class** to the mean (classes = nonzero unions);
- AQ is class-agnostic over thing classes: per GT tube g, ``(1/|g|) sum_p TPA IoU`` with pred
  tubes restricted to predicted-thing pixels not on GT crowd (pred pixels on GT stuff/void count
  in |p|); AQ = sum over all sequences and GT tubes / total number of GT tubes;
- counts are exact integers and the AQ sums float64, as the VIPSeg copy (deeplab2's current numpy
  version counts in float32 and differs by ~1e-8).

Vectorised over the per-frame (GT id, pred id) pair counts of :mod:`vidpan.evaluation.pairs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vidpan.evaluation.pairs import SegmentTable, VideoPairs, group_sum

_EPSILON = 1e-15


@dataclass
class STQSequence:
    """One sequence's STQ statistics.

    Attributes:
        confusion: [K+1, K+1] int64 semantic confusion (rows GT, columns pred, index K = void)
            with the GT-void row zeroed.
        aq_sum: sum over the sequence's GT tubes of ``(1/|g|) sum_p TPA IoU``.
        num_tubes: number of GT thing tubes (crowd excluded).
        length: number of frames.
    """

    confusion: np.ndarray
    aq_sum: float
    num_tubes: int
    length: int


@dataclass(frozen=True)
class STQResult:
    """STQ, AQ and SQ (0..1), with the per-sequence values in video order."""

    stq: float
    aq: float
    sq: float
    stq_per_seq: list[float]
    aq_per_seq: list[float]
    sq_per_seq: list[float]
    num_tubes_per_seq: list[int]


def _frame_category(table: SegmentTable, space: int, frame: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Category index of segment ``seg`` in frame ``frame`` (rows with seg > 0 only)."""
    key = table.frame * space + table.segment
    order = np.argsort(key, kind="stable")
    return table.category[order[np.searchsorted(key[order], frame * space + seg)]]


def video_stq_stats(video: VideoPairs, *, isthing: np.ndarray) -> STQSequence:
    """STQ statistics of one video (one sequence).

    Args:
        video: the video's pair counts.
        isthing: [K] bool per category index.
    """
    K = len(isthing)
    G1, P1 = video.num_gt, video.num_pred
    count = video.count
    # Semantic label of each pair entry (K = void).
    sem_gt = np.full(len(count), K, np.int64)
    has_gt = video.gt > 0
    sem_gt[has_gt] = _frame_category(video.gt_segments, G1, video.frame[has_gt], video.gt[has_gt])
    sem_pred = np.full(len(count), K, np.int64)
    has_pred = video.pred > 0
    sem_pred[has_pred] = _frame_category(video.pred_segments, P1, video.frame[has_pred], video.pred[has_pred])

    valid = sem_gt < K  # GT-void rows are removed from the confusion matrix
    cm = np.bincount(sem_gt[valid] * (K + 1) + sem_pred[valid], weights=count[valid], minlength=(K + 1) ** 2)
    confusion = np.rint(cm).astype(np.int64).reshape(K + 1, K + 1)

    thing_ext = np.r_[np.asarray(isthing, bool), False]  # void is not a thing
    inst_gt = video.gt_instance[video.gt]
    inst_pred = video.pred_instance[video.pred]
    gt_thing = thing_ext[sem_gt]
    crowd = gt_thing & (inst_gt == 0)  # the quirk: GT instance number 0 means crowd
    gt_tube = gt_thing & ~crowd
    pred_tube = thing_ext[sem_pred] & ~crowd
    key_gt = sem_gt * G1 + inst_gt
    key_pred = sem_pred * P1 + inst_pred

    gt_keys, gt_size = group_sum(key_gt[gt_tube], count[gt_tube])
    pred_keys, pred_size = group_sum(key_pred[pred_tube], count[pred_tube])
    both = gt_tube & pred_tube
    span = (K + 1) * P1
    ikey, tpa = group_sum(key_gt[both] * span + key_pred[both], count[both])
    g = np.searchsorted(gt_keys, ikey // span)
    p = np.searchsorted(pred_keys, ikey % span)
    fpa = pred_size[p] - tpa
    fna = gt_size[g] - tpa
    term = tpa * (tpa / (tpa + fpa + fna))
    inner = np.bincount(g, weights=term, minlength=len(gt_keys))
    aq_sum = 0.0
    for size, s in zip(gt_size.tolist(), inner.tolist(), strict=True):
        aq_sum += 1.0 / size * s
    return STQSequence(confusion, aq_sum, len(gt_keys), video.num_frames)


def _mean_iou(confusion: np.ndarray, eps: float) -> float:
    inter = confusion.diagonal()
    fps = confusion.sum(axis=0) - inter
    fns = confusion.sum(axis=1) - inter
    unions = inter + fps + fns
    n = np.count_nonzero(unions)
    ious = inter.astype(np.float64) / np.maximum(unions, eps).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.float64(np.sum(ious)) / np.float64(n))


def stq_result(sequences: Sequence[STQSequence]) -> STQResult:
    """Combine per-sequence statistics (``STQuality.result``)."""
    if not sequences:
        nan = float("nan")
        return STQResult(nan, nan, nan, [], [], [], [])
    num_tubes = np.array([s.num_tubes for s in sequences], np.float64)
    aq_sums = np.array([s.aq_sum for s in sequences], np.float64)
    aq = float(np.sum(aq_sums) / np.maximum(np.sum(num_tubes), _EPSILON))
    aq_per_seq = aq_sums / np.maximum(num_tubes, _EPSILON)
    total = np.zeros_like(sequences[0].confusion)
    sq_per_seq = []
    for s in sequences:
        total += s.confusion
        sq_per_seq.append(_mean_iou(s.confusion, 1e-15))
    sq = _mean_iou(total, _EPSILON)
    stq = float(np.sqrt(aq * sq))
    stq_per_seq = np.sqrt(aq_per_seq * np.asarray(sq_per_seq))
    return STQResult(
        stq=stq,
        aq=aq,
        sq=sq,
        stq_per_seq=stq_per_seq.tolist(),
        aq_per_seq=aq_per_seq.tolist(),
        sq_per_seq=sq_per_seq,
        num_tubes_per_seq=[s.num_tubes for s in sequences],
    )
