"""Build small VPS / VSS evaluation cases on disk, in the official formats, from id maps."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidpan.data.formats.rgb_id import write_id_png
from vidpan.data.formats.vspw import write_label_png

_SHARED = Path(os.environ.get("VIDPAN_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
#: The official metrics oracle cases (``seed_*`` directories with a ``results.json``).
ORACLE = _SHARED / "fixtures" / "metrics_oracle"
SEEDS = sorted(p.name for p in ORACLE.glob("seed_*") if (p / "results.json").is_file())

# A small category list: ids 0..5, things 2, 3, 4.
CATEGORIES = [
    {"id": i, "name": f"c{i}", "isthing": int(i in (2, 3, 4)), "color": [10 * i, 20, 30]} for i in range(6)
]


@dataclass(frozen=True)
class VPSCase:
    gt_json: Path
    gt_masks: Path
    pred_json: Path
    pred_masks: Path

    def args(self) -> list[str]:
        return [
            "--gt-json",
            str(self.gt_json),
            "--gt-masks",
            str(self.gt_masks),
            "--pred-json",
            str(self.pred_json),
            "--pred-masks",
            str(self.pred_masks),
        ]

    def paths(self) -> tuple[Path, Path, Path, Path]:
        return self.gt_json, self.gt_masks, self.pred_json, self.pred_masks


def _segments(
    ids: np.ndarray, cats: Mapping[int, int], crowd: set[int], order: Sequence[int] | None
) -> list[dict]:
    values, counts = np.unique(ids, return_counts=True)
    area = dict(zip(values.tolist(), counts.tolist(), strict=True))
    listed = [v for v in (order if order is not None else sorted(area)) if v in area and v != 0]
    return [{"id": v, "category_id": cats[v], "iscrowd": int(v in crowd), "area": area[v]} for v in listed]


def write_vps_case(
    root: Path,
    videos: Mapping[str, tuple[Sequence[np.ndarray], Sequence[np.ndarray]]],
    gt_cats: Mapping[int, int] | Sequence[Mapping[int, int]],
    pred_cats: Mapping[int, int] | Sequence[Mapping[int, int]],
    *,
    categories: Sequence[dict] = CATEGORIES,
    crowd: set[int] = frozenset(),  # type: ignore[assignment]
    gt_order: Sequence[int] | None = None,
) -> VPSCase:
    """Write GT + prediction for ``videos`` = {video id: (GT id maps, pred id maps)}.

    ``gt_cats`` / ``pred_cats`` map id -> category, either for the whole case or per frame (a
    list, one mapping per frame, used for every video). ``gt_order`` orders GT ``segments_info``.
    """
    case = VPSCase(root / "gt.json", root / "gt", root / "pred" / "pred.json", root / "pred" / "pan_pred")
    gt_videos, gt_anns, pred_anns = [], [], []
    for vid, (gts, preds) in videos.items():
        images, g_frames, p_frames = [], [], []
        for t, (g, p) in enumerate(zip(gts, preds, strict=True)):
            name = f"{t:05d}.png"
            write_id_png(case.gt_masks / vid / name, g)
            write_id_png(case.pred_masks / vid / name, p)
            gc = gt_cats[t] if isinstance(gt_cats, Sequence) else gt_cats
            pc = pred_cats[t] if isinstance(pred_cats, Sequence) else pred_cats
            images.append({"id": name[:-4], "width": g.shape[1], "height": g.shape[0], "file_name": name})
            g_frames.append(
                {"image_id": name[:-4], "file_name": name, "segments_info": _segments(g, gc, crowd, gt_order)}
            )
            p_frames.append(
                {"image_id": name[:-4], "file_name": name, "segments_info": _segments(p, pc, set(), None)}
            )
        gt_videos.append({"video_id": vid, "images": images})
        gt_anns.append({"video_id": vid, "annotations": g_frames})
        pred_anns.append({"video_id": vid, "annotations": p_frames})
    case.gt_json.write_text(
        json.dumps({"videos": gt_videos, "annotations": gt_anns, "categories": list(categories)})
    )
    case.pred_json.parent.mkdir(parents=True, exist_ok=True)
    case.pred_json.write_text(json.dumps({"annotations": pred_anns}))
    return case


def write_vss_case(
    root: Path, videos: Mapping[str, tuple[Sequence[np.ndarray], Sequence[np.ndarray]]]
) -> Path:
    """Write a VSPW root (``data/<video>/mask``, ``val.txt``) and predictions under ``root/pred``."""
    for vid, (gts, preds) in videos.items():
        for t, (g, p) in enumerate(zip(gts, preds, strict=True)):
            write_label_png(root / "data" / vid / "mask" / f"{t:05d}.png", g)
            write_label_png(root / "pred" / vid / f"{t:05d}.png", p)
    (root / "val.txt").write_text("".join(f"{v}\n" for v in videos))
    return root


def random_vps_videos(
    rng: np.random.Generator, *, num_videos: int = 2, max_frames: int = 5, size: tuple[int, int] = (6, 8)
) -> tuple[dict[str, tuple[list[np.ndarray], list[np.ndarray]]], dict[int, int], dict[int, int]]:
    """Random GT tracks (rectangles, void) and noisy predictions (id switches, shifts, class errors)."""
    H, W = size
    gt_cats: dict[int, int] = {}
    pred_cats: dict[int, int] = {}
    videos = {}
    for v in range(num_videos):
        tracks = [
            (int(rng.integers(1, 1 << 24)), int(rng.integers(0, 6))) for _ in range(int(rng.integers(1, 5)))
        ]
        extra = [(int(rng.integers(1, 1 << 24)), int(rng.integers(0, 6))) for _ in range(3)]
        gt_cats.update(tracks)
        pred_cats.update(tracks)
        pred_cats.update(extra)
        gts, preds = [], []
        for _ in range(int(rng.integers(1, max_frames + 1))):
            g = np.zeros((H, W), np.int64)
            for tid, _c in tracks:
                y, x = rng.integers(0, H), rng.integers(0, W)
                g[y : y + rng.integers(1, H + 1), x : x + rng.integers(1, W + 1)] = tid
            p = np.roll(g, int(rng.integers(-1, 2)), axis=1)
            for tid, _c in extra:
                if rng.random() < 0.5:
                    y, x = rng.integers(0, H), rng.integers(0, W)
                    p[y : y + rng.integers(1, H), x : x + rng.integers(1, W)] = tid
            gts.append(g)
            preds.append(p)
        videos[f"v{v}"] = (gts, preds)
    return videos, gt_cats, pred_cats
