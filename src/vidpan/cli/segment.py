"""``vidpan segment``: segment video files or frame folders with a trained model.

Writes, into ``--out`` (assembled in a hidden work folder inside it and moved in at the end, so a
failed run leaves nothing behind; files vidpan did not write are never touched, earlier vidpan
outputs are replaced only with ``--overwrite``, and an ``--out`` that holds an input is refused):

- ``vps``: ``pred.json`` + ``pan_pred/<video>/<frame>.png`` (VIPSeg submission, scorable with
  ``vidpan eval vps``);
- ``vss``: ``sem_pred/<video>/<frame>.png`` (VSPW-style class PNGs, for ``vidpan eval vss``);
- ``vis``: ``results.json`` (YouTube-VIS format);
- ``--task vps,vss`` (with ``--weights-vss B``): both, the frozen ViT once per frame
  (``vidpan.inference.tasks``); ``--task vss --vss-from panoptic``: VSS from the panoptic output;
- always ``frames.jsonl`` (per-frame segments: id, class, score, area, bbox, track) and the
  resolved ``config.yaml``; with ``--overlay`` ``overlay/<video>.mp4`` (H.264).

Exit codes: 0 done; 2 bad input (one line on stderr, nothing written); 3 done, but an input
decoded to fewer frames than it declares (a truncated download: outputs cover the decoded frames;
``--allow-partial`` makes that exit 0); 130 / 143 interrupted by Ctrl-C / SIGTERM (nothing written).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vidpan.inference.segment_job import SegmentOptions
    from vidpan.inference.sources import Span


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "segment",
        help="segment videos (files or frame folders) and write predictions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="video file(s), folder(s) of frames, - (a video on stdin), a URL (http, https, rtsp, ...) or a capture device (/dev/video0)")  # fmt: skip
    p.add_argument("--weights", help="zoo name (`vidpan models`), hf://owner/repo[@rev]/file, .safetensors, or a DVIS++ checkpoint with --preset (default: the synthetic demo model)")  # fmt: skip
    p.add_argument("--preset", help="architecture preset (tiny, vits, vitb, vitl, vitg) for foreign weights")
    p.add_argument(
        "--mode", choices=["online", "offline", "long", "minvis"], help="default: the model's config"
    )
    p.add_argument("--task", help="vps, vss or vis, or several: vps,vss (default: the model's config)")
    p.add_argument("--weights-vss", help="--task vps,vss: the VSS model (shares the frozen ViT of --weights)")
    p.add_argument("--vss-from", choices=["soft", "panoptic"], default="soft",
                   help="vss: soft semantic inference (default) or the panoptic segments merged by class")  # fmt: skip
    p.add_argument("--out", type=Path,
                   help="output folder (created; other files in it are kept; must not hold an input; "
                        "default: <first input's name>_vidpan/ here; --video-list needs it)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace vidpan's own earlier outputs in --out")
    p.add_argument("--allow-partial", action="store_true",
                   help="exit 0 (not 3) when an input is truncated and only its decoded frames are segmented")  # fmt: skip
    p.add_argument("--overlay", action="store_true", help="also write overlay/<video>.mp4")
    p.add_argument(
        "--stream", action="store_true", help="online/minvis: decide and write each window at once"
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--threads", type=_threads, default=None, metavar="N|auto",
                   help="CPU threads (default auto: 1 for small models such as the demo model, else the "
                        "available CPUs; docs/performance.md)")  # fmt: skip
    p.add_argument("--profile", action="store_true", help="print where the time went, per stage")
    p.add_argument(
        "--categories", type=Path, help="category JSON (e.g. panoVIPSeg_categories.json) naming the classes"
    )
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. inference.window_size=5 (repeatable)")  # fmt: skip
    p.add_argument("--start", type=float, metavar="SEC", help="segment from this time (seconds)")
    p.add_argument("--end", type=float, metavar="SEC", help="segment up to this time (seconds, exclusive)")
    p.add_argument("--max-frames", type=int, metavar="N", help="segment at most N frames (live sources)")
    p.add_argument("--fps", type=float, help="resample to this frame rate (drops or repeats frames)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--engine", choices=["torch", "onnxruntime", "ray"], default="torch",
                   help="torch: this process (or each torchrun rank); onnxruntime: the segmenter + tracker step "
                        "exported by `vidpan export` (--exported); ray: Ray actors (--video-list)")  # fmt: skip
    p.add_argument("--exported", type=Path, help="--engine onnxruntime: directory written by `vidpan export`")
    b = p.add_argument_group("batches (docs/batch.md)")
    b.add_argument("--video-list", metavar="FILE|DIR|GLOB",
                   help="batch: a text file of paths, a folder of videos or a glob; writes OUT/<video>/ "
                        "per video and OUT/manifest.jsonl, skips videos finished by an earlier run")  # fmt: skip
    b.add_argument(
        "--ray-address", help="ray: auto or HOST:PORT of a running cluster (default: start one here)"
    )
    b.add_argument("--workers", type=int, help="ray: number of actors (default: as many as the cluster fits)")
    b.add_argument("--gpus-per-worker", type=float, default=0.0, help="ray: GPUs each actor reserves")
    b.add_argument("--hash-inputs", action="store_true",
                   help="batch: also identify inputs by sha256 (default: path, size and mtime)")  # fmt: skip
    p.set_defaults(func=run)


def _threads(text: str) -> int | None:
    from vidpan.utils.threads import parse_threads

    try:
        return parse_threads(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or auto, got {text!r}") from None


def default_out(first_input: str) -> Path:
    """``--out`` when none is given: ``<name>_vidpan`` in the current directory (``stdin_vidpan``
    for ``-``; a URL's last path segment), beside the input and never inside it."""
    if first_input == "-":
        return Path("stdin_vidpan")
    name = Path(first_input.rstrip("/").split("?")[0]).stem or "video"
    return Path(f"{name}_vidpan")


def segment_options(args: argparse.Namespace, **changes: Any) -> SegmentOptions:
    """The parsed ``vidpan segment`` arguments as :class:`SegmentOptions` (``changes`` replace fields)."""
    from vidpan.inference.segment_job import SegmentOptions

    fields: dict[str, Any] = dict(
        weights=args.weights,
        preset=args.preset,
        mode=args.mode,
        task=args.task,
        device=args.device,
        precision=args.precision,
        categories=args.categories,
        overrides=tuple(args.overrides),
        overlay=args.overlay,
        stream=args.stream,
        progress=not args.no_progress and sys.stderr.isatty(),
        overwrite=args.overwrite,
        engine=args.engine,
        exported=args.exported,
    )
    fields.update(changes)
    return SegmentOptions(**fields)


def run(args: argparse.Namespace) -> int:
    from vidpan.errors import InputError

    if args.weights is None:
        from vidpan.hub.pretrained import default_weights

        args.weights = default_weights()
    if args.out is None:
        if args.video_list is not None or args.engine == "ray" or not args.inputs:
            raise InputError("--video-list: give --out DIR (one folder per video goes there)")
        args.out = default_out(args.inputs[0])
        print(f"writing to {args.out}/ (choose with --out)", file=sys.stderr)
    if args.video_list is not None or args.engine == "ray":
        from vidpan.batch.command import run_batch_command

        return run_batch_command(args)
    if not args.inputs:
        raise InputError("give INPUT video(s) or --video-list")
    if os.environ.get("WORLD_SIZE", "1") not in ("", "1"):
        raise InputError("under torchrun give --video-list (every rank would write the same --out)")

    if args.task is not None or args.weights_vss is not None:
        from vidpan.inference.segment_job import max_pixels_override
        from vidpan.inference.tasks import parse_tasks, segment_tasks

        tasks = parse_tasks(args.task or "vps")
        if len(tasks) > 1 or args.vss_from == "panoptic" or args.weights_vss is not None:
            if args.engine != "torch":
                raise InputError(
                    f"--engine {args.engine} is not available with several tasks or --vss-from panoptic"
                )
            for line in segment_tasks(
                args.inputs, weights=args.weights, tasks=tasks, out_dir=args.out, weights_vss=args.weights_vss,
                vss_from=args.vss_from, preset=args.preset, mode=args.mode, device=args.device,
                precision=args.precision, categories=args.categories, overrides=args.overrides,
                overlay=args.overlay, progress=not args.no_progress and sys.stderr.isatty(),
                overwrite=args.overwrite, span=_span(args), stream=args.stream,
                max_pixels=max_pixels_override(args.overrides),
            ):  # fmt: skip
                print(line)
            return 0
    from vidpan.inference.segment_job import (
        load_segmenter,
        max_pixels_override,
        open_inputs,
        segment_to_dir,
    )

    options = segment_options(args)
    # Before the model loads, so a typo fails fast.
    sources = open_inputs(args.inputs, max_pixels=max_pixels_override(args.overrides), span=_span(args))
    loaded = load_segmenter(options)
    from vidpan.utils.threads import apply_threads

    model = loaded.predictor.model
    threads = apply_threads(args.threads, num_params=sum(p.numel() for p in model.parameters())).threads
    if args.profile:
        from vidpan.inference.profile import profile_run

        with profile_run(model, threads) as prof:
            report = segment_to_dir(loaded, sources, args.out, options)
        for v in report.videos:
            prof.add_pipeline(v.timings, v.num_frames)
    else:
        report = segment_to_dir(loaded, sources, args.out, options)
    for v in report.videos:
        print(
            f"{v.name}: {v.num_frames} frames {v.width}x{v.height}, "
            f"{v.num_segments} segments, {v.frames_per_second:.2f} frames/s ({report.mode}, {report.task})"
        )
    rate = report.num_frames / report.seconds if report.seconds else 0.0
    print(
        f"done: {len(report.videos)} video(s), {report.num_frames} frames in {report.seconds:.1f} s "
        f"({rate:.2f} frames/s)"
    )
    print(f"outputs in {args.out}/:")
    for name in report.written:
        path = args.out / name
        if path.is_dir():
            print(f"  {name}/ ({sum(1 for f in path.rglob('*') if f.is_file())} files)")
        else:
            print(f"  {name}")
    for reason in report.incomplete.values():
        print(
            f"vidpan segment: warning: {reason}; its outputs cover the decoded frames only", file=sys.stderr
        )
    if args.profile:
        print(prof.table())
    if report.incomplete and not args.allow_partial:
        return 3
    return 0


def _span(args: argparse.Namespace) -> Span:
    from vidpan.inference.sources import Span

    return Span(start=args.start, end=args.end, max_frames=args.max_frames, fps=args.fps)
