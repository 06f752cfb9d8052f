"""Held-out scores of the shipped model (`src/vidpan/assets/synthetic_tiny/`), per DVIS stage.

Generates the held-out synthetic split (seed 1: never used in training; 48 videos x 24 frames
at 128x224) and scores the shipped model with `vidpan.inference.evaluate.evaluate_vipseg_split`
in three inference modes:

- (a) `minvis`: the segmenter alone, queries matched frame to frame (MinVIS);
- (b) `online`: segmenter + referring tracker;
- (c) `offline`: segmenter + tracker + temporal refiner.

Usage: ``python benchmarks/embedded_model_scores.py [--weights W] [--json OUT]``; the numbers
in the model card and `scores.json` come from this script.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from vidpan.data.synthetic import generate
from vidpan.inference.evaluate import evaluate_vipseg_split
from vidpan.models.build import load_pretrained

ASSET = Path(__file__).resolve().parents[1] / "src" / "vidpan" / "assets" / "synthetic_tiny"
HELDOUT = {"videos": 48, "frames": 24, "size": (128, 224), "seed": 1}
KEYS = ("VPQ1", "VPQ2", "VPQ4", "VPQ6", "VPQ8", "VPQ", "VPQ_1246", "VPQ_thing", "VPQ_stuff", "STQ", "AQ", "SQ",
        "mIoU", "fwIoU", "VC8", "VC16")  # fmt: skip


def heldout_scores(
    weights: Path, modes: tuple[str, ...] = ("minvis", "online", "offline")
) -> dict[str, dict]:
    config, model = load_pretrained(weights)
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = generate(Path(tmp) / "heldout", videos=HELDOUT["videos"], frames=HELDOUT["frames"],
                        size=HELDOUT["size"], seed=HELDOUT["seed"], val_fraction=1.0)  # fmt: skip
        for mode in modes:
            start = time.perf_counter()
            scores = evaluate_vipseg_split(model, config, data.vipseg_root, "val", mode=mode,  # type: ignore[arg-type]
                                           vss_root=data.vspw_root)  # fmt: skip
            out[mode] = {k: scores.get(k) for k in KEYS} | {"seconds": round(time.perf_counter() - start, 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weights", type=Path, default=ASSET / "model.safetensors")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    scores = heldout_scores(args.weights)
    print(f"{'mode':<8} " + " ".join(f"{k:>9}" for k in KEYS))
    for mode, s in scores.items():
        print(f"{mode:<8} " + " ".join(f"{s[k]:9.3f}" if s[k] is not None else f"{'-':>9}" for k in KEYS))
    if args.json is not None:
        args.json.write_text(json.dumps({"heldout": HELDOUT, "scores": scores}, indent=1) + "\n")


if __name__ == "__main__":
    main()
