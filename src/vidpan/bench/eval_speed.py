"""Evaluation speed benchmark: vidpan's VPQ + STQ + mIoU + VC8 + VC16 on a synthetic 720p case.

:func:`make_eval_case` writes the case with the synthetic benchmark generator
(:mod:`vidpan.data.synthetic`) in the official on-disk formats: VIPSeg ``panomasksRGB`` +
``panoptic_gt_VIPSeg_val.json``, a ``pred.json`` + ``pan_pred`` submission with planted errors
(shifted masks, identity switches, missed tracks, wrong classes, false positives, split stuff,
unlabeled patches, flicker), a VSPW root with raw labels and VSS predictions.

:func:`benchmark_eval` times :func:`~vidpan.evaluation.evaluator.evaluate_vps` +
:func:`~vidpan.evaluation.evaluator.evaluate_vss` (median of several runs, serial and with a
process pool) in this process, then the ``vidpan eval vps`` / ``vidpan eval vss`` command lines as
fresh processes (start-up included: the per-call wall clock a user sees, comparable with the
official scripts' own processes) and, when given a directory holding the official scripts (which
vidpan does not ship), times them on the same data with the same Python interpreter.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from vidpan.evaluation.evaluator import evaluate_vps, evaluate_vss


@dataclass(frozen=True)
class EvalCase:
    """Paths of a case in the official layouts, as :func:`vidpan.data.synthetic.generate` writes them."""

    root: Path
    gt_json: Path  # VIPSeg/panoptic_gt_VIPSeg_val.json
    gt_masks: Path  # VIPSeg/panomasksRGB
    pred_json: Path  # pred/pred.json
    pred_masks: Path  # pred/pan_pred
    vss_root: Path  # VSPW (val.txt, data/<video>/mask)
    vss_pred: Path  # vss_pred/<video>/<frame>.png

    @classmethod
    def at(cls, root: str | Path) -> EvalCase:
        root = Path(root)
        return cls(
            root=root,
            gt_json=root / "VIPSeg" / "panoptic_gt_VIPSeg_val.json",
            gt_masks=root / "VIPSeg" / "panomasksRGB",
            pred_json=root / "pred" / "pred.json",
            pred_masks=root / "pred" / "pan_pred",
            vss_root=root / "VSPW",
            vss_pred=root / "vss_pred",
        )


def make_eval_case(
    out_dir: str | Path,
    *,
    videos: int = 4,
    frames: int = 20,
    height: int = 720,
    width: int = 1280,
    seed: int = 0,
) -> EvalCase:
    """Write a synthetic VPS + VSS evaluation case under ``out_dir`` with the synthetic benchmark
    generator (:func:`vidpan.data.synthetic.generate`: every video in the val split, noisy
    predictions in the submission formats), replaced atomically."""
    from vidpan.data.synthetic import generate

    generate(out_dir, videos=videos, frames=frames, size=(height, width), seed=seed, val_fraction=1.0,
             predictions="noisy")  # fmt: skip
    return EvalCase.at(out_dir)


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


def cli_commands(case: EvalCase, *, python: str) -> dict[str, list[str]]:
    """``vidpan eval vps`` and ``vidpan eval vss`` on ``case``, serial (one process each)."""
    vidpan = [python, "-m", "vidpan", "eval"]
    return {
        "vps": [*vidpan, "vps", "--gt-json", str(case.gt_json), "--gt-masks", str(case.gt_masks),
                "--pred-json", str(case.pred_json), "--pred-masks", str(case.pred_masks)],
        "vss": [*vidpan, "vss", "--gt-root", str(case.vss_root), "--pred-masks", str(case.vss_pred)],
    }  # fmt: skip


def time_cli(case: EvalCase, *, runs: int, python: str) -> Timing:
    """Wall clock of the two ``vidpan eval`` command lines per run, process start-up included."""
    timing = Timing()
    cmds = cli_commands(case, python=python)
    for _ in range(runs):
        spent = {name: _timed_run(cmd, what=f"vidpan eval {name}") for name, cmd in cmds.items()}
        timing.vps.append(spent["vps"][0])
        timing.vss.append(spent["vss"][0])
    return timing


def _timed_run(cmd: list[str], *, what: str, cwd: Path | None = None) -> tuple[float, str]:
    """Run ``cmd``; (wall seconds, stdout). A failing command raises with its stderr's tail."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, check=False)
    spent = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{proc.stderr[-2000:]}")
    return spent, proc.stdout


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
            spent[name], outputs[name] = _timed_run(cmd, what=f"official {name}", cwd=official_dir)
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
    vidpan_cli: Timing  # the `vidpan eval vps` / `vss` commands as processes, start-up included
    official: Timing | None
    metrics_serial: dict[str, float | None]
    metrics_parallel: dict[str, float | None]
    metrics_official: dict[str, float | None]

    def table(self) -> str:
        rows = [
            ("vidpan serial", self.vidpan_serial),
            (f"vidpan workers={self.workers}", self.vidpan_parallel),
            ("vidpan CLI (process)", self.vidpan_cli),
        ]
        if self.official is not None:
            rows.append(("official scripts", self.official))
        lines = [self.description, f"{'':<22}{'VPQ+STQ':>10}{'mIoU+VC':>10}{'total':>10}   (median seconds)"]
        for name, tm in rows:
            a, b, c = tm.medians()
            lines.append(f"{name:<22}{a:>10.3f}{b:>10.3f}{c:>10.3f}")
        if self.official is not None:
            ref = self.official.medians()
            for name, tm in rows[:3]:
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
    cli = time_cli(case, runs=runs, python=sys.executable)
    official: Timing | None = None
    m_official: dict[str, float | None] = {}
    if official_dir is not None:
        official, m_official = time_official(
            case, Path(official_dir), runs=runs, python=sys.executable, num_processes=official_processes
        )
    return EvalBenchResult(
        description, serial, parallel, workers, cli, official, m_serial, m_parallel, m_official
    )
