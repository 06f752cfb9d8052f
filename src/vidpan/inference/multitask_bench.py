"""Time saved by sharing the frozen ViT between a VPS and a VSS model (:mod:`.multitask`).

    python -m vidpan.inference.multitask_bench [--preset vitb] [--frames 6] [--size 224x320] [--repeats 2]

Two models of ``preset`` with the same random ViT and different random adapters and heads (a VPS
model run offline, a VSS model run online, as the seed's two tasks) segment the same random video:
(a) separately, one after the other; (b) together through :func:`~.multitask.run_tasks`, the ViT
once per frame. Both are timed side by side in one process (best of ``repeats``), with the ViT's
own time on the same frames, so the saving can be compared with the ViT's share. Prints one line
per measurement and the ratio.
"""

from __future__ import annotations

import argparse
import copy
import time
from typing import Any, cast

import numpy as np
import torch

from vidpan.config import apply_overrides, load_config
from vidpan.inference.multitask import TaskRun, run_tasks, share_vit
from vidpan.inference.predictor import VideoPredictor
from vidpan.models.backbone.vit import VisionTransformer
from vidpan.models.build import build_dvis


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="vitb")
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--size", default="224x320", help="HxW of the video (fed at this size)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    h, w = (int(v) for v in args.size.split("x"))
    config = apply_overrides(load_config(args.preset), ["inference.short_side=0"])
    torch.manual_seed(0)
    a = build_dvis(config.model).eval()
    torch.manual_seed(1)
    b = build_dvis(config.model).eval()
    cast(VisionTransformer, b.segmenter.backbone.vit).load_state_dict(
        cast(VisionTransformer, a.segmenter.backbone.vit).state_dict()
    )
    video = np.random.default_rng(0).integers(0, 256, (args.frames, h, w, 3), dtype=np.uint8)
    opts_a: dict[str, Any] = {"mode": "offline", "task": "vps", "keep_frames": False}
    opts_b: dict[str, Any] = {"mode": "online", "task": "vss", "keep_frames": False}
    pa, pb = VideoPredictor(copy.deepcopy(a), config), VideoPredictor(copy.deepcopy(b), config)
    vit = cast(VisionTransformer, copy.deepcopy(a.segmenter.backbone.vit))
    shared = share_vit([a, b], [config, config])
    runs = [TaskRun(VideoPredictor(a, config), opts_a), TaskRun(VideoPredictor(b, config), opts_b)]
    mean = torch.tensor(config.model.pixel_mean).view(1, 3, 1, 1)
    std = torch.tensor(config.model.pixel_std).view(1, 3, 1, 1)
    div = config.model.size_divisibility
    ph, pw = -(-h // div) * div, -(-w // div) * div
    frames = (torch.from_numpy(video).permute(0, 3, 1, 2).float() - mean) / std
    frames = torch.nn.functional.pad(frames, (0, pw - w, 0, ph - h))
    separate: list[float] = []
    together: list[float] = []
    vit_only: list[float] = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        pa.predict(video, **opts_a)
        pb.predict(video, **opts_b)
        separate.append(time.perf_counter() - start)
        start = time.perf_counter()
        run_tasks(shared, runs, video)
        together.append(time.perf_counter() - start)
        start = time.perf_counter()
        with torch.no_grad():
            for i in range(args.frames):
                tokens, _ = vit.prepare_tokens(frames[i : i + 1])
                vit.run_blocks(tokens, 0, vit.depth)
        vit_only.append(time.perf_counter() - start)
    s, t, v = min(separate), min(together), min(vit_only)
    print(
        f"preset {args.preset}, {args.frames} frames {h}x{w}, {torch.get_num_threads()} threads, best of {args.repeats}"
    )
    print(f"  separate runs (VPS offline, then VSS online): {s:.2f} s")
    print(f"  shared ViT (both together):                  {t:.2f} s")
    print(f"  the ViT alone on the frames (once):          {v:.2f} s")
    print(
        f"  saved {s - t:.2f} s = {100 * (s - t) / s:.1f} % of the separate time; the ViT's share of it: {100 * v / s:.1f} %"
    )


if __name__ == "__main__":
    main()
