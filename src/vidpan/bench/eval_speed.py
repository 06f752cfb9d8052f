"""Evaluation speed benchmark: vidpan's VPQ + STQ + mIoU + VC8 + VC16 on a synthetic 720p case.

:func:`make_eval_case` writes a small synthetic case in the official on-disk formats (VIPSeg
``panomasksRGB`` + ``panoptic_gt_VIPSeg_val.json``, a ``pred.json`` + ``pan_pred`` submission, a
VSPW root with raw labels and VSS predictions): moving stuff bands and thing tracks, void regions,
and predictions with shifted masks, an identity switch, a missed track, a wrong class, a false
positive, a split stuff region, unlabeled patches and boundary noise. (It is self-contained for
now; the shared synthetic dataset generator will replace it behind the same function.)

:func:`benchmark_eval` times :func:`~vidpan.evaluation.evaluator.evaluate_vps` +
:func:`~vidpan.evaluation.evaluator.evaluate_vss` (median of several runs, serial and with a
process pool) and, when given a directory holding the official scripts (which vidpan does not
ship), times them on the same data with the same Python interpreter.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from vidpan.data.formats.rgb_id import color_to_id, id2rgb
from vidpan.data.formats.vipseg import Category
from vidpan.evaluation.evaluator import evaluate_vps, evaluate_vss
from vidpan.utils.atomic import atomic_directory

# VIPSeg's thing category ids (reference/metrics_reference.md §1.2); the other ids of 0..123 are stuff.
_THING_IDS = frozenset(
    [
        *(2, 4, 8, 10, 41, 43, 44, *range(46, 53), 54, 55, 56, *range(60, 66), 72, 74, *range(76, 80)),
        *(*range(82, 93), 95, 96, 97, *range(99, 103), *range(106, 110), *range(114, 119), 122, 123),
    ]
)
_NUM_CLASSES = 124


@dataclass(frozen=True)
class EvalCase:
    """Paths of a case in the official layouts (as ``fixtures/metrics_oracle/seed_*/data``)."""

    root: Path
    gt_json: Path  # VIPSeg_720P/panoptic_gt_VIPSeg_val.json
    gt_masks: Path  # VIPSeg_720P/panomasksRGB
    pred_json: Path  # pred/pred.json
    pred_masks: Path  # pred/pan_pred
    vss_root: Path  # VSPW (val.txt, data/<video>/mask)
    vss_pred: Path  # vss_pred/<video>/<frame>.png

    @classmethod
    def at(cls, root: str | Path) -> EvalCase:
        root = Path(root)
        return cls(
            root=root,
            gt_json=root / "VIPSeg_720P" / "panoptic_gt_VIPSeg_val.json",
            gt_masks=root / "VIPSeg_720P" / "panomasksRGB",
            pred_json=root / "pred" / "pred.json",
            pred_masks=root / "pred" / "pan_pred",
            vss_root=root / "VSPW",
            vss_pred=root / "vss_pred",
        )


def _categories(rng: np.random.Generator) -> list[Category]:
    colors = rng.choice(1 << 24, size=_NUM_CLASSES, replace=False).tolist()
    return [
        Category(i, f"class_{i}", i in _THING_IDS, (c & 255, (c >> 8) & 255, (c >> 16) & 255))
        for i, c in enumerate(colors)
    ]


def _render(
    T: int, H: int, W: int, rng: np.random.Generator, cats: list[Category]
) -> tuple[list[np.ndarray], list[np.ndarray], dict[int, int], dict[int, int]]:
    """One video's GT and predicted id maps ([H, W] int64 each, per frame) and id -> category."""
    stuff = [c.id for c in cats if not c.isthing]
    things = [c.id for c in cats if c.isthing]
    color_id = {c.id: color_to_id(c.color) for c in cats}  # stuff id = category colour
    yy, xx = np.mgrid[0:H, 0:W]
    bands = [int(c) for c in rng.choice(stuff, 3, replace=False)]
    used = {color_id[c] for c in bands}
    n_tracks = 6
    track_cat = [int(c) for c in rng.choice(things, n_tracks)]
    track_id: list[int] = []
    while len(track_id) < n_tracks + 3:
        v = int(rng.integers(1, 1 << 24))
        if v not in used:
            used.add(v)
            track_id.append(v)
    start = rng.uniform([0.15 * H, 0.1 * W], [0.85 * H, 0.9 * W], size=(n_tracks + 1, 2))
    vel = rng.uniform(-0.01, 0.01, size=(n_tracks + 1, 2)) * [H, W]
    radii = rng.uniform(0.05, 0.15, size=(n_tracks + 1, 2)) * [H, W]
    life = [
        (int(rng.integers(0, max(1, T // 3))), int(rng.integers(2 * T // 3, T + 1))) for _ in range(n_tracks)
    ]
    split_id = track_id[n_tracks + 1]  # second id of the split stuff band
    switch_id = track_id[n_tracks + 2]  # track 0's id after the identity switch
    cat_of = {color_id[c]: c for c in bands} | dict(zip(track_id[:n_tracks], track_cat, strict=True))
    pred_cat = dict(cat_of)
    pred_cat[split_id] = bands[0]
    pred_cat[switch_id] = track_cat[0]
    wrong = [c for c in things if c != track_cat[2]]
    pred_cat[track_id[2]] = int(rng.choice(wrong))  # track 2: wrong class
    fp_id = track_id[n_tracks]
    pred_cat[fp_id] = int(rng.choice(things))
    cat_of.pop(fp_id, None)

    gts, preds = [], []
    for t in range(T):
        wave = 0.03 * H * np.sin(2 * np.pi * (xx / W + 0.02 * t))
        gt = np.empty((H, W), np.int64)
        pred = np.empty((H, W), np.int64)
        for side, out, shift in (("gt", gt, 0.0), ("pred", pred, 0.01 * H)):
            b1 = 0.35 * H + 0.01 * H * t + wave + shift
            b2 = 0.7 * H - 0.005 * H * t + wave
            out[:] = color_id[bands[2]]
            out[yy < b2] = color_id[bands[1]]
            out[yy < b1] = color_id[bands[0]]
            if side == "pred":
                out[(yy < b1) & (xx > W // 2)] = split_id  # stuff band 0 split into two ids
            for k in range(n_tracks + 1):
                if k == n_tracks:
                    if side == "gt":
                        continue  # the false positive exists only in the prediction
                elif not life[k][0] <= t < life[k][1] or (side == "pred" and k == 1):
                    continue  # outside its lifetime, or track 1 missed by the prediction
                cy, cx = start[k] + vel[k] * t
                if side == "pred":
                    cy, cx = cy + 0.01 * H, cx - 0.01 * W
                inside = ((yy - cy) / radii[k, 0]) ** 2 + ((xx - cx) / radii[k, 1]) ** 2 < 1
                ident = track_id[k]
                if side == "pred" and k == 0 and t >= T // 2:
                    ident = switch_id
                out[inside] = ident
        # Boundary noise in the prediction: 1% of pixels take the label 3 pixels to the right.
        noisy = rng.random((H, W)) < 0.01
        pred[noisy] = np.roll(pred, -3, axis=1)[noisy]
        # GT void: annotation gaps along the band boundaries, and a rectangle in odd frames.
        gt[np.abs(yy - (0.35 * H + 0.01 * H * t + wave)) < 2] = 0
        if t % 2:
            gt[: H // 8, : W // 8] = 0
        if t % 4 == 1:
            pred[H // 2 : H // 2 + H // 10, W // 3 : W // 3 + W // 10] = 0  # unlabeled patch
        gts.append(gt)
        preds.append(pred)
    return gts, preds, cat_of, pred_cat


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _segments(ids: np.ndarray, cat_of: dict[int, int], stuff_first: set[int]) -> list[dict[str, int]]:
    values, counts = np.unique(ids, return_counts=True)
    segs = [
        {"id": int(v), "category_id": cat_of[int(v)], "iscrowd": 0, "area": int(n)}
        for v, n in zip(values.tolist(), counts.tolist(), strict=True)
        if v != 0
    ]
    # As the official conversion: stuff segments first (ascending raw value), then things.
    return sorted(segs, key=lambda s: (s["category_id"] not in stuff_first, s["category_id"], s["id"]))


def make_eval_case(
    out_dir: str | Path,
    *,
    videos: int = 4,
    frames: int = 20,
    height: int = 720,
    width: int = 1280,
    seed: int = 0,
) -> EvalCase:
    """Write a synthetic VPS + VSS evaluation case under ``out_dir`` (replaced atomically)."""
    rng = np.random.default_rng(seed)
    cats = _categories(rng)
    stuff_ids = {c.id for c in cats if not c.isthing}
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        case = EvalCase.at(tmp)
        gt_videos, gt_anns, pred_anns, names = [], [], [], []
        for v in range(videos):
            vid = f"{v + 1:03d}_synth_s{seed}"
            names.append(vid)
            gts, preds, cat_of, pred_cat = _render(frames, height, width, rng, cats)
            images, g_frames, p_frames = [], [], []
            for t, (gt, pred) in enumerate(zip(gts, preds, strict=True)):
                name = f"{5 * t:08d}.png"
                _save(case.gt_masks / vid / name, id2rgb(gt))
                _save(case.pred_masks / vid / name, id2rgb(pred))
                images.append({"id": name[:-4], "width": width, "height": height, "file_name": name})
                g_frames.append(
                    {
                        "image_id": name[:-4],
                        "file_name": name,
                        "segments_info": _segments(gt, cat_of, stuff_ids),
                    }
                )
                p_frames.append(
                    {
                        "image_id": name[:-4],
                        "file_name": name,
                        "segments_info": _segments(pred, pred_cat, stuff_ids),
                    }
                )
                # VSS: raw GT labels (class + 1; GT void -> 0 'others', the odd-frame rectangle 255).
                lut_ids = np.array(sorted(cat_of), np.int64)
                lut_cls = np.array([cat_of[i] for i in lut_ids.tolist()], np.int64)
                g_cls = np.where(gt > 0, lut_cls[np.searchsorted(lut_ids, gt)] + 1, 0)
                if t % 2:
                    g_cls[: height // 8, : width // 8] = 255
                p_ids = np.array(sorted(pred_cat), np.int64)
                p_cls_lut = np.array([pred_cat[i] for i in p_ids.tolist()], np.int64)
                idx = np.minimum(np.searchsorted(p_ids, pred), len(p_ids) - 1)
                p_cls = np.where(pred > 0, p_cls_lut[idx], 0)
                _save(case.vss_root / "data" / vid / "mask" / name, g_cls.astype(np.uint8))
                _save(case.vss_pred / vid / name, p_cls.astype(np.uint8))
            gt_videos.append({"video_id": vid, "images": images})
            gt_anns.append({"video_id": vid, "annotations": g_frames})
            pred_anns.append({"video_id": vid, "annotations": p_frames})
        case.gt_json.write_text(
            json.dumps(
                {"videos": gt_videos, "annotations": gt_anns, "categories": [c.to_json() for c in cats]}
            )
        )
        case.pred_json.write_text(json.dumps({"annotations": pred_anns}))
        (case.vss_root / "val.txt").write_text("".join(f"{n}\n" for n in names))
    return EvalCase.at(out_dir)


# ------------------------------------------------------------------------------------------
# Timing
# ------------------------------------------------------------------------------------------


@dataclass
class Timing:
    """Seconds per run of the VPS part (VPQ + STQ) and the VSS part (mIoU + VC8 + VC16)."""

    vps: list[float] = field(default_factory=list)
    vss: list[float] = field(default_factory=list)

    @property
    def total(self) -> list[float]:
        return [a + b for a, b in zip(self.vps, self.vss, strict=True)]

    def medians(self) -> tuple[float, float, float]:
        return statistics.median(self.vps), statistics.median(self.vss), statistics.median(self.total)


def time_vidpan(case: EvalCase, *, workers: int, runs: int) -> tuple[Timing, dict[str, float | None]]:
    """Time vidpan on ``case``; returns the timing and the metrics of the last run."""
    timing = Timing()
    metrics: dict[str, float | None] = {}
    for _ in range(runs):
        t0 = time.perf_counter()
        vps = evaluate_vps(case.gt_json, case.gt_masks, case.pred_json, case.pred_masks, workers=workers)
        t1 = time.perf_counter()
        vss = evaluate_vss(case.vss_root, case.vss_pred, workers=workers)
        t2 = time.perf_counter()
        timing.vps.append(t1 - t0)
        timing.vss.append(t2 - t1)
        metrics = {**vps.to_json(), **vss.to_json()}
    return timing, metrics


def official_commands(
    case: EvalCase, official_dir: Path, *, python: str, num_processes: int
) -> dict[str, list[str]]:
    """The official command lines (scripts from VIPSeg-Dataset ``ClipPanoFCN``, DVIS_Plus ``utils``)."""
    submit = str(case.pred_json.parent)
    return {
        "vpq": [
            python, str(official_dir / "eval_vpq_vspw.py"), "--submit_dir", submit,
            "--truth_dir", str(case.gt_masks), "--pan_gt_json_file", str(case.gt_json),
            "--num_processes", str(num_processes),
        ],
        "stq": [
            python, str(official_dir / "eval_stq_vspw.py"), "--submit_dir", submit,
            "--truth_dir", str(case.gt_masks), "--pan_gt_json_file", str(case.gt_json),
        ],
        "miou": [python, str(official_dir / "eval_miou_vspw.py"), str(case.vss_root), str(case.vss_pred)],
        "vc": [python, str(official_dir / "eval_vc_vspw.py"), str(case.vss_root), str(case.vss_pred)],
    }  # fmt: skip


_PATTERNS = {
    "VPQ": ("vpq", None),
    "STQ": ("stq", r"STQ : (\S+)"),
    "AQ": ("stq", r"AQ :(\S+)"),
    "SQ": ("stq", r"IoU:(\S+)"),
    "mIoU": ("miou", r"mIoU:([^,\s]+)"),
    "fwIoU": ("miou", r"fwIoU: (\S+)"),
    "VC8": ("vc", r"VC8 score: (\S+)"),
}


def time_official(
    case: EvalCase, official_dir: Path, *, runs: int, python: str, num_processes: int
) -> tuple[Timing, dict[str, float | None]]:
    """Time the official scripts (VPQ, STQ; mIoU, VC8+VC16) on ``case``; parse their headline
    numbers (DVIS++'s VC script prints a wrong VC16, so only its VC8 is parsed)."""
    cmds = official_commands(case, official_dir, python=python, num_processes=num_processes)
    timing = Timing()
    outputs: dict[str, str] = {}
    for _ in range(runs):
        spent: dict[str, float] = {}
        for name, cmd in cmds.items():
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=official_dir, check=False)
            spent[name] = time.perf_counter() - t0
            if proc.returncode != 0:
                raise RuntimeError(f"official {name} failed:\n{proc.stderr[-2000:]}")
            outputs[name] = proc.stdout
        timing.vps.append(spent["vpq"] + spent["stq"])
        timing.vss.append(spent["miou"] + spent["vc"])
    metrics: dict[str, float | None] = {}
    final = case.pred_json.parent / "vpq-final.txt"
    for key, (name, pattern) in _PATTERNS.items():
        text = final.read_text() if pattern is None and final.is_file() else outputs.get(name, "")
        m = re.search(r"vpq_all:(\S+)" if pattern is None else pattern, text)
        metrics[key] = float(m.group(1)) if m else None
    return timing, metrics


@dataclass(frozen=True)
class EvalBenchResult:
    """Timings (seconds per run) and the metrics each implementation produced."""

    description: str
    vidpan_serial: Timing
    vidpan_parallel: Timing
    workers: int
    official: Timing | None
    metrics_serial: dict[str, float | None]
    metrics_parallel: dict[str, float | None]
    metrics_official: dict[str, float | None]

    def table(self) -> str:
        rows = [
            ("vidpan serial", self.vidpan_serial),
            (f"vidpan workers={self.workers}", self.vidpan_parallel),
        ]
        if self.official is not None:
            rows.append(("official scripts", self.official))
        lines = [self.description, f"{'':<22}{'VPQ+STQ':>10}{'mIoU+VC':>10}{'total':>10}   (median seconds)"]
        for name, tm in rows:
            a, b, c = tm.medians()
            lines.append(f"{name:<22}{a:>10.3f}{b:>10.3f}{c:>10.3f}")
        if self.official is not None:
            ref = self.official.medians()
            for name, tm in rows[:2]:
                mine = tm.medians()
                lines.append(
                    f"{'speed-up ' + name.split(' ', 1)[1]:<22}"
                    + "".join(f"{r / m:>9.1f}x" for r, m in zip(ref, mine, strict=True))
                )
        same = self.metrics_serial == self.metrics_parallel
        lines.append(f"serial and workers={self.workers} metrics identical: {same}")
        lines.append(
            "metrics: " + ", ".join(f"{k} {v:.6g}" for k, v in self.metrics_serial.items() if v is not None)
        )
        if self.metrics_official:
            diffs = []
            for k, v in self.metrics_official.items():
                mine_v = self.metrics_serial.get(k)
                if v is not None and mine_v is not None:
                    tol = 5e-5 if k == "VPQ" else 0.0  # vpq-final.txt is rounded to 4 decimals
                    diffs.append(
                        f"{k} {abs(mine_v - v):.2g}{'' if abs(mine_v - v) <= tol + 1e-12 * abs(v) else ' (!)'}"
                    )
            lines.append("|vidpan - official| (printed precision): " + ", ".join(diffs))
        return "\n".join(lines)


def benchmark_eval(
    case: EvalCase,
    *,
    runs: int = 3,
    workers: int = 2,
    official_dir: str | Path | None = None,
    official_processes: int = 2,
    description: str = "",
) -> EvalBenchResult:
    """Time vidpan (serial and with ``workers`` processes) and optionally the official scripts."""
    # Serial and parallel runs alternate, so that load from other jobs affects both alike.
    serial, parallel = Timing(), Timing()
    m_serial: dict[str, float | None] = {}
    m_parallel: dict[str, float | None] = {}
    for _ in range(runs):
        for timing, n in ((serial, 1), (parallel, workers)):
            t, m = time_vidpan(case, workers=n, runs=1)
            timing.vps += t.vps
            timing.vss += t.vss
            if n == 1:
                m_serial = m
            else:
                m_parallel = m
    official: Timing | None = None
    m_official: dict[str, float | None] = {}
    if official_dir is not None:
        official, m_official = time_official(
            case, Path(official_dir), runs=runs, python=sys.executable, num_processes=official_processes
        )
    return EvalBenchResult(description, serial, parallel, workers, official, m_serial, m_parallel, m_official)
