"""Kill and disk safety of ``vidpan segment``: SIGKILL at random points leaves the output either
complete and valid or absent (a stale work folder at most, removed by the next run); a full disk
(RLIMIT_FSIZE) is a one-line error with nothing written."""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vidpan

WEIGHTS = Path(vidpan.__file__).parent / "assets" / "synthetic_tiny" / "model.safetensors"
SRC = Path(vidpan.__file__).resolve().parents[1]
FRAMES = 12


def _frames(folder: Path) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(FRAMES):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i:05d}.png")
    return folder


def _cmd(frames: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "vidpan", "segment", str(frames), "--weights", str(WEIGHTS), "--out", str(out),
            "--no-progress", "--set", "inference.short_side=0"]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}


def _state(out: Path) -> str:
    """absent | stale (only a work folder) | complete; anything else fails the test."""
    if not out.exists():
        return "absent"
    names = sorted(p.name for p in out.iterdir())
    if all(n.startswith(".vidpan-partial-") for n in names):
        return "stale"
    manifest = json.loads((out / ".vidpan-output.json").read_text())
    assert sorted(manifest["outputs"]) == sorted(n for n in names if not n.startswith("."))
    assert (out / "frames.jsonl").read_text().count("\n") == FRAMES
    assert len(json.loads((out / "pred.json").read_text())["annotations"][0]["annotations"]) == FRAMES
    assert len(list((out / "pan_pred" / "clip").iterdir())) == FRAMES
    return "complete"


def test_sigkill_at_random_points_leaves_complete_or_nothing(tmp_path: Path) -> None:
    frames = _frames(tmp_path / "clip")
    rng = random.Random(0)
    seen = set()
    for k, delay in enumerate([0.5, *sorted(rng.uniform(2.0, 14.0) for _ in range(3)), 60.0]):
        out = tmp_path / f"out{k}"
        proc = subprocess.Popen(
            _cmd(frames, out), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        state = _state(out)
        seen.add(state)
        if state == "stale":  # the next run into the folder removes it and completes
            subprocess.run(_cmd(frames, out), env=_env(), check=True, capture_output=True, timeout=300)
            assert _state(out) == "complete"
    assert "complete" in seen  # the last run (60 s) finished


@pytest.mark.parametrize("limit", [2_000, 40_000])
def test_full_disk_is_one_line_and_writes_nothing(tmp_path: Path, limit: int) -> None:
    frames = _frames(tmp_path / "clip")
    out = tmp_path / "out"

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(_cmd(frames, out), env=_env(), capture_output=True, text=True, timeout=300,
                          preexec_fn=small_files)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "File too large" in lines[0] and "nothing was written" in lines[0]
    assert not out.exists()
