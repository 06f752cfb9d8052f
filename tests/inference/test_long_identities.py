"""Long mode keeps identities across refiner chunks: on synthetic videos six chunks long, its
VPQ is within a point of offline's and it finds as many tracks ((id, class) pairs) within 10 %.

The shipped model, 4 held-out synthetic videos of 48 frames (chunk_length 12, overlap 4). Before
the stitching (docs/session.md) long mode found 38 tracks where offline finds 26.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidpan.data.synthetic import generate
from vidpan.demo import SHIPPED_WEIGHTS
from vidpan.inference.evaluate import evaluate_vipseg_split
from vidpan.models.build import load_pretrained


def _tracks(pred_json: Path) -> int:
    pred = json.loads(pred_json.read_text())
    return sum(
        len({(s["id"], s["category_id"]) for f in v["annotations"] for s in f["segments_info"]})
        for v in pred["annotations"]
    )


@pytest.mark.slow
def test_long_mode_matches_offline_on_videos_several_chunks_long(tmp_path: Path) -> None:
    data = generate(tmp_path / "data", videos=4, frames=48, size=(128, 224), seed=3, val_fraction=1.0)
    config, model = load_pretrained(SHIPPED_WEIGHTS)
    assert 3 * config.inference.chunk_length < 48
    scores, tracks = {}, {}
    for mode in ("offline", "long"):
        out = tmp_path / mode
        scores[mode] = evaluate_vipseg_split(model, config, data.vipseg_root, "val", mode=mode, out_dir=out)
        tracks[mode] = _tracks(out / "predictions" / "pred.json")
    print(f"VPQ offline {scores['offline']['VPQ']:.2f} long {scores['long']['VPQ']:.2f}; tracks {tracks}")
    assert scores["long"]["VPQ"] >= scores["offline"]["VPQ"] - 1.0
    assert abs(tracks["long"] - tracks["offline"]) <= 0.1 * tracks["offline"]
