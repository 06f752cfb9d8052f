"""Inputs beyond files: stdin, URLs and capture devices, and a span / frame-rate selection.

:func:`open_source` is :func:`~vidpan.inference.video_io.open_video` plus:

- ``-``: a video stream read from stdin through PyAV (``av.open(sys.stdin.buffer)``): mkv,
  y4m, MPEG-TS, or an mp4 whose index comes first (``ffmpeg -movflags +faststart`` or a
  fragmented mp4; a plain mp4 keeps its index at the end, which a pipe cannot seek to);
- ``http://``, ``https://``, ``rtsp://``, ``rtmp://``, ``udp://``, ``tcp://``, ``srt://`` URLs,
  opened by FFmpeg's network protocols (same mp4 caveat for servers without range requests);
- capture devices ``/dev/video*`` (Linux, ``v4l2``).

These :class:`StreamSource`\\ s can be read once (``replayable = False``): whole-video modes keep
the frames they must show again in a spill on disk instead of decoding twice.

:class:`Span` (``--start`` / ``--end`` seconds, ``--max-frames``, ``--fps``) wraps any source
in a :class:`SpanSource`. Frame ``i`` of the source is at ``i / fps`` seconds (the video_io
decision: the i-th decoded frame, no timestamp reordering). Without ``--fps`` the frames with
``start ≤ t < end`` are kept; with ``--fps F`` output frame ``k`` is at ``start + k / F`` and
shows the latest source frame at or before that time (frames are dropped, or repeated when F
is above the source rate, as FFmpeg's ``fps`` filter). ``--max-frames`` stops after that many
output frames; a live source needs it (or ``--end``) to stop. Spans are decoded from the
start and skipped up to ``--start`` (exact, simple; slow for a start deep into a long file).
"""

from __future__ import annotations

import math
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO
from urllib.parse import urlparse

import numpy as np

from vidpan.config import DEFAULT_MAX_INPUT_PIXELS
from vidpan.errors import InputError
from vidpan.inference.video_io import DEFAULT_FOLDER_FPS, VideoSource, open_video

STREAM_SCHEMES = ("http", "https", "rtsp", "rtsps", "rtmp", "udp", "tcp", "srt")
_EPS = 1e-6  # seconds / ticks: nominal frame times are ratios of integers


def open_source(
    spec: str | Path,
    *,
    span: Span | None = None,
    stdin: BinaryIO | None = None,
    timeout: float = 10.0,
    max_pixels: int = DEFAULT_MAX_INPUT_PIXELS,
) -> VideoSource:
    """Open ``spec`` (a path, ``-`` for stdin, a URL or ``/dev/videoN``) and apply ``span``.

    Args:
        stdin: the stream ``-`` reads (default ``sys.stdin.buffer``).
        timeout: seconds FFmpeg waits on a network source before giving up.
        max_pixels: frames larger than this are refused (``inference.max_input_pixels``, 0 = no limit).
    """
    text = str(spec)
    source: VideoSource
    if text == "-":
        source = StreamSource(stdin if stdin is not None else sys.stdin.buffer, name="stdin", label="stdin")
    elif is_url(text):
        stem = PurePosixPath(urlparse(text).path).stem
        source = StreamSource(text, name=stem or "stream", label=text, options={"timeout": timeout})
    elif is_capture_device(text):
        check_capture_device(text)
        source = StreamSource(text, name=Path(text).name, label=text, format="v4l2")
    else:
        source = open_video(spec, max_pixels=max_pixels)
    if max_pixels and source.height * source.width > max_pixels:  # streams: from the first frame
        raise InputError(
            f"frame size {source.width}x{source.height} is above the limit of {max_pixels:,} pixels "
            "(inference.max_input_pixels; raise it with --set inference.max_input_pixels=N, 0 = no limit)",
            path=text,
        )
    if span is not None and span.active:
        source = SpanSource(source, span)
    return source


def is_url(text: str) -> bool:
    """Whether ``text`` is a URL of one of the :data:`STREAM_SCHEMES`."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.lower() in STREAM_SCHEMES


def is_capture_device(text: str) -> bool:
    """Whether ``text`` names a V4L2 capture device: ``/dev/videoN`` or a udev link under ``/dev/v4l/``."""
    return text.startswith(("/dev/video", "/dev/v4l/"))


def check_capture_device(path: str) -> None:
    """Raise a one-line :class:`InputError` naming ``path`` unless it is a character device this
    process can open read-write (what FFmpeg's v4l2 input needs). Opening a camera briefly is
    harmless; nothing is read. Whether it is a *video* device is for FFmpeg to say."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputError("no such capture device (`ls /dev/video*` lists the cameras)", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot read the capture device ({_reason(exc)})", path=path) from None
    if not stat.S_ISCHR(info.st_mode):
        kind = (
            "a folder"
            if stat.S_ISDIR(info.st_mode)
            else "a regular file"
            if stat.S_ISREG(info.st_mode)
            else "not a device"
        )
        raise InputError(f"not a capture device ({kind}, not a character device)", path=path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    except PermissionError:
        raise InputError(
            "permission denied on the capture device (add the user to the `video` group)", path=path
        ) from None
    except OSError as exc:  # e.g. ENXIO: the node exists but no driver or camera is behind it
        raise InputError(f"cannot open the capture device ({_reason(exc)})", path=path) from None
    os.close(fd)


class StreamSource(VideoSource):
    """A video stream PyAV reads once: stdin, a URL or a capture device (first video stream).

    The first frame is decoded when the source is opened (size, rotation, and a clear error
    before any model is loaded); iterating yields it and then the rest of the stream.
    """

    replayable = False

    def __init__(
        self,
        target: str | BinaryIO,
        *,
        name: str,
        label: str,
        format: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        import av
        import av.error

        self._errors = (av.error.FFmpegError, OSError, ValueError, EOFError)
        self.label = label
        self._format = format
        self.path = Path(name)
        self.name = name
        self.frame_names = None
        self._used = False
        open_options = {k: v for k, v in (options or {}).items() if k != "timeout"}
        timeout = (options or {}).get("timeout")
        try:
            self._container = av.open(target, mode="r", format=format, options=open_options, timeout=timeout)
        except self._errors as exc:
            raise InputError(
                f"cannot open as a video stream ({_reason(exc)}){self._hint()}", path=label
            ) from None
        try:
            if not self._container.streams.video:
                raise InputError("no video stream", path=label)
            stream = self._container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            self.fps = float(rate) if rate and rate > 0 else DEFAULT_FOLDER_FPS
            self.num_frames = int(stream.frames) if stream.frames and stream.frames > 0 else 0
            self.num_frames_exact = False
            self._frames = self._container.decode(stream)
            first = next(self._frames, None)
        except self._errors as exc:
            self._container.close()
            raise InputError(
                f"cannot decode the first frame ({_reason(exc)}){self._hint()}", path=label
            ) from None
        except InputError:
            self._container.close()
            raise
        if first is None:
            self._container.close()
            raise InputError("the video stream has no frames", path=label)
        self._size = (first.height, first.width)
        self._turns = round(first.rotation / 90.0) % 4
        self._first = self._rgb(first)
        self.height, self.width = (int(self._first.shape[0]), int(self._first.shape[1]))

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._used:
            raise InputError("a stream can be read only once", path=self.label)
        self._used = True
        index = 0
        try:
            yield self._first
            index = 1
            for frame in self._frames:
                yield self._rgb(frame)
                index += 1
        except self._errors as exc:
            raise InputError(f"decoding failed at frame {index}: {_reason(exc)}", path=self.label) from None
        finally:
            self.close()

    def close(self) -> None:
        """Release the stream (also done when iteration ends)."""
        self._container.close()

    def _rgb(self, frame: Any) -> np.ndarray:
        h, w = self._size
        rgb: np.ndarray = frame.to_ndarray(format="rgb24", width=w, height=h)
        return np.ascontiguousarray(np.rot90(rgb, self._turns)) if self._turns else rgb

    def _hint(self) -> str:
        if self._format == "v4l2":
            return "; not a V4L2 video capture device? (`v4l2-ctl --list-devices` lists them)"
        if self.label != "stdin":
            return ""
        return (
            "; pipe mkv, y4m or MPEG-TS, or an mp4 with its index first "
            "(ffmpeg -movflags +faststart, or a fragmented mp4)"
        )


@dataclass(frozen=True)
class Span:
    """A part of a video and an output frame rate (every field optional)."""

    start: float | None = None  # seconds
    end: float | None = None  # seconds, exclusive
    max_frames: int | None = None
    fps: float | None = None  # resample to this rate

    def __post_init__(self) -> None:
        for name in ("start", "end", "fps"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise InputError(f"--{name}: expected a number >= 0, got {value}")
        if self.fps is not None and self.fps <= 0:
            raise InputError(f"--fps: expected a rate > 0, got {self.fps}")
        if self.max_frames is not None and self.max_frames < 1:
            raise InputError(f"--max-frames: expected an integer >= 1, got {self.max_frames}")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise InputError(f"--end {self.end} must be after --start {self.start}")

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.start, self.end, self.max_frames, self.fps))

    def repeats(self, index: int, fps: float) -> int:
        """How many output frames source frame ``index`` (at ``index / fps`` s) becomes."""
        t, t_next = index / fps, (index + 1) / fps
        start = self.start or 0.0
        end = math.inf if self.end is None else self.end
        if self.fps is None:
            return int(start - _EPS <= t < end - _EPS)
        # Output ticks start + k / out in [t, min(t_next, end)) show this frame.
        lo = max(0, math.ceil((t - start) * self.fps - _EPS))
        hi = math.ceil((min(t_next, end) - start) * self.fps - _EPS)
        return max(0, hi - lo)

    def past_end(self, index: int, fps: float) -> bool:
        return self.end is not None and index / fps >= self.end - _EPS


class SpanSource(VideoSource):
    """``source`` restricted to a :class:`Span` (see the module docstring)."""

    def __init__(self, source: VideoSource, span: Span) -> None:
        self.source = source
        self.span = span
        self.path = source.path
        self.name = source.name
        self.height, self.width = source.height, source.width
        self.fps = float(span.fps) if span.fps is not None else source.fps
        self.replayable = getattr(source, "replayable", True)
        self.num_frames_exact = source.num_frames_exact
        self.frame_names = None
        counts = [span.repeats(i, source.fps) for i in range(source.num_frames)]
        total = sum(counts) if span.max_frames is None else min(sum(counts), span.max_frames)
        self.num_frames = total
        if source.frame_names is not None and all(c <= 1 for c in counts):
            names = [n for n, c in zip(source.frame_names, counts, strict=True) if c]
            self.frame_names = names[:total]
        if source.num_frames_exact and total == 0:
            raise InputError(self._empty(source.num_frames), path=source.path)

    def __iter__(self) -> Iterator[np.ndarray]:
        produced, seen = 0, 0
        limit = self.span.max_frames
        for index, frame in enumerate(self.source):
            seen = index + 1
            if self.span.past_end(index, self.source.fps):
                break
            for _ in range(self.span.repeats(index, self.source.fps)):
                if limit is not None and produced >= limit:
                    break
                yield frame
                produced += 1
            if limit is not None and produced >= limit:
                break  # before decoding another frame: a live source may never end
        if produced == 0:
            raise InputError(self._empty(seen), path=self.source.path)

    def _empty(self, frames: int) -> str:
        seconds = frames / self.source.fps
        return f"no frames in the span (--start {self.span.start or 0} s; the video has {frames} frames, {seconds:.2f} s)"


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).strip()
