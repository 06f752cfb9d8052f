"""``make demo`` / ``python -m vidpan.demo``: segment a real video file with the shipped model.

1. Generate a small synthetic benchmark with a seed never used in training (2 videos, 24
   frames, 128x224, GT in the VIPSeg format, and the videos as H.264 ``.mp4`` files).
2. Run ``vidpan segment <video>.mp4 --weights <shipped model> --mode offline --overlay``: the
   segmenter, the online tracker and the offline refiner, writing the overlay video, the
   VIPSeg-format predictions and per-frame JSON.
3. Score the predictions against the ground truth with ``vidpan eval vps`` and print the table.

Everything goes under ``--out`` (default ``demo_out``). Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

from vidpan.cli.main import main as vidpan
from vidpan.data.formats.vipseg import read_panoptic_video_json, subset, write_panoptic_video_json
from vidpan.data.synthetic import generate
from vidpan.errors import InputError

SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "assets" / "synthetic_tiny" / "model.safetensors"
DEMO_SEED = 1234  # the shipped model was trained on seed 0 and scored on seed 1


def run_demo(out: Path, *, weights: Path = SHIPPED_WEIGHTS, mode: str = "offline") -> int:
    start = time.perf_counter()
    if not weights.is_file():
        raise InputError(
            "the shipped model is missing (is the package installed from a full clone?)", path=weights
        )
    print(f"[1/3] generating a synthetic test video (seed {DEMO_SEED}) ...", flush=True)
    data = generate(
        out / "data", videos=2, frames=24, size=(128, 224), seed=DEMO_SEED, val_fraction=1.0, mp4=True
    )
    assert data.mp4_dir is not None
    video_id = data.val_videos[0]
    video = data.mp4_dir / f"{video_id}.mp4"

    print(f"[2/3] vidpan segment {video} --weights {weights} --mode {mode} --overlay", flush=True)
    predictions = out / "segment"
    code = vidpan(
        ["segment", str(video), "--weights", str(weights), "--mode", mode, "--overlay", "--out", str(predictions),
         "--no-progress"]
    )  # fmt: skip
    if code:
        return code

    print("[3/3] vidpan eval vps (against the video's ground truth) ...", flush=True)
    gt_json, gt_masks = _gt_by_position(data.gt_json_val, data.gt_masks, video_id, out / "gt")
    scores = out / "scores.json"
    code = vidpan(
        ["eval", "vps", "--gt-json", str(gt_json), "--gt-masks", str(gt_masks),
         "--pred-json", str(predictions / "pred.json"), "--pred-masks", str(predictions / "pan_pred"),
         "--json", str(scores)]
    )  # fmt: skip
    if code:
        return code
    print()
    print(f"demo finished in {time.perf_counter() - start:.0f} s. Outputs:")
    print(f"  input video:        {video}")
    print(f"  overlay video:      {predictions / 'overlay' / (video_id + '.mp4')}")
    print(f"  VIPSeg predictions: {predictions / 'pred.json'} + {predictions / 'pan_pred'}/")
    print(f"  per-frame segments: {predictions / 'frames.jsonl'}")
    print(f"  scores:             {scores}")
    print(f"  ground truth:       {data.vipseg_root} (frames named by position: {out / 'gt'})")
    return 0


def _gt_by_position(gt_json: Path, gt_masks: Path, video_id: str, out: Path) -> tuple[Path, Path]:
    """The video's GT with its frames named by position (``00000000.png``, ``00000001.png``, ...).

    The ``.mp4`` holds exactly the annotated frames, in order, and ``vidpan segment`` names the
    frames of a video file by position; VIPSeg GT names them by source frame number (every 5th),
    so frame 4 of the GT is ``00000020.png`` while prediction ``00000020.png`` is frame 20.
    Returns (GT JSON, GT masks root).
    """
    dataset = subset(read_panoptic_video_json(gt_json), [video_id])
    (video,) = dataset.videos
    masks = out / "panomasksRGB" / video_id
    masks.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(video.frames):
        name = f"{i:08d}.png"
        shutil.copyfile(gt_masks / video_id / frame.file_name, masks / name)
        video.frames[i] = replace(frame, id=f"{i:08d}", file_name=name)
    path = out / "gt_demo.json"
    write_panoptic_video_json(path, dataset)
    return path, out / "panomasksRGB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vidpan.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("demo_out"))
    parser.add_argument("--weights", type=Path, default=SHIPPED_WEIGHTS)
    parser.add_argument("--mode", default="offline", choices=["online", "offline", "long", "minvis"])
    args = parser.parse_args(argv)
    try:
        return run_demo(args.out, weights=args.weights, mode=args.mode)
    except InputError as exc:
        print(f"vidpan demo: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
