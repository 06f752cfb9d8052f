"""``vidpan segment``: segment video files or frame folders with a trained model.

Writes, into ``--out`` (assembled in a temporary directory and renamed at the end, so a failed
run leaves nothing behind):

- ``vps``: ``pred.json`` + ``pan_pred/<video>/<frame>.png`` (VIPSeg submission, scorable with
  ``vidpan eval vps``);
- ``vss``: ``sem_pred/<video>/<frame>.png`` (VSPW-style class PNGs, for ``vidpan eval vss``);
- ``vis``: ``results.json`` (YouTube-VIS format);
- always ``frames.jsonl`` (per-frame segments: id, class, score, area, bbox, track) and the
  resolved ``config.yaml``; with ``--overlay`` ``overlay/<video>.mp4`` (H.264).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from vidpan.config import save_yaml
from vidpan.data.categories import CategoryMapping
from vidpan.errors import InputError
from vidpan.inference.output import FrameWriter, OutputDirectory
from vidpan.inference.predictor import VideoPredictor
from vidpan.inference.video_io import open_video
from vidpan.inference.writers import (
    FrameJSONWriter,
    OverlayVideoWriter,
    SemanticPNGWriter,
    VIPSegSubmissionWriter,
    YTVISResultsWriter,
)
from vidpan.models.convert import load_for_inference


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "segment",
        help="segment videos (files or frame folders) and write predictions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video file(s) or folder(s) of frames")
    p.add_argument(
        "--weights", required=True, help="vidpan .safetensors, or a DVIS++ checkpoint with --preset"
    )
    p.add_argument("--preset", help="architecture preset (tiny, vits, vitb, vitl, vitg) for foreign weights")
    p.add_argument(
        "--mode", choices=["online", "offline", "long", "minvis"], help="default: the model's config"
    )
    p.add_argument("--task", choices=["vps", "vss", "vis"], help="default: the model's config")
    p.add_argument("--out", required=True, type=Path, help="output directory (replaced only on success)")
    p.add_argument("--overlay", action="store_true", help="also write overlay/<video>.mp4")
    p.add_argument(
        "--stream", action="store_true", help="online/minvis: decide and write each window at once"
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument(
        "--categories", type=Path, help="category JSON (e.g. panoVIPSeg_categories.json) naming the classes"
    )
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. inference.window_size=5 (repeatable)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Validate everything cheap before loading the model or touching the output directory.
    sources = [open_video(path) for path in args.inputs]
    names = [s.name for s in sources]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"several inputs have the same video name {duplicates}: outputs would collide")
    config, model = load_for_inference(args.weights, preset=args.preset, overrides=args.overrides)
    categories = (
        CategoryMapping.from_file(args.categories)
        if args.categories
        else CategoryMapping.from_model_config(config.model)
    )
    if args.categories and categories.num_things != config.model.num_things:
        raise InputError(
            f"{categories.num_things} thing categories but the model has {config.model.num_things}",
            path=args.categories,
        )
    predictor = VideoPredictor(
        model, config, device=args.device, precision=args.precision, categories=categories
    )
    task = args.task or config.inference.task
    mode = args.mode or config.inference.mode
    resolved = dataclasses.replace(
        config, inference=dataclasses.replace(config.inference, task=task, mode=mode)
    )
    total_frames, total_seconds = 0, 0.0
    with OutputDirectory(args.out) as out:
        writers: list[FrameWriter] = [FrameJSONWriter(out, labels=categories)]
        if task == "vps":
            writers.append(VIPSegSubmissionWriter(out, labels=categories))
        elif task == "vss":
            writers.append(SemanticPNGWriter(out, labels=categories))
        else:
            writers.append(YTVISResultsWriter(out, labels=categories))
        if args.overlay:
            writers.append(OverlayVideoWriter(out, labels=categories))
        save_yaml(resolved, out.file("config.yaml"))
        for source in sources:
            prediction = predictor.predict(
                source,
                mode=mode,
                task=task,
                postprocess="stream" if args.stream else "video",
                writers=writers,
                keep_frames=False,
                progress=not args.no_progress and sys.stderr.isatty(),
            )
            total_frames += prediction.num_frames
            total_seconds += prediction.seconds
            print(
                f"{prediction.name}: {prediction.num_frames} frames {prediction.width}x{prediction.height}, "
                f"{len(prediction.segments)} segments, {prediction.frames_per_second:.2f} frames/s ({mode}, {task})"
            )
    rate = total_frames / total_seconds if total_seconds else 0.0
    print(
        f"done: {len(sources)} video(s), {total_frames} frames in {total_seconds:.1f} s ({rate:.2f} frames/s)"
    )
    print(f"outputs in {args.out}/:")
    for path in sorted(p for p in args.out.rglob("*") if p.is_file() and p.parent == args.out):
        print(f"  {path.name}")
    for sub in sorted(p for p in args.out.iterdir() if p.is_dir()):
        print(f"  {sub.name}/ ({sum(1 for f in sub.rglob('*') if f.is_file())} files)")
    return 0
