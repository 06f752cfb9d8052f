"""`make demo` end to end: segment the synthetic .mp4 with the shipped model and score it."""

from __future__ import annotations

import json
from pathlib import Path

from vidpan.demo import run_demo


def test_demo_segments_and_scores(tmp_path: Path) -> None:
    assert run_demo(tmp_path / "demo") == 0
    scores = json.loads((tmp_path / "demo" / "scores.json").read_text())
    assert scores["VPQ"] >= 40.0  # the shipped model on an unseen synthetic video
    assert (tmp_path / "demo" / "segment" / "overlay" / "0000_synth.mp4").stat().st_size > 0
