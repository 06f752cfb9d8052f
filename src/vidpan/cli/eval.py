"""``vidpan eval``: official VIPSeg (VPQ, STQ) and VSPW (mIoU, fwIoU, VC) metrics.

::

    vidpan eval vps --gt-json F --gt-masks DIR --pred-json F --pred-masks DIR [--json OUT]
                    [--per-class] [--workers N]
    vidpan eval vss --gt-root DIR --pred-masks DIR [--json OUT] [--split val.txt] [--workers N]
    vidpan eval coco-panoptic --gt-json F --gt-masks DIR --pred-json F --pred-masks DIR [--json OUT]

Prints a table on stdout; ``--json OUT`` is written atomically, and only when the evaluation
succeeded. Bad input is an :class:`~vidpan.errors.InputError` (exit code 2). Semantics and the
differences from the official scripts: ``docs/evaluation.md``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidpan.errors import InputError

if TYPE_CHECKING:
    from vidpan.evaluation.results import VPSResult, VSSResult


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


_VPS_PAIRING = """\
frame pairing: videos pair by video_id; the i-th GT frame with the i-th frame of the
prediction's video, whose PNG is <pred-masks>/<video>/<GT file_name>, else the file_name
pred.json lists at position i. VIPSeg annotates every 5th source frame (00000000.png,
00000005.png, ...): `vidpan segment VIPSeg/images/<video>` keeps those names; a prediction of
a video file names frames by index (00000000.png, 00000001.png, ...) and has every frame, so
its frame count differs. Extra prediction videos are ignored."""

_VSS_PAIRING = """\
frame pairing: every GT frame data/<video>/mask/<frame>.png needs <pred-masks>/<video>/<frame>.png
with the same name. `vidpan segment --task vss VSPW/data/<video>/origin` keeps the frame
names; a prediction of a video file names frames by index (00000000.png, 00000001.png, ...).
Extra prediction frames and videos are ignored."""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate predictions with the official VIPSeg / VSPW metrics",
        description="Official VIPSeg (VPQ, STQ) and VSPW (mIoU, fwIoU, VC8, VC16) metrics.",
    )
    tasks = parser.add_subparsers(dest="task", metavar="TASK", required=True)

    vps = tasks.add_parser(
        "vps",
        help="video panoptic segmentation: VPQ1..8, VPQ, STQ, AQ, SQ",
        epilog=_VPS_PAIRING,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    vps.add_argument("--gt-json", required=True, type=Path, help="panoptic_gt_VIPSeg_val.json")
    vps.add_argument(
        "--gt-masks", required=True, type=Path, help="panomasksRGB directory (<video>/<frame>.png)"
    )
    vps.add_argument("--pred-json", required=True, type=Path, help="the submission's pred.json")
    vps.add_argument(
        "--pred-masks",
        required=True,
        type=Path,
        help="the submission's pan_pred directory (<video>/<frame>.png)",
    )
    vps.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the metrics as JSON")
    vps.add_argument("--per-class", action="store_true", help="print and write per-class counts")
    vps.add_argument("--workers", type=_workers, default=1, help="processes (default 1)")
    vps.set_defaults(func=run)

    vss = tasks.add_parser(
        "vss",
        help="video semantic segmentation: mIoU, fwIoU, VC8, VC16",
        epilog=_VSS_PAIRING,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    vss.add_argument(
        "--gt-root", required=True, type=Path, help="VSPW root with data/<video>/mask/<frame>.png"
    )
    vss.add_argument(
        "--pred-masks", required=True, type=Path, help="directory of <video>/<frame>.png 0-based class ids"
    )
    vss.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the metrics as JSON")
    vss.add_argument(
        "--split",
        type=Path,
        default=None,
        help="video list (default: <gt-root>/val.txt if present, else all)",
    )
    vss.add_argument("--workers", type=_workers, default=1, help="processes (default 1)")
    vss.set_defaults(func=run)

    coco = tasks.add_parser(
        "coco-panoptic", help="COCO panoptic PQ, SQ, RQ (all / things / stuff), as panopticapi pq_compute"
    )
    coco.add_argument("--gt-json", required=True, type=Path, help="panoptic_val2017.json")
    coco.add_argument("--gt-masks", required=True, type=Path, help="GT PNG folder (panoptic_val2017/)")
    coco.add_argument("--pred-json", required=True, type=Path, help="prediction JSON (COCO panoptic format)")
    coco.add_argument("--pred-masks", required=True, type=Path, help="prediction PNG folder")
    coco.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the metrics as JSON")
    coco.add_argument("--per-class", action="store_true", help="write per-category values and counts")
    coco.set_defaults(func=run)


def _fmt(x: float, scale: float = 1.0, digits: int = 4) -> str:
    return "n/a" if math.isnan(x) else f"{x * scale:.{digits}f}"


def format_vps(result: VPSResult, *, per_class: bool = False) -> str:
    from vidpan.evaluation.vpq import VPQ_WINDOWS

    """A readable table of a VPS result."""
    lines = [
        f"{'window k':>9} {'VPQ':>9} {'VPQ_th':>9} {'VPQ_st':>9} {'classes':>8} {'windows':>8}",
    ]
    for k in VPQ_WINDOWS:
        w = result.windows[k]
        lines.append(
            f"{k:>9} {_fmt(w.vpq):>9} {_fmt(w.vpq_thing):>9} {_fmt(w.vpq_stuff):>9} "
            f"{w.num_classes:>8} {w.num_windows:>8}"
        )
    lines.append(
        f"{'mean':>9} {_fmt(result.vpq):>9} {_fmt(result.vpq_thing):>9} {_fmt(result.vpq_stuff):>9}"
        "   (official: k = 1, 2, 4, 6, 8)"
    )
    lines.append(
        f"{'VPQ_1246':>9} {_fmt(result.vpq_1246):>9}   (k = 1, 2, 4, 6: the leaderboard's and the seed paper's VPQ)"
    )
    lines.append(f"STQ {_fmt(result.stq.stq)}   AQ {_fmt(result.stq.aq)}   SQ {_fmt(result.stq.sq)}")
    if per_class:
        cats = sorted({c for k in VPQ_WINDOWS for c in result.windows[k].per_class})
        lines.append("")
        lines.append("per-class PQ (percent; tp/fp/fn at k = 1)")
        lines.append(
            f"{'class':>6} " + " ".join(f"{'PQ' + str(k):>7}" for k in VPQ_WINDOWS) + f" {'tp/fp/fn':>14}"
        )
        for c in cats:
            cells = []
            for k in VPQ_WINDOWS:
                r = result.windows[k].per_class.get(c)
                cells.append(f"{'-' if r is None else f'{100 * r.pq:.2f}':>7}")
            r1 = result.windows[1].per_class.get(c)
            counts = "-" if r1 is None else f"{r1.tp}/{r1.fp}/{r1.fn}"
            lines.append(f"{c:>6} " + " ".join(cells) + f" {counts:>14}")
    return "\n".join(lines)


def format_vss(result: VSSResult) -> str:
    """A readable table of a VSS result."""
    parts = [f"mIoU {_fmt(result.miou)}", f"fwIoU {_fmt(result.fwiou)}"]
    parts += [f"VC{n} {_fmt(v)} ({len(result.vc_windows[n])} windows)" for n, v in result.vc.items()]
    return "   ".join(parts)


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    from vidpan.utils.atomic import atomic_write_json

    try:
        atomic_write_json(path, obj)
    except OSError as exc:
        raise InputError(f"cannot write the metrics ({exc.strerror or exc})", path=path) from None


def run(args: argparse.Namespace) -> int:
    from vidpan.evaluation.evaluator import evaluate_vps, evaluate_vss

    if args.task == "coco-panoptic":
        from vidpan.evaluation.coco_panoptic import evaluate_coco_panoptic, format_coco_panoptic

        coco = evaluate_coco_panoptic(args.gt_json, args.gt_masks, args.pred_json, args.pred_masks)
        if args.json is not None:
            _write_json(args.json, coco.to_json(per_class=args.per_class))
        print(format_coco_panoptic(coco))
        return 0
    if args.task == "vps":
        vps = evaluate_vps(args.gt_json, args.gt_masks, args.pred_json, args.pred_masks, workers=args.workers)
        if args.json is not None:
            _write_json(args.json, vps.to_json(per_class=args.per_class))
        print(format_vps(vps, per_class=args.per_class))
    else:
        vss = evaluate_vss(args.gt_root, args.pred_masks, split=args.split, workers=args.workers)
        if args.json is not None:
            _write_json(args.json, vss.to_json())
        print(format_vss(vss))
    return 0
