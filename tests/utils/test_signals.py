"""SIGTERM cleans up like Ctrl-C; after SIGKILL the next run removes the stale work folders.

Real ``vidpan segment`` processes are started and signalled mid-run (once their work folder
holds spilled tensors), then the output folder and the temp dir are inspected.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vidpan
from vidpan.utils.signals import Terminated, terminate_as_interrupt

WEIGHTS = Path(vidpan.__file__).parent / "assets" / "synthetic_tiny" / "model.safetensors"
SRC = Path(vidpan.__file__).resolve().parents[1]


def test_sigterm_raises_terminated_in_process() -> None:
    before = signal.getsignal(
        signal.SIGTERM
    )  # not always SIG_DFL: e.g. ray.init() in this process installs one
    with pytest.raises(Terminated) as info, terminate_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert info.value.exit_code == 128 + signal.SIGTERM and isinstance(info.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) == before  # restored


def _frames(folder: Path, count: int) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i:05d}.png")
    return folder


def _start(tmp_path: Path, frames: Path, out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "vidpan", "segment", str(frames), "--weights", str(WEIGHTS), "--out", str(out),
           "--no-progress", "--set", "inference.short_side=0", "--set", "inference.window_size=1"]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _wait_for_spill(proc: subprocess.Popen[bytes], out: Path, timeout: float = 120.0) -> Path:
    """The run's work folder, once it holds spilled tensors."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for work in out.glob(".vidpan-partial-*"):
            if any(s.is_dir() and any(s.iterdir()) for s in work.glob("vidpan-spill-*")):
                return work
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the run never spilled")


@pytest.mark.parametrize(
    "signum",
    [
        signal.SIGTERM,
        pytest.param(signal.SIGINT, marks=pytest.mark.slow),
        pytest.param(signal.SIGHUP, marks=pytest.mark.slow),
    ],
)
def test_signal_mid_run_leaves_nothing(tmp_path: Path, signum: int) -> None:
    frames = _frames(tmp_path / "frames", 400)
    out = tmp_path / "results"
    out.mkdir()
    (out / "mine.txt").write_text("user file")
    proc = _start(tmp_path, frames, out)
    _wait_for_spill(proc, out)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (130 if signum == signal.SIGINT else 128 + signum), err
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err.decode(), err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]  # no .partial, no spill, no output
    assert not list((tmp_path / "tmp").iterdir())  # nothing in the temp dir either


def test_after_sigkill_the_next_run_removes_the_stale_work_folder(tmp_path: Path) -> None:
    frames = _frames(tmp_path / "frames", 400)
    out = tmp_path / "results"
    proc = _start(tmp_path, frames, out)
    stale = _wait_for_spill(proc, out)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert stale.exists()  # SIGKILL cannot be handled
    few = _frames(tmp_path / "few", 2)
    rerun = _start(tmp_path, few, out)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert not stale.exists()
    assert not list(out.glob(".vidpan-partial-*"))
    assert (out / "frames.jsonl").read_text().count("\n") == 2
