"""VSS metrics on VSPW: mIoU, frequency-weighted IoU and video consistency VC_n.

Follows ``reference/metrics_reference.md`` §4 (VSPW_code ``utils.py`` ``Evaluator`` / DVIS++
``eval_miou_vspw.py``, and VSPW_code ``VC_perclip.py``):

- **mIoU / fwIoU** come from one 124x124 confusion matrix accumulated over every GT frame of every
  video (dataset level). GT raw labels are shifted as the VSPW README prescribes: 0 ('others') and
  255 (void) are ignored, 1..124 become classes 0..123 (raw values 125..254 are ignored too, as
  the official masking does). mIoU averages ``IoU_c = CM[c,c] / (row_c + col_c - CM[c,c])`` over
  the classes present in GT; fwIoU = ``sum_{c: freq_c > 0} freq_c IoU_c`` with
  ``freq_c = row_c / total``.
- **VC_n** (the VSPW_code definition, not DVIS++'s ``eval_vc_vspw.py`` whose "VC16" pools the VC8
  windows too): per video of T > n frames (sorted by name), windows start at i = 0 .. T-n-1 (the
  last possible window, starting at T-n, is left out as in the reference); a window's score is
  ``|G & P| / |G|`` with G (P) the pixels whose **raw** GT label (prediction) is the same in all n
  frames (NaN if |G| = 0); VC_n = nanmean over the windows of all videos, pooled.

Vectorised and streaming: the confusion of a frame is one ``bincount`` of ``raw_gt * 256 + pred``;
VC keeps, per pixel, the length of the current run of equal consecutive values (equality across a
window is equality of all consecutive frames), so each frame is read once and only the previous
frame is held, for every n at once.

Deliberate difference: a prediction value >= 124 on a GT-valid pixel raises
:class:`~vidpan.errors.InputError` (the official code silently bins it into a wrong cell, or
crashes in ``reshape``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: Number of VSPW classes.
VSPW_NUM_CLASSES = 124
#: Window lengths of the VC scores reported (``VC_perclip_total.py``: ``for clip_num in [8, 16]``).
VC_WINDOWS: tuple[int, ...] = (8, 16)


def frame_confusion(gt_raw: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame's confusion on GT-valid pixels.

    Args:
        gt_raw: [H, W] uint8 raw VSPW labels (0 others, 255 void, 1..124 = class + 1).
        pred: [H, W] uint8 predicted 0-based class ids.

    Returns:
        ``(confusion, bad)``: [124, 124] int64 counts (rows GT class, columns predicted class) and
        [256 - 124] int64 counts of predicted values 124..255 on GT-valid pixels (must be zero).
    """
    key = gt_raw.astype(np.uint16)  # [H, W]: raw GT * 256 + pred
    key <<= 8
    key |= pred
    full = np.bincount(key.ravel(), minlength=256 * 256).reshape(256, 256)  # [raw GT, pred]
    valid = full[1 : VSPW_NUM_CLASSES + 1]  # raw 1..124 -> classes 0..123
    return valid[:, :VSPW_NUM_CLASSES].astype(np.int64), valid[:, VSPW_NUM_CLASSES:].sum(axis=0)


@dataclass
class VCAccumulator:
    """Streaming VC_n window scores of one video, for several n at once.

    Call :meth:`update` with the frames in name order, then :meth:`scores`.
    """

    windows: Sequence[int] = VC_WINDOWS
    _prev_gt: np.ndarray | None = None
    _prev_pred: np.ndarray | None = None
    # [H, W] uint8: number of consecutive equal frame pairs ending at the current frame (capped at
    # 255, enough for n <= 256).
    _run_gt: np.ndarray | None = None
    _run_pred: np.ndarray | None = None
    _num_frames: int = 0
    _scores: dict[int, list[float]] = field(default_factory=dict)

    def update(self, gt_raw: np.ndarray, pred: np.ndarray) -> None:
        """Add the next frame: [H, W] raw GT labels and [H, W] predictions (same size)."""
        if self._prev_gt is None or self._prev_pred is None:
            if max(self.windows) > 256:
                raise ValueError("VC windows longer than 256 frames are not supported")
            self._run_gt = np.zeros(gt_raw.shape, np.uint8)
            self._run_pred = np.zeros(gt_raw.shape, np.uint8)
        else:
            assert self._run_gt is not None and self._run_pred is not None
            for run, now, prev in (
                (self._run_gt, gt_raw, self._prev_gt),
                (self._run_pred, pred, self._prev_pred),
            ):
                np.minimum(run, 254, out=run)
                run += 1
                run *= now == prev  # in place: reset where the value changed
        self._prev_gt, self._prev_pred = gt_raw, pred
        t = self._num_frames
        self._num_frames += 1
        for n in self.windows:
            if t >= n - 1:  # the window of n frames ending at t starts at t - n + 1
                common_gt = self._run_gt >= n - 1
                both = np.count_nonzero(common_gt & (self._run_pred >= n - 1))
                total = np.count_nonzero(common_gt)
                with np.errstate(invalid="ignore", divide="ignore"):
                    score = float(np.float64(both) / np.float64(total))
                self._scores.setdefault(n, []).append(score)

    def scores(self) -> dict[int, list[float]]:
        """Window scores per n, windows i = 0 .. T-n-1 (the window starting at T-n is dropped,
        as the reference's ``range(len - n)``; a video with T <= n has none)."""
        return {n: self._scores.get(n, [])[:-1] for n in self.windows}


@dataclass(frozen=True)
class SemanticScores:
    """Dataset-level semantic scores from a confusion matrix (0..1)."""

    miou: float
    fwiou: float
    acc: float
    per_class_iou: np.ndarray  # [K], NaN for classes absent from GT and predictions


def semantic_scores(confusion: np.ndarray) -> SemanticScores:
    """mIoU, fwIoU and pixel accuracy exactly as the official ``Evaluator`` (float64)."""
    cm = confusion.astype(np.float64)
    diag = np.diag(cm)
    rows, cols = cm.sum(axis=1), cm.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = diag / (rows + cols - diag)
        present = rows > 0
        miou = float(np.nansum(iou * present) / present.sum())
        freq = rows / cm.sum()
        fwiou = float((freq[freq > 0] * iou[freq > 0]).sum())
        acc = float(diag.sum() / cm.sum())
    return SemanticScores(miou, fwiou, acc, iou)


def pooled_vc(scores: Sequence[float]) -> float:
    """``np.nanmean`` over the pooled window scores; NaN when there is no (non-NaN) window."""
    arr = np.asarray(scores, np.float64)
    if arr.size == 0 or np.isnan(arr).all():
        return float("nan")
    return float(np.nanmean(arr))
