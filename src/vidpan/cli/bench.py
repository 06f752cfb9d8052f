"""``vidpan bench``: benchmarks, one sub-subcommand each.

::

    vidpan bench eval [--videos 4] [--frames 20] [--size 720x1280] [--seed 0] [--runs 3]
                      [--workers 2] [--data DIR] [--official-dir DIR] [--json OUT]

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


#: Benchmark name -> function adding its parser (``vidpan bench <name>``).
BENCHMARKS: dict[str, Callable[[Any], None]] = {"eval": _add_eval}


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("bench", help="run a benchmark", description="Benchmarks.")
    benches = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for add in BENCHMARKS.values():
        add(benches)
