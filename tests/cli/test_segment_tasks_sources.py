"""``vidpan segment --task vps,vss`` on a video piped into stdin and on a span of a file, in real
processes with the shipped model: every task's outputs equal, byte for byte, those of the same
task run alone on the same input and span (the stream is decoded once and teed to both models;
the ViT runs once per frame). ``--stream`` works with several tasks too."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from vidpan.data.synthetic import generate
from vidpan.demo import SHIPPED_WEIGHTS
from vidpan.inference.video_io import open_video

FAST = ["--weights", str(SHIPPED_WEIGHTS), "--set", "inference.short_side=64", "--no-progress"]
# What each task writes (frames.jsonl, config.yaml and overlay/ come from the first task of a run).
# The overlay mp4 is not compared: libx264's bytes differ from run to run even for one task run
# twice on the same frames (checked: the painted frames are identical); its frames are counted.
OUTPUTS = {"vps": ("pan_pred", "pred.json", "frames.jsonl"), "vss": ("sem_pred",)}


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 frames of a synthetic video (96x160) at 6 fps, as mkv (a format a pipe can carry)."""
    tmp = tmp_path_factory.mktemp("synth")
    data = generate(tmp, videos=1, frames=12, size=(96, 160), seed=5, val_fraction=1.0, mp4=True)
    (mp4,) = sorted(data.root.rglob("*.mp4"))
    frames = np.stack(list(open_video(mp4)))
    path = tmp / "clip.mkv"
    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("libx264", rate=6)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return path


def _vidpan(*args: str, stdin: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m vidpan ARGS``, stdin a real pipe from ``stdin``'s bytes (``cat FILE |``)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "vidpan", *args]
    if stdin is None:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    cat = subprocess.Popen(["cat", str(stdin)], stdout=subprocess.PIPE)
    try:
        return subprocess.run(cmd, stdin=cat.stdout, capture_output=True, text=True, env=env, timeout=300)
    finally:
        assert cat.stdout is not None
        cat.stdout.close()
        cat.wait(10)


def _same(a: Path, b: Path) -> int:
    """Assert files or trees ``a`` and ``b`` are byte-identical; return how many files."""
    if a.is_file():
        assert a.read_bytes() == b.read_bytes(), a
        return 1
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()) and files
    for rel in files:
        assert filecmp.cmp(a / rel, b / rel, shallow=False), rel
    return len(files)


def _check_tasks_equal_alone(
    tmp_path: Path, source: str, args: list[str], *, stdin: Path | None, frames: int, name: str
) -> None:
    both = _vidpan(
        "segment", source, "--task", "vps,vss", "--out", str(tmp_path / "both"), *args, stdin=stdin
    )
    assert both.returncode == 0, both.stderr
    assert f"{name}: {frames} frames 160x96, vps" in both.stdout, both.stdout
    assert f"{name}: {frames} frames 160x96, vss" in both.stdout, both.stdout
    for task, outputs in OUTPUTS.items():
        alone = _vidpan("segment", source, "--task", task, "--out", str(tmp_path / task), *args, stdin=stdin)
        assert alone.returncode == 0, alone.stderr
        for item in outputs:
            _same(tmp_path / "both" / item, tmp_path / task / item)
    assert len(list((tmp_path / "both" / "pan_pred" / name).iterdir())) == frames
    assert len(list((tmp_path / "both" / "sem_pred" / name).iterdir())) == frames
    with av.open(str(tmp_path / "both" / "overlay" / f"{name}.mp4")) as overlay:
        assert sum(1 for _ in overlay.decode(video=0)) == frames


def test_two_tasks_from_a_pipe_with_a_span_equal_each_task_alone(video: Path, tmp_path: Path) -> None:
    # Offline decides at the end: each task's frames come back from its spill (stdin is read once),
    # the first task's for the overlay too. Frames 3 .. 8 (0.5 s at 6 fps, 6 frames).
    args = ["--mode", "offline", "--overlay", "--start", "0.5", "--max-frames", "6", *FAST]
    _check_tasks_equal_alone(tmp_path, "-", args, stdin=video, frames=6, name="stdin")


def test_two_tasks_on_a_resampled_span_of_a_file_equal_each_task_alone(video: Path, tmp_path: Path) -> None:
    # 0.5 s .. 1.5 s resampled to 4 fps: 4 frames. Online with --stream: every window written at once.
    args = [
        "--mode",
        "online",
        "--stream",
        "--overlay",
        "--start",
        "0.5",
        "--end",
        "1.5",
        "--fps",
        "4",
        *FAST,
    ]
    _check_tasks_equal_alone(tmp_path, str(video), args, stdin=None, frames=4, name="clip")


def test_stream_with_two_tasks_in_offline_mode_is_refused(video: Path, tmp_path: Path) -> None:
    run = _vidpan("segment", "-", "--task", "vps,vss", "--mode", "offline", "--stream",
                  "--out", str(tmp_path / "o"), *FAST, stdin=video)  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "streaming post-processing is for --mode online" in run.stderr
    assert not (tmp_path / "o").exists()
