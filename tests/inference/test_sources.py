"""Inputs beyond files (``vidpan.inference.sources``): spans and resampling, a video read from a
pipe, an mp4 served over HTTP on loopback, and the errors for streams a pipe cannot read."""

from __future__ import annotations

import functools
import http.server
import io
import threading
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from vidpan.errors import InputError
from vidpan.inference.array_source import ArrayVideoSource
from vidpan.inference.sources import Span, SpanSource, StreamSource, open_source
from vidpan.inference.video_io import open_video


def numbered_frames(count: int, height: int = 48, width: int = 64) -> np.ndarray:
    """[T, H, W, 3] uint8 frames whose value encodes their index (survives H.264 roughly)."""
    return np.stack([np.full((height, width, 3), 8 * t, dtype=np.uint8) for t in range(count)])


def write_video(
    path: Path, frames: np.ndarray, *, fps: int = 6, fmt: str = "mp4", faststart: bool = True
) -> Path:
    """Encode ``frames`` with PyAV (mp4 with its index first unless ``faststart=False``)."""
    options = {"movflags": "+faststart"} if fmt == "mp4" and faststart else {}
    with av.open(str(path), "w", format=fmt, options=options) as out:
        stream = out.add_stream("libx264" if fmt in ("mp4", "matroska") else "rawvideo", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return path


def _index(frame: np.ndarray) -> int:
    return round(float(frame.mean()) / 8)


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        (Span(start=1.0), list(range(6, 12))),  # 6 fps: frames at >= 1 s
        (Span(end=0.5), [0, 1, 2]),
        (Span(start=0.5, end=1.5), [3, 4, 5, 6, 7, 8]),
        (Span(max_frames=4), [0, 1, 2, 3]),
        (Span(fps=3), [0, 2, 4, 6, 8, 10]),  # halve the rate
        (Span(fps=12, max_frames=5), [0, 0, 1, 1, 2]),  # double it: every frame twice
        (Span(start=0.5, fps=2), [3, 6, 9]),
    ],
)
def test_span_selects_and_resamples(span: Span, expected: list[int]) -> None:
    source = SpanSource(ArrayVideoSource(numbered_frames(12), fps=6), span)
    got = [_index(f) for f in source]
    assert got == expected
    assert source.num_frames == len(expected) and source.num_frames_exact
    assert source.fps == (span.fps or 6)


def test_span_keeps_frame_names_and_refuses_bad_values(tmp_path: Path) -> None:
    folder = tmp_path / "clip"
    folder.mkdir()
    from PIL import Image

    for t, frame in enumerate(numbered_frames(5)):
        Image.fromarray(frame).save(folder / f"f{t}.png")
    source = open_source(folder, span=Span(start=2 / 24))  # folders are 24 fps
    assert source.frame_names == ["f2.png", "f3.png", "f4.png"]
    with pytest.raises(InputError, match="no frames in the span"):
        open_source(folder, span=Span(start=10))
    for bad in (dict(fps=0), dict(start=-1), dict(max_frames=0), dict(start=2, end=1)):
        with pytest.raises(InputError):
            Span(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("fmt", "suffix"), [("matroska", ".mkv"), ("yuv4mpegpipe", ".y4m"), ("mp4", ".mp4")])
def test_stream_from_a_pipe_equals_the_file(fmt: str, suffix: str, tmp_path: Path) -> None:
    path = write_video(tmp_path / f"v{suffix}", numbered_frames(9), fmt=fmt)
    source = open_source("-", stdin=_Pipe(path.read_bytes()))
    assert isinstance(source, StreamSource) and not source.replayable and source.name == "stdin"
    frames = list(source)
    assert [_index(f) for f in frames] == list(range(9))
    assert all(np.array_equal(a, b) for a, b in zip(frames, open_video(path), strict=True))
    with pytest.raises(InputError, match="only once"):
        list(source)


def test_pipe_mp4_with_index_at_the_end_says_how_to_fix(tmp_path: Path) -> None:
    # Noise, so the file is larger than the buffer FFmpeg could seek back into.
    noise = np.random.default_rng(0).integers(0, 256, (12, 240, 320, 3), dtype=np.uint8)
    path = write_video(tmp_path / "late.mp4", noise, faststart=False)
    with pytest.raises(InputError, match="faststart"):
        open_source("-", stdin=_Pipe(path.read_bytes()))


@pytest.fixture()
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server on a free port serving ``tmp_path``."""
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_http_url(http_root: tuple[str, Path]) -> None:
    url, root = http_root
    write_video(root / "clip.mp4", numbered_frames(10))
    source = open_source(f"{url}/clip.mp4", span=Span(max_frames=7))
    assert source.name == "clip" and source.fps == 6
    frames = list(source)
    assert [_index(f) for f in frames] == list(range(7))
    local = list(open_video(root / "clip.mp4"))[:7]
    assert all(np.array_equal(a, b) for a, b in zip(frames, local, strict=True))
    with pytest.raises(InputError, match="404"):
        open_source(f"{url}/missing.mp4")


class _Pipe(io.RawIOBase):
    """A non-seekable byte stream, like ``sys.stdin.buffer`` on a pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def,override]
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass
