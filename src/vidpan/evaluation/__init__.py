"""Evaluation: VPQ, STQ (VIPSeg) and mIoU, fwIoU, VC (VSPW), exactly as the official scripts.

Entry points: :func:`evaluate_vps` and :func:`evaluate_vss` (``vidpan eval vps|vss``); semantics,
quirks and the deliberate differences from the official scripts are in ``docs/evaluation.md``.
"""

from vidpan.evaluation.evaluator import evaluate_vps, evaluate_vss
from vidpan.evaluation.results import VPQWindowResult, VPSResult, VSSResult
from vidpan.evaluation.stq import STQResult
from vidpan.evaluation.vpq import VPQ_WINDOWS, PQClassResult

__all__ = [
    "VPQ_WINDOWS",
    "PQClassResult",
    "STQResult",
    "VPQWindowResult",
    "VPSResult",
    "VSSResult",
    "evaluate_vps",
    "evaluate_vss",
]
