"""COCO panoptic quality (PQ / SQ / RQ), as panopticapi's ``pq_compute`` computes it.

The seed paper's Table 2 metric for the COCO stage. Inputs are the COCO panoptic format: a GT and
a prediction JSON (``images``, ``annotations`` with ``image_id``, ``file_name`` and
``segments_info``, ``categories`` in the GT) and two folders of RGB-id PNGs (id = R + 256 G +
65536 B, 0 = void). Written from panopticapi ``panopticapi/evaluation.py`` (facts, no code):

- images are paired by ``image_id`` (every GT image needs a prediction; extra predictions are
  ignored); the category list is the GT JSON's;
- prediction areas are pixel counts of the PNG, GT areas are the GT JSON's ``area`` fields;
- a (GT, pred) pair of the same category is a match when IoU > 0.5, with
  IoU = |g ∩ p| / (|p| + area_g − |g ∩ p| − |p ∩ void|) (prediction pixels on GT void are not
  counted); crowd GT segments never match;
- an unmatched, non-crowd GT segment is a false negative (also when it is listed in the JSON but
  absent from the PNG); an unmatched prediction is a false positive unless more than half of it
  lies on GT void plus the crowd region of its own category;
- per category PQ = Σ IoU / (TP + FP/2 + FN/2), SQ = Σ IoU / TP, RQ = TP / (TP + FP/2 + FN/2);
  the averages (All / Things / Stuff) are over the categories with TP + FP + FN > 0.

Differences, on purpose: bad input (a PNG id missing from ``segments_info``, a listed id absent
from the PNG, an unknown category, a missing prediction) is an :class:`InputError` naming the file
instead of a ``KeyError``/``Exception`` from a worker; an average over no category is NaN instead
of ``ZeroDivisionError``. No torch import: ``vidpan eval coco-panoptic`` stays light.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidpan.data.formats.coco_panoptic import CocoPanopticImage
from vidpan.data.formats.rgb_id import read_id_png
from vidpan.data.formats.vipseg import (
    Category,
    SegmentInfo,
    parse_categories,
    parse_segments,
    read_json,
    require_field,
)
from vidpan.errors import InputError

VOID = 0
OFFSET = 1 << 32  # pair key = gt_id * OFFSET + pred_id (ids are < 2^24)
MATCH_IOU = 0.5


@dataclass
class PQStat:
    """Accumulated counts of one category: Σ IoU of the matches, TP, FP, FN."""

    iou: float = 0.0
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __iadd__(self, other: PQStat) -> PQStat:
        self.iou += other.iou
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        return self


@dataclass(frozen=True)
class PQSummary:
    """PQ / SQ / RQ (0..1) averaged over ``n`` categories (NaN when n = 0)."""

    pq: float
    sq: float
    rq: float
    n: int


@dataclass(frozen=True)
class CocoPanopticResult:
    """``All`` / ``Things`` / ``Stuff`` averages and the per-category values and counts."""

    all: PQSummary
    things: PQSummary
    stuff: PQSummary
    per_class: dict[int, dict[str, float]]  # category id -> pq, sq, rq (0..1), tp, fp, fn
    images: int

    def to_json(self, *, per_class: bool = False) -> dict[str, Any]:
        """``PQ SQ RQ PQ_th SQ_th RQ_th PQ_st SQ_st RQ_st`` in percent, ``N N_th N_st``, ``images``."""
        out: dict[str, Any] = {}
        for suffix, s in (("", self.all), ("_th", self.things), ("_st", self.stuff)):
            for name in ("pq", "sq", "rq"):
                value = 100.0 * getattr(s, name)
                out[f"{name.upper()}{suffix}"] = None if np.isnan(value) else value
        out.update(N=self.all.n, N_th=self.things.n, N_st=self.stuff.n, images=self.images)
        if per_class:
            out["per_class"] = {str(k): v for k, v in self.per_class.items()}
        return out


@dataclass
class PanopticJson:
    """A COCO panoptic JSON: its annotations by ``image_id`` (and its categories, for the GT)."""

    path: Path
    annotations: dict[int | str, CocoPanopticImage]
    order: list[int | str]
    categories: list[Category] = field(default_factory=list)


def read_panoptic_json(path: str | Path, *, require_categories: bool) -> PanopticJson:
    """Parse a COCO panoptic JSON; image sizes come from ``images`` when present."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError("top level: expected an object", path=path)
    anns = require_field(data, "annotations", list, "top level", path)
    categories: list[Category] = []
    if require_categories:
        categories = parse_categories(require_field(data, "categories", list, "top level", path), source=path)
    sizes: dict[int | str, tuple[int, int]] = {}
    for i, im in enumerate(data.get("images", []) or []):
        image_id = require_field(im, "id", (int, str), f"images[{i}]", path)
        if "width" in im and "height" in im:
            sizes[image_id] = (int(im["height"]), int(im["width"]))
    out: dict[int | str, CocoPanopticImage] = {}
    order: list[int | str] = []
    for i, a in enumerate(anns):
        where = f"annotations[{i}]"
        image_id = require_field(a, "image_id", (int, str), where, path)
        if image_id in out:
            raise InputError(f"{where}.image_id: {image_id!r} is annotated twice", path=path)
        segments = parse_segments(
            require_field(a, "segments_info", list, where, path), f"{where}.segments_info", path
        )
        ids = [s.id for s in segments]
        if len(set(ids)) != len(ids):
            raise InputError(f"{where}.segments_info: a segment id is listed twice", path=path)
        h, w = sizes.get(image_id, (0, 0))
        out[image_id] = CocoPanopticImage(
            image_id, "", str(require_field(a, "file_name", str, where, path)), w, h, segments
        )
        order.append(image_id)
    return PanopticJson(path, out, order, categories)


def image_pq_stats(
    gt_ids: np.ndarray,
    gt_segments: list[SegmentInfo],
    pred_ids: np.ndarray,
    pred_segments: list[SegmentInfo],
    categories: Mapping[int, Category],
    *,
    where: str = "",
) -> dict[int, PQStat]:
    """Per-category counts of one image (panopticapi ``pq_compute_single_core`` for one pair).

    Args:
        gt_ids, pred_ids: [H, W] id maps (0 = void).
        gt_segments, pred_segments: the JSON ``segments_info`` of each (GT ``area`` is used).
        categories: the GT category list by id.
        where: named in error messages (the prediction PNG).
    """
    if gt_ids.shape != pred_ids.shape:
        raise InputError(f"{where}: prediction size {pred_ids.shape} differs from the GT {gt_ids.shape}")
    gt = {s.id: s for s in gt_segments}
    pred = {s.id: s for s in pred_segments}
    labels, counts = np.unique(pred_ids, return_counts=True)
    pred_area: dict[int, int] = {}
    for label, count in zip(labels.tolist(), counts.tolist(), strict=True):
        if label == VOID and label not in pred:
            continue
        if label not in pred:
            raise InputError(f"{where}: segment id {label} is in the PNG but not in `segments_info`")
        if pred[label].category_id not in categories:
            raise InputError(f"{where}: segment {label} has unknown category_id {pred[label].category_id}")
        pred_area[label] = count
    absent = sorted(set(pred) - set(pred_area))
    if absent:
        raise InputError(f"{where}: segment ids {absent} are in `segments_info` but not in the PNG")

    keys, inter = np.unique(
        gt_ids.astype(np.uint64) * OFFSET + pred_ids.astype(np.uint64), return_counts=True
    )
    pairs = {
        (int(k // OFFSET), int(k % OFFSET)): int(n)
        for k, n in zip(keys.tolist(), inter.tolist(), strict=True)
    }
    stats: dict[int, PQStat] = {}

    def stat(cat: int) -> PQStat:
        return stats.setdefault(cat, PQStat())

    gt_matched: set[int] = set()
    pred_matched: set[int] = set()
    for (g, p), n in pairs.items():
        if g not in gt or p not in pred:
            continue
        gs, ps = gt[g], pred[p]
        if gs.iscrowd == 1 or gs.category_id != ps.category_id:
            continue
        union = pred_area[p] + gs.area - n - pairs.get((VOID, p), 0)
        iou = n / union
        if iou > MATCH_IOU:
            s = stat(gs.category_id)
            s.tp += 1
            s.iou += iou
            gt_matched.add(g)
            pred_matched.add(p)
    crowd_by_category: dict[int, int] = {}
    for g, gs in gt.items():
        if g in gt_matched:
            continue
        if gs.iscrowd == 1:
            crowd_by_category[gs.category_id] = g  # the last crowd segment of a category, as panopticapi
            continue
        stat(gs.category_id).fn += 1
    for p, ps in pred.items():
        if p in pred_matched:
            continue
        ignored = pairs.get((VOID, p), 0)
        if ps.category_id in crowd_by_category:
            ignored += pairs.get((crowd_by_category[ps.category_id], p), 0)
        if ignored / pred_area[p] > 0.5:
            continue
        stat(ps.category_id).fp += 1
    return stats


def pq_average(
    stats: Mapping[int, PQStat], categories: Mapping[int, Category], isthing: bool | None
) -> tuple[PQSummary, dict[int, dict[str, float]]]:
    """Average over the categories (of one kind) with TP + FP + FN > 0 (panopticapi ``pq_average``)."""
    pq = sq = rq = 0.0
    n = 0
    per_class: dict[int, dict[str, float]] = {}
    for cat_id, cat in categories.items():
        if isthing is not None and bool(cat.isthing) != isthing:
            continue
        s = stats.get(cat_id, PQStat())
        counts = {"tp": s.tp, "fp": s.fp, "fn": s.fn}
        if s.tp + s.fp + s.fn == 0:
            per_class[cat_id] = {"pq": 0.0, "sq": 0.0, "rq": 0.0, **counts}
            continue
        n += 1
        denom = s.tp + 0.5 * s.fp + 0.5 * s.fn
        values = {"pq": s.iou / denom, "sq": s.iou / s.tp if s.tp else 0.0, "rq": s.tp / denom}
        per_class[cat_id] = {**values, **counts}
        pq, sq, rq = pq + values["pq"], sq + values["sq"], rq + values["rq"]
    if n == 0:
        return PQSummary(float("nan"), float("nan"), float("nan"), 0), per_class
    return PQSummary(pq / n, sq / n, rq / n, n), per_class


def evaluate_coco_panoptic(
    gt_json: str | Path,
    gt_folder: str | Path,
    pred_json: str | Path,
    pred_folder: str | Path,
) -> CocoPanopticResult:
    """PQ of a COCO-format panoptic prediction against the GT (see the module docstring)."""
    gt = read_panoptic_json(gt_json, require_categories=True)
    pred = read_panoptic_json(pred_json, require_categories=False)
    gt_dir, pred_dir = Path(gt_folder), Path(pred_folder)
    for folder, what in ((gt_dir, "GT"), (pred_dir, "prediction")):
        if not folder.is_dir():
            raise InputError(f"{what} PNG folder not found", path=folder)
    categories = {c.id: c for c in gt.categories}
    missing = [i for i in gt.order if i not in pred.annotations]
    if missing:
        raise InputError(f"no prediction for {len(missing)} GT images (first: {missing[:5]})", path=pred.path)
    total: dict[int, PQStat] = {}
    for image_id in gt.order:
        g, p = gt.annotations[image_id], pred.annotations[image_id]
        size = (g.height, g.width) if g.height and g.width else None
        gt_ids = read_id_png(gt_dir / g.png_name, expected_size=size)
        pred_ids = read_id_png(pred_dir / p.png_name, expected_size=gt_ids.shape)
        stats = image_pq_stats(
            gt_ids, g.segments, pred_ids, p.segments, categories, where=str(pred_dir / p.png_name)
        )
        for cat, s in stats.items():
            total.setdefault(cat, PQStat())
            total[cat] += s
    all_, per_class = pq_average(total, categories, None)
    things, _ = pq_average(total, categories, True)
    stuff, _ = pq_average(total, categories, False)
    return CocoPanopticResult(all_, things, stuff, per_class, images=len(gt.order))


def format_coco_panoptic(result: CocoPanopticResult) -> str:
    """panopticapi's table: PQ, SQ, RQ (percent) and N for All / Things / Stuff."""
    lines = [f"{'':10s}| {'PQ':>6s} {'SQ':>6s} {'RQ':>6s} {'N':>5s}", "-" * 38]
    for name, s in (("All", result.all), ("Things", result.things), ("Stuff", result.stuff)):
        cells = " ".join("   n/a" if np.isnan(v) else f"{100 * v:6.2f}" for v in (s.pq, s.sq, s.rq))
        lines.append(f"{name:10s}| {cells} {s.n:5d}")
    lines.append(f"{result.images} images")
    return "\n".join(lines)


__all__ = [
    "CocoPanopticResult",
    "PQStat",
    "PQSummary",
    "evaluate_coco_panoptic",
    "format_coco_panoptic",
    "image_pq_stats",
    "pq_average",
]
