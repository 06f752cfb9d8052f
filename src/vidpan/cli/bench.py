"""``vidpan bench``: benchmarks, one sub-subcommand each.

::

    vidpan bench eval [--videos 4] [--frames 20] [--size 720x1280] [--seed 0] [--runs 3]
                      [--workers 2] [--data DIR] [--official-dir DIR] [--json OUT]
    vidpan bench segmenter [--preset vits] [--size 480x640] [--frames 1] [--precision fp32]
    vidpan bench video [--anchor ../shared/fixtures/dvis_plus_speed_anchor.json] [--runs 3]
    vidpan bench memory [--frames 50 400] [--size 240x320] [--preset tiny]
    vidpan bench scaling --out DIR [--quick] [--presets ..] [--modes ..] [--frames ..] [--sizes ..]

Each benchmark registers itself in :data:`BENCHMARKS` with a function adding its parser; the
parser sets ``func`` to the benchmark's ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vidpan.errors import InputError
from vidpan.utils.atomic import atomic_write_json


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected HxW (e.g. 720x1280), got {text!r}")
    return int(parts[0]), int(parts[1])


# ------------------------------------------------------------------------------------------
# vidpan bench eval
# ------------------------------------------------------------------------------------------


def _add_eval(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "eval",
        help="time VPQ + STQ + mIoU + VC8 + VC16 on a synthetic case",
        description="Time vidpan's evaluation (serial and with a process pool) on a synthetic case in the "
        "official formats; optionally time the official scripts on the same data.",
    )
    p.add_argument("--videos", type=_positive_int, default=4)
    p.add_argument("--frames", type=_positive_int, default=20)
    p.add_argument("--size", type=_size, default=(720, 1280), metavar="HxW")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=_positive_int, default=3, help="runs per implementation (median reported)")
    p.add_argument("--workers", type=_positive_int, default=2, help="processes of the parallel run")
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="keep the case here (reused if it exists; default: a temp dir)",
    )
    p.add_argument(
        "--official-dir",
        type=Path,
        default=None,
        help="directory holding the official scripts (eval_vpq_vspw.py, eval_stq_vspw.py, "
        "segmentation_and_tracking_quality.py, eval_miou_vspw.py, eval_vc_vspw.py) to time them too",
    )
    p.add_argument(
        "--official-processes", type=_positive_int, default=2, help="--num_processes of eval_vpq_vspw.py"
    )
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the timings as JSON")
    p.set_defaults(func=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from vidpan.bench.eval_speed import EvalCase, benchmark_eval, make_eval_case

    if args.official_dir is not None and not (args.official_dir / "eval_vpq_vspw.py").is_file():
        raise InputError("eval_vpq_vspw.py not found there", path=args.official_dir)
    h, w = args.size
    desc = (
        f"eval benchmark: {args.videos} videos x {args.frames} frames, {h}x{w}, seed {args.seed}, "
        f"median of {args.runs} runs"
    )
    with tempfile.TemporaryDirectory(prefix="vidpan-bench-eval-") as tmp:
        root = args.data if args.data is not None else Path(tmp) / "case"
        case = EvalCase.at(root)
        if not case.gt_json.is_file():
            make_eval_case(root, videos=args.videos, frames=args.frames, height=h, width=w, seed=args.seed)
        result = benchmark_eval(
            case,
            runs=args.runs,
            workers=args.workers,
            official_dir=args.official_dir,
            official_processes=args.official_processes,
            description=desc,
        )
    print(result.table())
    if args.json is not None:
        timings = {
            "vidpan_serial": result.vidpan_serial,
            f"vidpan_workers{args.workers}": result.vidpan_parallel,
            "vidpan_cli": result.vidpan_cli,
        }
        if result.official is not None:
            timings["official"] = result.official
        atomic_write_json(
            args.json,
            {
                "description": desc,
                "timings": {
                    k: {"vps": t.vps, "vss": t.vss, "median_total": t.medians()[2]}
                    for k, t in timings.items()
                },
                "metrics": result.metrics_serial,
                "metrics_official": result.metrics_official,
            },
        )
    return 0


# ------------------------------------------------------------------------------------------
# vidpan bench segmenter / video / memory
# ------------------------------------------------------------------------------------------


def _add_segmenter(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "segmenter",
        help="per-module time and peak memory of a preset's segmenter",
        description="Time the ViT, adapter, pixel decoder and transformer decoder of a preset with random "
        "weights on random frames (median of runs) and report peak memory.",
    )
    p.add_argument("--preset", default="vits")
    p.add_argument("--size", type=_size, default=(480, 640), metavar="HxW")
    p.add_argument("--frames", type=_positive_int, default=1)
    p.add_argument("--runs", type=_positive_int, default=3)
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", type=Path, default=None, metavar="OUT")
    p.set_defaults(func=_run_segmenter)


def _run_segmenter(args: argparse.Namespace) -> int:
    from vidpan.bench.segmenter import format_segmenter_bench, run_segmenter_bench

    result = run_segmenter_bench(
        args.preset,
        size=args.size,
        frames=args.frames,
        runs=args.runs,
        precision=args.precision,
        device=args.device,
        overrides=tuple(args.overrides),
    )
    print(format_segmenter_bench(result))
    if args.json is not None:
        atomic_write_json(args.json, result.to_json())
    return 0


def _default_anchor() -> Path:
    from vidpan.config import configs_dir

    repo = configs_dir().parents[2]  # src/vidpan/configs -> the repository root
    return repo.parent / "shared" / "fixtures" / "dvis_plus_speed_anchor.json"


def _add_video(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "video",
        help="full offline inference on the DVIS++ speed-anchor configuration, against its figures",
        description="Reproduce the configuration and input of a DVIS++ speed anchor with random weights and "
        "report vidpan's median time, per-stage times and peak RSS next to the reference's.",
    )
    p.add_argument("--anchor", type=Path, default=None, help="anchor JSON (default ../shared/fixtures/...)")
    p.add_argument("--runs", type=_positive_int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=_positive_int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="inference override, e.g. inference.segmenter_batch=3 (repeatable)")  # fmt: skip
    p.add_argument("--json", type=Path, default=None, metavar="OUT")
    p.set_defaults(func=_run_video)


def _run_video(args: argparse.Namespace) -> int:
    from vidpan.bench.video import format_video_bench, run_video_bench

    result = run_video_bench(
        args.anchor or _default_anchor(),
        runs=args.runs,
        warmup=args.warmup,
        threads=args.threads,
        device=args.device,
        precision=args.precision,
        overrides=tuple(args.overrides),
    )
    print(format_video_bench(result))
    if args.json is not None:
        atomic_write_json(args.json, result.to_json())
    return 0


def _add_memory(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "memory",
        help="peak RSS of online / streaming / long inference on a short vs a long video",
        description="Peak RSS (fresh process each) of video inference on synthetic H.264 videos of "
        "different lengths at one resolution.",
    )
    p.add_argument("--frames", type=_positive_int, nargs="+", default=[50, 400])
    p.add_argument("--size", type=_size, default=(240, 320), metavar="HxW")
    p.add_argument("--preset", default="tiny")
    p.set_defaults(func=_run_memory)


def _run_memory(args: argparse.Namespace) -> int:
    from vidpan.bench.memory import format_points, measure

    print(format_points(measure(frame_counts=tuple(args.frames), size=args.size, preset=args.preset)))
    return 0


def _add_scaling(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "scaling",
        help="time per frame and peak memory against video length and resolution (table + PNG plot)",
        description="Sweep frames (at the first size) and sizes (at the first frame count) for each preset "
        "and mode, one fresh process per point; writes scaling.csv, scaling.md and scaling.png into --out. "
        "Default grid: vits, vitl x online, offline, long x 50..2000 frames x 360p..1080p (hours on CPU); "
        "--quick: the tiny preset on a few small frames.",
    )
    p.add_argument("--out", type=Path, required=True, help="folder for scaling.{csv,md,png}")
    p.add_argument(
        "--quick", action="store_true", help="tiny grid (the tiny preset, 4/12 frames, 64x96/128x192)"
    )
    p.add_argument("--presets", nargs="+", default=None)
    p.add_argument("--modes", nargs="+", choices=["online", "offline", "long"], default=None)
    p.add_argument("--frames", nargs="+", type=_positive_int, default=None)
    p.add_argument("--sizes", nargs="+", type=_size, default=None, metavar="HxW")
    p.set_defaults(func=_run_scaling)


def _run_scaling(args: argparse.Namespace) -> int:
    import dataclasses

    from vidpan.bench.scaling import FULL_GRID, QUICK_GRID, run_scaling, to_markdown, write_outputs

    grid = QUICK_GRID if args.quick else FULL_GRID
    changes = {
        k: tuple(v)
        for k, v in (
            ("presets", args.presets),
            ("modes", args.modes),
            ("frames", args.frames),
            ("sizes", args.sizes),
        )
        if v is not None
    }
    grid = dataclasses.replace(grid, **changes)
    points = run_scaling(grid)
    title = (
        f"vidpan bench scaling: presets {', '.join(grid.presets)}; modes {', '.join(grid.modes)}; "
        f"frames {', '.join(map(str, grid.frames))}; sizes {', '.join(f'{h}x{w}' for h, w in grid.sizes)}"
    )
    paths = write_outputs(points, grid, args.out, title)
    print(to_markdown(points))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


#: Benchmark name -> function adding its parser (``vidpan bench <name>``).
BENCHMARKS: dict[str, Callable[[Any], None]] = {
    "eval": _add_eval,
    "segmenter": _add_segmenter,
    "video": _add_video,
    "memory": _add_memory,
    "scaling": _add_scaling,
}


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("bench", help="run a benchmark", description="Benchmarks.")
    benches = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for add in BENCHMARKS.values():
        add(benches)
