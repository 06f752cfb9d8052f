"""The whole path a user takes: ``vidpan segment VIDEO --weights hf://...`` against the fake hub.

The hub serves a DVIS++-format ``.pth`` (``{"model": state_dict}``, as detectron2 saves it) made
from the DVIS++ parity fixture's weights; the command downloads it, verifies it, converts it once
to safetensors and must reproduce the fixture's reference panoptic output. Also: offline with an
empty cache, and a malicious pickle that must never run.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from hubtools import FakeHub, run_py, run_vidpan

from vidpan.data.formats.rgb_id import read_id_png

REPO = "someone/dvis-fixture"


def _assert_same_partition(ours: np.ndarray, ref: np.ndarray) -> None:
    """Same panoptic segmentation up to the ids' colour coding: a bijection between the id sets."""
    pairs = np.unique(np.stack([ref.reshape(-1), ours.reshape(-1)], 1), axis=0)
    assert len(np.unique(pairs[:, 0])) == len(pairs) and len(np.unique(pairs[:, 1])) == len(pairs), pairs


def test_segment_hf_weights_reproduce_reference(
    fake_hub: FakeHub, hub_env: dict[str, str], fixture_files: dict, tmp_path: Path
) -> None:
    fake_hub.add(REPO, "DVIS++/weights/model_final.pth", fixture_files["pth"])
    spec = f"hf://{REPO}@main/DVIS++/weights/model_final.pth"
    out = tmp_path / "out"
    args = ["segment", str(fixture_files["frames"]), "--weights", spec, "--preset", str(fixture_files["preset"]),
            "--mode", "offline", "--out", str(out), "--no-progress"]  # fmt: skip
    result = run_vidpan(args, hub_env)
    assert result.returncode == 0, result.stdout + result.stderr
    ref = fixture_files["outputs"]["final_offline.panoptic"].numpy()
    pngs = sorted((out / "pan_pred" / "clip").glob("*.png"))
    assert len(pngs) == ref.shape[0]
    ours = np.stack([read_id_png(p) for p in pngs])
    _assert_same_partition(ours, ref)
    # Reference segments: [id, isthing, category id]; ours from pred.json, one id per track.
    pred = json.loads((out / "pred.json").read_text())["annotations"][0]["annotations"]
    ours_cats = {s["category_id"] for frame in pred for s in frame["segments_info"]}
    ref_cats = {int(c) for _, _, c in fixture_files["outputs"]["final_offline.segments"].tolist()}
    assert ours_cats == ref_cats
    # Converted once, cached beside the download; the second run starts from safetensors.
    converted = list((Path(hub_env["HF_HOME"]) / "hub").rglob("vidpan-converted/*.safetensors"))
    assert len(converted) == 1
    stamp = converted[0].stat().st_mtime_ns
    code = (
        "from vidpan.hub.resolve import resolve_weights\n"
        f"r = resolve_weights({spec!r}, preset={str(fixture_files['preset'])!r})\n"
        "print(r.converted, r.path)"
    )
    again = run_py(code, hub_env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.split() == ["False", str(converted[0])]
    assert converted[0].stat().st_mtime_ns == stamp
    assert len([r for r in fake_hub.requests if r[0] == "GET"]) == 1


def test_segment_offline_empty_cache_is_one_line_exit_2(
    fake_hub: FakeHub, hub_env: dict[str, str], fixture_files: dict, tmp_path: Path
) -> None:
    env = {**hub_env, "HF_HUB_OFFLINE": "1"}
    result = run_vidpan(
        [
            "segment",
            str(fixture_files["frames"]),
            "--weights",
            "dvis++/ytvis21-vitl-online",
            "--out",
            str(tmp_path / "o"),
        ],
        env,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "dvis++/ytvis21-vitl-online" in lines[0] and "hf download zhangtao-whu/DVIS_Plus" in lines[0]
    assert fake_hub.requests == [] and not (tmp_path / "o").exists()


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_malicious_pickle_from_the_hub_is_never_executed(
    fake_hub: FakeHub, hub_env: dict[str, str], fixture_files: dict, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    torch.save({"model": {"w": _Evil(marker)}}, buffer)
    fake_hub.add(REPO, "evil.pth", buffer.getvalue())
    result = run_vidpan(
        ["segment", str(fixture_files["frames"]), "--weights", f"hf://{REPO}/evil.pth", "--preset", "tiny",
         "--out", str(tmp_path / "o")],
        hub_env,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "refused: the checkpoint contains" in result.stderr and "evil.pth" in result.stderr
    assert "weights_only" not in result.stderr  # never points at the unsafe path
    assert len(result.stderr.strip().splitlines()) == 1
    assert not marker.exists()
    assert not list((Path(hub_env["HF_HOME"]) / "hub").rglob("vidpan-converted/*.safetensors"))
