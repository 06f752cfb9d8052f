"""Dataset-level VPS (VPQ + STQ on VIPSeg) and VSS (mIoU, fwIoU, VC on VSPW) evaluation.

Orchestrates :mod:`~vidpan.evaluation.vpq`, :mod:`~vidpan.evaluation.stq` and
:mod:`~vidpan.evaluation.semantic` over the official on-disk formats
(``reference/metrics_reference.md`` §1.4, §4.1), streaming video by video: each video's frames are
read once (shared by VPQ at every window size and STQ), reduced to small per-video statistics, and
summed in video order, so memory does not grow with the number of videos. With ``workers > 1``
videos are processed in a process pool and the per-video statistics are summed in the same order
as the serial path, so the results are identical.

Pairing follows the official scripts: GT videos in the order of the GT JSON's annotations, the
i-th GT frame with the i-th prediction frame, prediction PNG ``<pred_masks>/<video>/<GT
file_name>``. Extra prediction videos are ignored, as officially. (Difference: when that PNG
does not exist, the ``file_name`` the prediction JSON lists at the same position is used — e.g.
``00000001.png`` for a prediction made from a video file whose GT frames are named
``00000005.png`` — where the official scripts crash.)

Bad input raises :class:`~vidpan.errors.InputError` naming the file and the problem, where the
official scripts crash (``KeyError``, ``assert``) or silently miscount; see ``docs/evaluation.md``
for the full list of deliberate differences:

- frames that cannot pair: a GT video missing from the prediction, a frame-count mismatch, GT
  frames with no prediction PNG (resolved up front by :mod:`~vidpan.evaluation.pairing`, one line
  naming the frames and the likely cause);
- a missing, unreadable, non-RGB (VPS) / non-single-channel (VSS) or wrongly sized PNG;
- an id in a prediction PNG that its frame's ``segments_info`` does not list, or a listed id
  absent from the PNG (the official VPQ raises on both; its STQ ignores the latter);
- a GT JSON inconsistent with its PNGs: a listed id absent from the PNG, a PNG id not listed, or
  a JSON ``area`` differing from the PNG pixel count (the official VPQ uses the JSON area without
  checking it);
- a segment id listed twice in one frame, a segment with id 0, or an unknown ``category_id``;
- a VSS prediction value >= 124 on a GT-valid pixel.

A metric that is undefined (no counted class at some window size, no VC window) is NaN, written
as ``null`` in JSON, where the official scripts raise ``ZeroDivisionError`` or print ``nan``.

``workers > 1`` uses ``forkserver`` (or ``spawn``) processes: as with any such pool, a script
calling these functions must guard its entry point with ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TypeVar

import numpy as np

from vidpan.data.formats.rgb_id import read_id_png
from vidpan.data.formats.vipseg import (
    Category,
    VideoAnnotation,
    read_panoptic_video_json,
    read_split,
)
from vidpan.data.formats.vspw import read_label_png
from vidpan.errors import InputError
from vidpan.evaluation.pairing import check_vss_frames, missing_video_message, pair_vps_frames
from vidpan.evaluation.pairs import VideoPairsBuilder
from vidpan.evaluation.results import VPQWindowResult, VPSResult, VSSResult
from vidpan.evaluation.semantic import (
    VC_WINDOWS,
    VSPW_NUM_CLASSES,
    VCAccumulator,
    frame_confusion,
    pooled_vc,
    semantic_scores,
)
from vidpan.evaluation.stq import STQSequence, stq_result, video_stq_stats
from vidpan.evaluation.vpq import VPQ_WINDOWS, PQCounts, pq_average, video_pq_counts

_T = TypeVar("_T")
_R = TypeVar("_R")


# ------------------------------------------------------------------------------------------
# Process pool
# ------------------------------------------------------------------------------------------


def _ordered_map(fn: Callable[[_T], _R], tasks: Sequence[_T], workers: int) -> Iterator[_R]:
    """``map`` in task order, in a process pool when ``workers > 1``.

    At most ``2 * workers`` tasks are in flight, so finished results never pile up. Workers are
    started with ``forkserver`` where available (safe in multi-threaded callers, unlike ``fork``),
    else ``spawn``. On an error (e.g. an :class:`InputError` raised in a worker) the pending tasks
    are cancelled and the running ones allowed to finish before it propagates -- no worker is
    killed mid-write, which is what makes ``multiprocessing.Pool.terminate`` hang.
    """
    workers = min(workers, len(tasks))
    if workers <= 1:
        yield from map(fn, tasks)
        return
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        # Preload the heavy third-party imports only: the fork server imports its preloads before
        # it sees the caller's sys.path, so preloading vidpan itself could pick another copy.
        ctx.set_forkserver_preload(["numpy", "PIL.Image", "PIL.PngImagePlugin"])
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    try:
        queue = iter(tasks)
        pending: deque[Future[_R]] = deque(executor.submit(fn, t) for t in islice(queue, 2 * workers))
        while pending:
            result = pending.popleft().result()
            for t in islice(queue, 1):
                pending.append(executor.submit(fn, t))
            yield result
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------------------------------
# VPS
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _VPSTask:
    gt: VideoAnnotation
    pred: VideoAnnotation
    gt_masks: Path
    pred_pngs: tuple[Path, ...]
    gt_json: Path
    pred_json: Path
    category_index: dict[int, int]
    isthing: np.ndarray
    windows: tuple[int, ...]


@dataclass(frozen=True)
class _VPSVideoStats:
    pq: dict[int, PQCounts]
    stq: STQSequence


def _vps_video(task: _VPSTask) -> _VPSVideoStats:
    """Read one video's frames once and reduce them to VPQ counts (every k) and STQ statistics."""
    builder = VideoPairsBuilder(task.category_index, gt_json=task.gt_json, pred_json=task.pred_json)
    vid = task.gt.video_id
    for i, (frame, gt_segs, pred_segs) in enumerate(
        zip(task.gt.frames, task.gt.segments, task.pred.segments, strict=True)
    ):
        gt_png = task.gt_masks / vid / frame.file_name
        pred_png = task.pred_pngs[i]  # resolved by pair_vps_frames
        size = (frame.height, frame.width) if frame.height > 0 and frame.width > 0 else None
        gt = read_id_png(gt_png, expected_size=size)
        pred = read_id_png(pred_png, expected_size=(gt.shape[0], gt.shape[1]))
        builder.add_frame(
            gt,
            pred,
            gt_segs,
            pred_segs,
            gt_png=gt_png,
            pred_png=pred_png,
            where=f"video {vid!r} frame {i} ({frame.file_name})",
        )
    video = builder.build()
    num_categories = len(task.isthing)
    pq = {k: video_pq_counts(video, window=k, num_categories=num_categories) for k in task.windows}
    return _VPSVideoStats(pq, video_stq_stats(video, isthing=task.isthing))


def _check_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise InputError(f"{what} directory not found", path=path)


def evaluate_vps(
    gt_json: str | Path,
    gt_masks: str | Path,
    pred_json: str | Path,
    pred_masks: str | Path,
    *,
    workers: int = 1,
) -> VPSResult:
    """VPQ (window sizes 1, 2, 4, 6, 8) and STQ of a VIPSeg-format submission.

    Args:
        gt_json: ``panoptic_gt_VIPSeg_val.json`` (videos, annotations, categories).
        gt_masks: ``panomasksRGB`` directory with ``<video>/<file_name>`` RGB-id PNGs.
        pred_json: the submission's ``pred.json``.
        pred_masks: the submission's ``pan_pred`` directory (``<video>/<GT file_name>``).
        workers: processes (1 = serial; results are identical either way).

    Raises:
        InputError: on any malformed or inconsistent input (see the module docstring).
    """
    gt_json, pred_json = Path(gt_json), Path(pred_json)
    gt_masks, pred_masks = Path(gt_masks), Path(pred_masks)
    gt = read_panoptic_video_json(gt_json, require_videos=True)
    if not gt.categories:
        raise InputError("no `categories`: the GT JSON must list the dataset categories", path=gt_json)
    pred = read_panoptic_video_json(pred_json, require_videos=False)
    _check_dir(gt_masks, "GT mask")
    _check_dir(pred_masks, "prediction mask")
    categories: list[Category] = gt.categories
    category_index = {c.id: i for i, c in enumerate(categories)}
    isthing = np.array([c.isthing for c in categories], bool)

    pred_videos = pred.video_map()
    tasks = []
    for v in gt.videos:
        if v.video_id not in pred_videos:
            unmatched = set(pred_videos) - {g.video_id for g in gt.videos}
            raise InputError(
                missing_video_message(v.video_id, unmatched, what=pred_json.name), path=pred_json
            )
        pv = pred_videos[v.video_id]
        # Resolved up front, before any pixel is read: one line naming every frame that cannot pair.
        pngs = tuple(pair_vps_frames(v, pv, pred_masks=pred_masks, pred_json=pred_json))
        tasks.append(
            _VPSTask(v, pv, gt_masks, pngs, gt_json, pred_json, category_index, isthing, VPQ_WINDOWS)
        )

    totals = {k: PQCounts.zeros(len(categories)) for k in VPQ_WINDOWS}
    sequences: list[STQSequence] = []
    for stats in _ordered_map(_vps_video, tasks, workers):
        for k in VPQ_WINDOWS:
            totals[k] += stats.pq[k]
        sequences.append(stats.stq)
    return VPSResult(windows=_vpq_windows(totals, categories, isthing), stq=stq_result(sequences))


def _vpq_windows(
    totals: dict[int, PQCounts], categories: Sequence[Category], isthing: np.ndarray
) -> dict[int, VPQWindowResult]:
    out = {}
    for k, counts in totals.items():
        all_, per_class = pq_average(counts, isthing.tolist(), None)
        things, _ = pq_average(counts, isthing.tolist(), True)
        stuff, _ = pq_average(counts, isthing.tolist(), False)
        out[k] = VPQWindowResult(
            window=k,
            vpq=100 * all_.pq,
            vpq_thing=100 * things.pq,
            vpq_stuff=100 * stuff.pq,
            num_classes=all_.n,
            num_windows=counts.windows,
            per_class={categories[c].id: r for c, r in per_class.items()},
        )
    return out


# ------------------------------------------------------------------------------------------
# VSS
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _VSSTask:
    video_id: str
    gt_dir: Path
    pred_dir: Path
    frames: tuple[str, ...]


@dataclass(frozen=True)
class _VSSVideoStats:
    confusion: np.ndarray
    vc: dict[int, list[float]]


def _vss_video(task: _VSSTask) -> _VSSVideoStats:
    confusion = np.zeros((VSPW_NUM_CLASSES, VSPW_NUM_CLASSES), np.int64)
    vc = VCAccumulator(VC_WINDOWS)
    size: tuple[int, int] | None = None
    for name in task.frames:
        gt_png, pred_png = task.gt_dir / name, task.pred_dir / name
        gt = read_label_png(gt_png, expected_size=size)
        size = (gt.shape[0], gt.shape[1])
        pred = read_label_png(pred_png, expected_size=size)
        cm, bad = frame_confusion(gt, pred)
        if bad.any():
            values = (np.flatnonzero(bad) + VSPW_NUM_CLASSES).tolist()
            raise InputError(
                f"predicted values {values[:10]} on {int(bad.sum())} GT-labelled pixels; "
                f"predictions must be 0-based class ids 0..{VSPW_NUM_CLASSES - 1}",
                path=pred_png,
            )
        confusion += cm
        vc.update(gt, pred)
    return _VSSVideoStats(confusion, vc.scores())


def vss_video_ids(gt_root: Path, split: str | Path | None) -> list[str]:
    """Videos to evaluate: the ``split`` list, else ``<gt_root>/val.txt`` if present, else every
    ``<gt_root>/data/<video>`` directory (sorted)."""
    if split is not None:
        ids = read_split(split)
    elif (gt_root / "val.txt").is_file():
        ids = read_split(gt_root / "val.txt")
    else:
        ids = sorted(p.name for p in (gt_root / "data").iterdir() if p.is_dir())
    if not ids:
        raise InputError("no videos to evaluate", path=split if split is not None else gt_root)
    return ids


def evaluate_vss(
    gt_root: str | Path,
    pred_masks: str | Path,
    *,
    split: str | Path | None = None,
    workers: int = 1,
) -> VSSResult:
    """mIoU, fwIoU, VC8 and VC16 of VSPW-format predictions.

    Args:
        gt_root: VSPW root with ``data/<video>/mask/<frame>.png`` (raw labels).
        pred_masks: directory of ``<video>/<frame>.png`` uint8 0-based class ids.
        split: video list (default ``<gt_root>/val.txt`` if present, else all videos).
        workers: processes (1 = serial; results are identical either way).
    """
    gt_root, pred_masks = Path(gt_root), Path(pred_masks)
    _check_dir(gt_root / "data", "VSPW `data`")
    _check_dir(pred_masks, "prediction mask")
    tasks = []
    for vid in vss_video_ids(gt_root, split):
        mask_dir = gt_root / "data" / vid / "mask"
        if not mask_dir.is_dir():
            raise InputError(f"video {vid!r}: GT mask directory not found", path=mask_dir)
        frames = tuple(sorted(p.name for p in mask_dir.iterdir() if p.suffix.lower() == ".png"))
        if not frames:
            raise InputError(f"video {vid!r} has no GT mask PNGs", path=mask_dir)
        check_vss_frames(vid, frames, pred_masks=pred_masks)
        tasks.append(_VSSTask(vid, mask_dir, pred_masks / vid, frames))

    confusion = np.zeros((VSPW_NUM_CLASSES, VSPW_NUM_CLASSES), np.int64)
    windows: dict[int, list[float]] = {n: [] for n in VC_WINDOWS}
    for stats in _ordered_map(_vss_video, tasks, workers):
        confusion += stats.confusion
        for n in VC_WINDOWS:
            windows[n].extend(stats.vc[n])
    scores = semantic_scores(confusion)
    return VSSResult(
        miou=scores.miou,
        fwiou=scores.fwiou,
        acc=scores.acc,
        vc={n: pooled_vc(windows[n]) for n in VC_WINDOWS},
        vc_windows=windows,
        confusion=confusion,
    )
