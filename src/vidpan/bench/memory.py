"""``vidpan bench memory``: peak RSS of video inference as a function of video length.

Each measurement runs in a fresh child process (so each has its own RSS high-water mark) that
writes a synthetic H.264 video of N frames, loads a random-weight model of the given preset,
segments the video with :class:`~vidpan.inference.predictor.VideoPredictor` writing the usual
outputs (VIPSeg submission + per-frame JSON) into a temporary directory, and reports
``ru_maxrss``. The claim checked: in ``online`` and ``long`` modes the peak for a long video is
within a few percent of the peak for a short one (memory does not grow with video length).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np


@dataclass
class MemoryPoint:
    mode: str
    postprocess: str
    frames: int
    peak_rss_mb: float
    seconds: float


def write_moving_video(path: Path, frames: int, height: int, width: int, *, fps: int = 24) -> None:
    """An H.264 video of moving coloured discs on a gradient (streamed, nothing kept in memory)."""
    import av

    yy, xx = np.mgrid[0:height, 0:width]
    background = np.stack(
        [xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), np.full_like(xx, 96)], -1
    )
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(frames):
            img = background.copy()
            for k in range(4):
                cy = (0.5 + 0.35 * np.sin(0.05 * t + k)) * height
                cx = ((0.15 * k + 0.01 * t) % 1.0) * width
                disc = (yy - cy) ** 2 + (xx - cx) ** 2 < (0.12 * height) ** 2
                img[disc] = (60 * k + 40, 200 - 40 * k, 90 + 30 * k)
            frame = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _child(args: argparse.Namespace) -> None:
    """Runs in the child process: segment one video, print a JSON line with the peak RSS.

    The allocator is set up as by the ``vidpan`` command (:func:`vidpan.utils.allocator.tune_malloc`).
    """
    import time

    from vidpan.utils.allocator import tune_malloc

    tune_malloc()

    import torch

    from vidpan.bench.timing import peak_rss_mb
    from vidpan.config import load_config
    from vidpan.inference.output import OutputDirectory
    from vidpan.inference.predictor import VideoPredictor
    from vidpan.inference.writers import FrameJSONWriter, VIPSegSubmissionWriter
    from vidpan.models.build import build_dvis

    torch.manual_seed(0)
    # Thresholds 0 keep every query, so post-processing and the writers do real work with
    # random weights (at the reference's 0.8 nothing would survive).
    config = load_config(
        args.preset,
        [
            f"inference.short_side={args.short_side}",
            "inference.object_mask_threshold=0.0",
            "inference.overlap_threshold=0.0",
        ],
    )
    model = build_dvis(config.model)
    predictor = VideoPredictor(model, config)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        with OutputDirectory(Path(tmp) / "out") as out:
            writers = [VIPSegSubmissionWriter(out, labels=predictor.categories), FrameJSONWriter(out)]
            predictor.predict(args.video, mode=args.mode, postprocess=args.postprocess, writers=writers)
        seconds = time.perf_counter() - start
    print(json.dumps({"peak_rss_mb": peak_rss_mb(), "seconds": seconds}))


def measure(
    *,
    frame_counts: tuple[int, ...] = (50, 400),
    runs: tuple[tuple[str, str], ...] = (("online", "video"), ("online", "stream"), ("long", "video")),
    size: tuple[int, int] = (240, 320),
    preset: str = "tiny",
) -> list[MemoryPoint]:
    """Peak RSS for every (mode, post-processing) and video length, each in a fresh process."""
    points = []
    with tempfile.TemporaryDirectory() as tmp:
        for frames in frame_counts:
            video = Path(tmp) / f"video_{frames}.mp4"
            write_moving_video(video, frames, *size)
            for mode, postprocess in runs:
                cmd = [sys.executable, "-m", "vidpan.bench.memory", "--child", "--video", str(video),
                       "--mode", mode, "--postprocess", postprocess, "--preset", preset,
                       "--short-side", str(min(size))]  # fmt: skip
                done = subprocess.run(cmd, capture_output=True, text=True, check=True)
                result = json.loads(done.stdout.strip().splitlines()[-1])
                points.append(
                    MemoryPoint(mode, postprocess, frames, result["peak_rss_mb"], result["seconds"])
                )
    return points


def format_points(points: list[MemoryPoint]) -> str:
    lines = [
        f"{'mode':<8} {'postprocess':<12} {'frames':>6} {'peak RSS MB':>12} {'seconds':>8} {'growth':>8}"
    ]
    first: dict[tuple[str, str], MemoryPoint] = {}
    for p in points:
        key = (p.mode, p.postprocess)
        base = first.setdefault(key, p)
        growth = 100.0 * (p.peak_rss_mb - base.peak_rss_mb) / base.peak_rss_mb
        lines.append(
            f"{p.mode:<8} {p.postprocess:<12} {p.frames:>6} {p.peak_rss_mb:>12.1f} {p.seconds:>8.1f} {growth:>+7.1f}%"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--video")
    parser.add_argument("--mode", default="online")
    parser.add_argument("--postprocess", default="video")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--short-side", type=int, default=240)
    args = parser.parse_args()
    if args.child:
        _child(args)
    else:
        print(format_points(measure()))


if __name__ == "__main__":
    main()
