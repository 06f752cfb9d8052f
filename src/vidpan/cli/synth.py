"""``vidpan synth``: write the synthetic VPS/VSS benchmark (a thin wrapper over
:func:`vidpan.data.synthetic.generate`)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from vidpan.errors import InputError


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "synth",
        help="generate the synthetic benchmark in the VIPSeg / VSPW formats",
        description=(
            "Generate deterministic synthetic videos with VIPSeg panoptic and VSPW semantic ground "
            "truth (and optionally noisy predictions and .mp4 videos). See docs/synthetic.md."
        ),
    )
    p.add_argument(
        "--out", required=True, help="output directory (must be new, empty or an earlier synth output)"
    )
    p.add_argument("--videos", default="50", help="number of videos (default 50)")
    p.add_argument("--frames", default="24", help="frames per video (default 24)")
    p.add_argument("--size", default="192x320", help="frame size HxW (default 192x320)")
    p.add_argument("--seed", default="0", help="seed (default 0); same seed -> identical files")
    p.add_argument("--difficulty", default="medium", help="easy, medium or hard (default medium)")
    p.add_argument("--val-fraction", default="0.2", help="fraction of videos in the val split (default 0.2)")
    p.add_argument("--predictions", default=None, help="'noisy': also write a perturbed VPS + VSS prediction")
    p.add_argument("--mp4", action="store_true", help="also write each video as an H.264 .mp4")
    p.add_argument(
        "--coco", action="store_true", help="also write every frame as a COCO panoptic dataset (coco/)"
    )
    p.set_defaults(func=run)


def _int(name: str, text: str, *, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"{name}: expected an integer, got {text!r}") from None
    if value < minimum:
        raise InputError(f"{name}: expected an integer >= {minimum}, got {value}")
    return value


def _float(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{name}: expected a number, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    from vidpan.data.synthetic import generate, parse_size

    videos = _int("--videos", args.videos, minimum=1)
    frames = _int("--frames", args.frames, minimum=1)
    seed = _int("--seed", args.seed, minimum=0)
    size = parse_size(args.size)
    val_fraction = _float("--val-fraction", args.val_fraction)
    start = time.perf_counter()
    ds = generate(
        args.out,
        videos=videos,
        frames=frames,
        size=size,
        seed=seed,
        difficulty=args.difficulty,
        val_fraction=val_fraction,
        predictions=args.predictions,
        mp4=args.mp4,
        coco=args.coco,
    )
    elapsed = time.perf_counter() - start
    h, w = size
    print(
        f"wrote {videos} videos x {frames} frames at {h}x{w} ({args.difficulty}, seed {seed}) "
        f"to {ds.root} in {elapsed:.1f} s"
    )
    print(f"  splits: {len(ds.train_videos)} train, {len(ds.val_videos)} val")
    print(
        f"  VIPSeg: {ds.vipseg_root} (images, panomasks, panomasksRGB, panoptic_gt_VIPSeg_{{train,val}}.json)"
    )
    print(f"  VSPW:   {ds.vspw_root} (data/<video>/origin, data/<video>/mask)")
    if ds.pred_json is not None:
        print(f"  noisy predictions: {ds.pred_json}, {ds.pred_masks}, {ds.vss_pred}")
    if ds.coco_root is not None:
        print(
            f"  COCO:   {ds.coco_root} (annotations/panoptic_{{train,val}}2017.json, {{train,val}}2017, panoptic_*)"
        )
    if ds.mp4_dir is not None:
        print(f"  videos: {ds.mp4_dir}")
    print(f"  manifest: {ds.manifest}")
    return 0
