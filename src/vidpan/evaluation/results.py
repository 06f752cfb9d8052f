"""Typed results of :mod:`vidpan.evaluation.evaluator` and their JSON form.

``VPSResult.to_json()`` gives exactly ``VPQ1 VPQ2 VPQ4 VPQ6 VPQ8 VPQ VPQ_1246 VPQ_thing VPQ_stuff
STQ AQ SQ`` (VPQ in percent as the official script, the others in 0..1) and ``VSSResult.to_json()``
``mIoU fwIoU VC8 VC16``; undefined values (NaN) are written as ``null``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidpan.evaluation.semantic import VC_WINDOWS
from vidpan.evaluation.stq import STQResult
from vidpan.evaluation.vpq import VPQ_WINDOWS, PQClassResult


def _json_float(x: float) -> float | None:
    """JSON has no NaN: undefined metrics are written as null."""
    return None if math.isnan(x) else float(x)


@dataclass(frozen=True)
class VPQWindowResult:
    """VPQ at one window size k. ``vpq*`` in percent (NaN when no class is counted).

    ``per_class`` maps category id -> pooled counts of the classes counted (tp + fp + fn > 0).
    """

    window: int
    vpq: float
    vpq_thing: float
    vpq_stuff: float
    num_classes: int
    num_windows: int
    per_class: dict[int, PQClassResult]


@dataclass(frozen=True)
class VPSResult:
    """VPQ at each window size and STQ."""

    windows: dict[int, VPQWindowResult]
    stq: STQResult

    def _mean(self, ks: Sequence[int], attr: str) -> float:
        # As ``vpq-final.txt``: sum of the per-k values (percent) / number of window sizes.
        values = [getattr(self.windows[k], attr) for k in ks]
        return sum(values) / len(values)

    @property
    def vpq(self) -> float:
        """Mean of VPQ1..VPQ8 (the official ``vpq-final.txt``), percent."""
        return self._mean(VPQ_WINDOWS, "vpq")

    @property
    def vpq_1246(self) -> float:
        """Mean of VPQ1, VPQ2, VPQ4, VPQ6 (the leaderboard columns), percent."""
        return self._mean((1, 2, 4, 6), "vpq")

    @property
    def vpq_thing(self) -> float:
        return self._mean(VPQ_WINDOWS, "vpq_thing")

    @property
    def vpq_stuff(self) -> float:
        return self._mean(VPQ_WINDOWS, "vpq_stuff")

    def to_json(self, *, per_class: bool = False) -> dict[str, Any]:
        """``VPQ1 VPQ2 VPQ4 VPQ6 VPQ8 VPQ VPQ_1246 VPQ_thing VPQ_stuff STQ AQ SQ`` (+ ``per_class``)."""
        out: dict[str, Any] = {f"VPQ{k}": _json_float(self.windows[k].vpq) for k in VPQ_WINDOWS}
        out["VPQ"] = _json_float(self.vpq)
        out["VPQ_1246"] = _json_float(self.vpq_1246)
        out["VPQ_thing"] = _json_float(self.vpq_thing)
        out["VPQ_stuff"] = _json_float(self.vpq_stuff)
        out["STQ"] = _json_float(self.stq.stq)
        out["AQ"] = _json_float(self.stq.aq)
        out["SQ"] = _json_float(self.stq.sq)
        if per_class:
            out["per_class"] = {
                f"VPQ{k}": {
                    str(cat): {
                        "pq": r.pq,
                        "sq": r.sq,
                        "rq": r.rq,
                        "iou": r.iou,
                        "tp": r.tp,
                        "fp": r.fp,
                        "fn": r.fn,
                    }
                    for cat, r in self.windows[k].per_class.items()
                }
                for k in VPQ_WINDOWS
            }
        return out


@dataclass(frozen=True)
class VSSResult:
    """mIoU, fwIoU, pixel accuracy (0..1) and VC_n (NaN when no video has more than n frames)."""

    miou: float
    fwiou: float
    acc: float
    vc: dict[int, float]
    vc_windows: dict[int, list[float]]  # pooled window scores per n, in video order
    confusion: np.ndarray  # [124, 124] int64

    def to_json(self) -> dict[str, Any]:
        """``mIoU fwIoU VC8 VC16``."""
        out: dict[str, Any] = {"mIoU": _json_float(self.miou), "fwIoU": _json_float(self.fwiou)}
        for n in VC_WINDOWS:
            out[f"VC{n}"] = _json_float(self.vc[n])
        return out
