"""``inference.max_frames``: the whole-video modes refuse a video longer than the limit from its
header (exit 2, one line naming the limit, nothing written) and stop one that decodes past it;
streaming online and long mode are not limited."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from vidpan.cli.main import main
from vidpan.config import InferenceConfig
from vidpan.demo import SHIPPED_WEIGHTS
from vidpan.errors import InputError
from vidpan.inference.predictor import VideoPredictor

FAST = ["--weights", str(SHIPPED_WEIGHTS), "--no-progress", "--set", "inference.short_side=0"]


def _video(path: Path, frames: int = 8) -> Path:
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=6)
        stream.height, stream.width, stream.pix_fmt = 32, 48, "yuv420p"
        for t in range(frames):
            image = np.full((32, 48, 3), 20 * t, dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    return path


def test_config_range() -> None:
    assert InferenceConfig().max_frames > 0
    assert InferenceConfig(max_frames=0).max_frames == 0  # no limit
    with pytest.raises(InputError, match="max_frames"):
        InferenceConfig(max_frames=-1)


def test_offline_refuses_a_long_video_up_front(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = _video(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    rc = main(["segment", str(clip), "--out", str(out), "--mode", "offline", *FAST,
               "--set", "inference.max_frames=5"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err
    assert "clip.mp4" in lines[0] and "8 frames" in lines[0]
    assert "limit of 5 frames" in lines[0] and "--set inference.max_frames=N" in lines[0]
    assert not out.exists()
    assert not list(tmp_path.glob(".*partial*"))


def test_streaming_and_long_modes_are_not_limited(tmp_path: Path) -> None:
    clip = _video(tmp_path / "clip.mp4")
    for mode in (["online", "--stream"], ["long"]):
        out = tmp_path / mode[0]
        assert main(["segment", str(clip), "--out", str(out), "--mode", *mode, *FAST,
                     "--set", "inference.max_frames=5"]) == 0  # fmt: skip
        assert (out / "pred.json").is_file()


def test_session_stops_past_the_limit() -> None:
    """A source whose header says less than it decodes: the session stops at the limit."""
    predictor = VideoPredictor.from_pretrained(SHIPPED_WEIGHTS, overrides=["inference.max_frames=5"])
    frame = np.zeros((32, 48, 3), dtype=np.uint8)
    with predictor.start(mode="offline", task="vps") as session:
        for _ in range(5):
            session.step(frame)
        with pytest.raises(InputError, match=r"more than 5 frames decoded.*inference\.max_frames"):
            session.step(frame)
    with predictor.start(mode="online", task="vps", postprocess="stream") as session:
        for _ in range(7):
            session.step(frame)  # streaming: bounded by the window, no limit
