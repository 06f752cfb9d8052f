"""``vidpan segment`` on inputs that are not files, in real processes: a video piped into stdin
(``-``) and an mp4 served by a loopback HTTP server, with the shipped model."""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import av
import numpy as np
import pytest

from vidpan.data.synthetic import generate
from vidpan.demo import SHIPPED_WEIGHTS
from vidpan.inference.video_io import open_video

FAST = ["--set", "inference.short_side=64", "--no-progress"]


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """12 frames of a synthetic video (96x160)."""
    data = generate(tmp_path_factory.mktemp("synth"), videos=1, frames=12, size=(96, 160), seed=5,
                    val_fraction=1.0, mp4=True)  # fmt: skip
    (mp4,) = sorted(data.root.rglob("*.mp4"))
    return np.stack(list(open_video(mp4)))


def _encode(path: Path, frames: np.ndarray, fmt: str) -> Path:
    options = {"movflags": "+faststart"} if fmt == "mp4" else {}  # an mp4 index first, for streams
    with av.open(str(path), "w", format=fmt, options=options) as out:
        stream = out.add_stream("libx264", rate=6)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return path


def _vidpan(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "vidpan", *args], input=stdin, capture_output=True,
                          env=env, timeout=300)  # fmt: skip


def test_segment_reads_a_pipe(frames: np.ndarray, tmp_path: Path) -> None:
    video = _encode(tmp_path / "clip.mkv", frames, "matroska")
    common = ["--weights", str(SHIPPED_WEIGHTS), "--mode", "online", "--stream", "--max-frames", "7", *FAST]
    piped = _vidpan("segment", "-", "--out", str(tmp_path / "piped"), *common, stdin=video.read_bytes())
    assert piped.returncode == 0, piped.stderr.decode()
    assert b"stdin: 7 frames 160x96" in piped.stdout
    direct = _vidpan("segment", str(video), "--out", str(tmp_path / "direct"), *common)
    assert direct.returncode == 0, direct.stderr.decode()
    a = sorted((tmp_path / "piped" / "pan_pred" / "stdin").iterdir())
    b = sorted((tmp_path / "direct" / "pan_pred" / "clip").iterdir())
    assert len(a) == len(b) == 7
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b, strict=True))
    # Bad bytes on stdin: exit 2, one line naming stdin, nothing written.
    bad = _vidpan("segment", "-", "--out", str(tmp_path / "bad"), *common, stdin=b"not a video" * 100)
    assert bad.returncode == 2 and b"stdin" in bad.stderr and b"Traceback" not in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_segment_reads_a_url(frames: np.ndarray, tmp_path: Path) -> None:
    root = tmp_path / "www"
    root.mkdir()
    _encode(root / "clip.mp4", frames, "mp4")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.mp4"
        # Offline decides at the end: the overlay's frames come back from a spill (a URL is read once).
        run = _vidpan("segment", url, "--weights", str(SHIPPED_WEIGHTS), "--mode", "offline", "--overlay",
                      "--start", "0.5", "--out", str(tmp_path / "out"), *FAST)  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert run.returncode == 0, run.stderr.decode()
    assert b"clip: 9 frames 160x96" in run.stdout  # 12 frames at 6 fps from 0.5 s
    assert len(list((tmp_path / "out" / "pan_pred" / "clip").iterdir())) == 9
    with av.open(str(tmp_path / "out" / "overlay" / "clip.mp4")) as overlay:
        assert sum(1 for _ in overlay.decode(video=0)) == 9


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass
