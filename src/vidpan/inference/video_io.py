"""Video input for ``vidpan segment``: streaming frame readers and the test-time resize.

:func:`open_video` accepts a video file (anything the FFmpeg inside PyAV demuxes and decodes:
mp4, mkv, webm, avi, mov, ...) or a folder of frame images. Both yield RGB uint8 frames
[H, W, 3] one at a time, in order, so memory never grows with the length of the video; every new
iteration decodes again from the start.

Decisions (see ``docs/video_io.md``):

- **Rotation.** Display-matrix rotation (phones record portrait video as rotated landscape) is
  applied, rounded to a multiple of 90 degrees, as the ``ffmpeg`` command line and video players
  do: frames come out as the user sees them and ``height``/``width`` are the displayed size.
  Flips in the display matrix are ignored. JPEG EXIF orientation in frame folders is applied too
  (detectron2's ``read_image`` does the same).
- **Frame rate.** ``fps`` is the stream's average rate; variable-frame-rate streams are decoded
  in presentation order and frame ``i`` is simply the i-th decoded frame (no frames are
  duplicated or dropped to force a constant rate). Each frame's presentation time in seconds is
  kept in ``timestamps`` (filled as frames are decoded; ``frames.jsonl`` records it as
  ``time``), so VFR timing is not lost. Folders have no rate: ``folder_fps`` (default
  :data:`DEFAULT_FOLDER_FPS` = 24) is used and ``timestamps`` is None.
- **Frame count.** Exact for folders. For files it is the container header's frame count when
  the container stores one (mp4/mov/avi), else ``duration x fps`` rounded (mkv/webm), else 0;
  ``num_frames_exact`` is False for every file because damaged or edit-listed files can decode to
  a different number. The decoded count is what counts. A shortfall (a truncated download whose
  demuxer stops quietly) is logged as a warning and recorded in ``incomplete`` after the
  iteration, so ``vidpan segment`` can exit with a distinct code (3) unless ``--allow-partial``;
  an FFmpeg decode error mid-stream is an :class:`InputError`.
- **Size limit.** Frames larger than ``max_pixels`` (``inference.max_input_pixels``, default
  :data:`~vidpan.config.DEFAULT_MAX_INPUT_PIXELS` = 40 MP) are refused from the image or stream
  header, before any pixel is decoded (decompression bombs: a 12000 x 12000 PNG is tiny on disk).
- **Length limit.** The whole-video modes (``offline``; ``online`` / ``minvis`` with whole-video
  post-processing) keep per-frame tensors until the end, so a video longer than
  ``inference.max_frames`` (default :data:`~vidpan.config.DEFAULT_MAX_FRAMES`) is refused from
  its header, and stopped once decoding passes the limit (:func:`check_frame_limit`).
- **Pixel formats.** Grayscale, palette, CMYK, alpha (dropped) and 16-bit images are converted
  to RGB uint8 (16-bit samples keep their 8 most significant bits); 10-bit, 4:4:4 and alpha video
  streams go through FFmpeg's RGB conversion.
- **Colour.** YUV->RGB uses the matrix the stream is tagged with (BT.601 when untagged, as
  FFmpeg). A stream whose coded size changes mid-way is rescaled to the size of its first frame.

Test-time resize (:mod:`vidpan.inference.resize`, re-exported here) follows detectron2 ``ResizeShortestEdge(MIN_SIZE_TEST, MAX_SIZE_TEST)`` +
``ResizeTransform.apply_image`` for uint8 images (a PIL bilinear resize), as DVIS++ inference does
(``reference/dvis_reference.md`` §1.9). Padding to a multiple of 32 happens inside the model.
"""

from __future__ import annotations

import logging
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vidpan.config import DEFAULT_MAX_INPUT_PIXELS
from vidpan.errors import InputError
from vidpan.inference.frame_images import check_pixels as _check_pixels
from vidpan.inference.frame_images import read_image as _read_image
from vidpan.inference.resize import resize_frames, test_size

__all__ = [
    "DEFAULT_FOLDER_FPS",
    "FrameFolderSource",
    "VideoFileSource",
    "VideoSource",
    "open_video",
    "resize_frames",
    "test_size",
]

logger = logging.getLogger(__name__)

DEFAULT_FOLDER_FPS = 24.0
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
# Containers FFmpeg demuxes that hold video. Anything else is refused with a clear message
# rather than handed to FFmpeg's format probing (which accepts e.g. text files as "tty").
VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4", ".m4v", ".mov", ".qt", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".m2v", ".ts",
        ".mts", ".m2ts", ".flv", ".wmv", ".asf", ".ogv", ".ogg", ".3gp", ".3g2", ".mxf", ".vob",
        ".y4m", ".gif", ".h264", ".264", ".h265", ".hevc", ".ivf", ".nut", ".dv", ".f4v",
    }
)  # fmt: skip


# Errors FFmpeg (through PyAV) raises for unreadable or corrupt input.
def _av() -> Any:
    """PyAV, imported on first use (about 18 MB and 0.1 s that array and folder inputs never need)."""
    import av
    import av.error

    return av


def _decode_errors() -> tuple[type[BaseException], ...]:
    """What PyAV raises on a bad file (evaluated only when an exception is being matched)."""
    return (_av().error.FFmpegError, OSError, ValueError, EOFError)


def _natural_key(name: str) -> tuple[list[Any], str]:
    """Sort key ordering ``frame2`` before ``frame10`` (digits compare as numbers); the plain name
    breaks ties such as ``f01`` / ``f1``. ``re.split`` with a group alternates text and digits, so
    the list elements at equal positions always have the same type."""
    parts: list[Any] = [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name)]
    return parts, name


class VideoSource(ABC):
    """A video to segment: metadata plus a streaming iterator over its frames.

    Iterating yields RGB uint8 frames [H, W, 3] in order; each new iteration starts again at the
    first frame (decoding streams, nothing is cached).
    """

    path: Path
    name: str  # video id used for outputs: the file stem, or the folder name
    fps: float
    num_frames: int  # exact for folders; see num_frames_exact
    num_frames_exact: bool
    height: int  # displayed size (after rotation)
    width: int
    # Source file names of the frames (folders), else None; writers name outputs after them.
    frame_names: list[str] | None
    # Presentation time (s) of each decoded frame so far (files), else None (folders, arrays).
    timestamps: list[float] | None = None
    # Why the last complete iteration delivered fewer frames than the file declares, else None.
    incomplete: str | None = None

    @abstractmethod
    def __iter__(self) -> Iterator[np.ndarray]:
        """Frames in order, each [H, W, 3] uint8 RGB."""

    def iter_windows(self, size: int) -> Iterator[list[tuple[int, np.ndarray]]]:
        """Consecutive windows of ``size`` frames as lists of (frame index, frame [H, W, 3]);
        the last window may be shorter. Only one window is held in memory at a time."""
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        window: list[tuple[int, np.ndarray]] = []
        for index, frame in enumerate(self):
            window.append((index, frame))
            if len(window) == size:
                yield window
                window = []
        if window:
            yield window

    def __repr__(self) -> str:
        count = self.num_frames if self.num_frames_exact else f"~{self.num_frames}"
        return (
            f"{type(self).__name__}({str(self.path)!r}, {self.width}x{self.height}, "
            f"{self.fps:.3f} fps, {count} frames)"
        )


class VideoFileSource(VideoSource):
    """A video file decoded with PyAV (first video stream)."""

    def __init__(self, path: str | Path, *, max_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> None:
        self.path = Path(path)
        self.name = self.path.stem
        self.frame_names = None
        self.timestamps = []
        self.incomplete = None
        try:
            container = _av().open(str(self.path))
        except _decode_errors() as exc:
            raise InputError(f"cannot open as a video ({_reason(exc)})", path=self.path) from None
        with container:
            if not container.streams.video:
                raise InputError("no video stream in the file", path=self.path)
            stream = container.streams.video[0]
            # Refuse from the header, before FFmpeg allocates a single frame of that size.
            ctx = stream.codec_context
            _check_pixels(int(ctx.height or 0), int(ctx.width or 0), max_pixels, self.path, "declared")
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            self.fps = float(rate) if rate and rate > 0 else DEFAULT_FOLDER_FPS
            self.num_frames, self._count_from_header, self._duration = _frame_count(
                container, stream, self.fps
            )
            self.num_frames_exact = False
            # Decode the first frame: proves the stream is decodable, gives the true size and
            # the rotation (stream headers can lie about both).
            try:
                first = next(iter(container.decode(stream)), None)
            except _decode_errors() as exc:
                raise InputError(f"cannot decode the first frame ({_reason(exc)})", path=self.path) from None
            if first is None:
                raise InputError("the video stream has no frames", path=self.path)
            _check_pixels(first.height, first.width, max_pixels, self.path, "decoded")
            self._coded_size = (first.height, first.width)
            self._rotation = _quarter_turns(first.rotation)
            h, w = self._coded_size
            self.height, self.width = (w, h) if self._rotation % 2 else (h, w)

    def __iter__(self) -> Iterator[np.ndarray]:
        h, w = self._coded_size
        index = 0
        # Filled by the first pass as frames are decoded; later passes decode the same frames.
        times = self.timestamps if self.timestamps is not None else []
        self.timestamps = times
        try:
            with _av().open(str(self.path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"  # frame + slice threads: ~1.5x faster decode
                for frame in container.decode(stream):
                    # to_ndarray rescales a frame whose coded size changed mid-stream.
                    rgb: np.ndarray = frame.to_ndarray(format="rgb24", width=w, height=h)
                    if self._rotation:
                        rgb = np.ascontiguousarray(np.rot90(rgb, self._rotation))
                    if index == len(times):
                        times.append(_seconds(frame, index, self.fps))
                    yield rgb
                    index += 1
        except _decode_errors() as exc:
            raise InputError(
                f"decoding failed at frame {index}: {_reason(exc)} (corrupt or truncated file?)",
                path=self.path,
            ) from None
        # A shortfall usually means a truncated or damaged file whose demuxer stopped quietly.
        # Without a header count, compare times, not counts: a variable-frame-rate stream
        # decodes to a different count than duration x average rate but still reaches the end.
        self.incomplete = None
        if self._count_from_header:
            short = index != self.num_frames
        else:
            end = times[-1] + 1.0 / self.fps if times else 0.0
            short = self._duration > 0 and self._duration - end > max(2.0 / self.fps, 0.05 * self._duration)
        if self.num_frames and short:
            what = (
                "the container header's count" if self._count_from_header else "estimated from the duration"
            )
            logger.warning(
                "%s: decoded %d frames, expected %d (%s); truncated or damaged file?",
                self.path,
                index,
                self.num_frames,
                what,
            )
            if index < self.num_frames or not self._count_from_header:
                self.incomplete = (
                    f"decoded {index} of {self.num_frames} frames ({what}): truncated or damaged file"
                )


class FrameFolderSource(VideoSource):
    """A folder of frame images (jpg/jpeg/png/bmp/webp), in natural name order.

    Hidden files, sub-folders and files with other extensions are ignored. Every frame must have
    the size of the first one; a frame of another size raises :class:`InputError` naming it when
    it is reached.
    """

    def __init__(
        self, path: str | Path, *, fps: float = DEFAULT_FOLDER_FPS, max_pixels: int = DEFAULT_MAX_INPUT_PIXELS
    ) -> None:
        self.path = Path(path)
        self.max_pixels = max_pixels
        resolved = self.path.resolve()
        # VSPW keeps frames in data/<video>/origin: name such a folder after its video.
        self.name = resolved.parent.name if resolved.name == "origin" else resolved.name
        if fps <= 0:
            raise InputError(f"frame rate must be positive, got {fps}", path=self.path)
        self.fps = float(fps)
        try:
            entries = [p for p in self.path.iterdir() if not p.name.startswith(".")]
        except OSError as exc:
            raise InputError(f"cannot list the folder ({_reason(exc)})", path=self.path) from None
        files = sorted(
            (p for p in entries if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
            key=lambda p: _natural_key(p.name),
        )
        if not files:
            videos = sorted(p.name for p in entries if p.suffix.lower() in VIDEO_EXTENSIONS)
            hint = f"; it holds video files ({', '.join(videos[:3])}): pass one of them" if videos else ""
            exts = "/".join(sorted(e[1:] for e in IMAGE_EXTENSIONS))
            raise InputError(f"no frame images ({exts}) in the folder{hint}", path=self.path)
        self._files = files
        self.frame_names = [p.name for p in files]
        self.num_frames = len(files)
        self.num_frames_exact = True
        self.height, self.width = _read_image(files[0], max_pixels).shape[:2]

    def __iter__(self) -> Iterator[np.ndarray]:
        first = self._files[0]
        for p in self._files:
            rgb = _read_image(p, self.max_pixels)
            if rgb.shape[:2] != (self.height, self.width):
                raise InputError(
                    f"frame size {rgb.shape[0]}x{rgb.shape[1]} (HxW) differs from the first frame "
                    f"{first.name} ({self.height}x{self.width}); all frames of a video must have one size",
                    path=p,
                )
            yield rgb


def frame_limit_applies(mode: str, *, streaming: bool) -> bool:
    """Whether ``inference.max_frames`` bounds ``mode``: the modes that decide at the end of the
    video (offline; online / minvis with whole-video post-processing). Long mode and streaming
    online / minvis hold one chunk / window."""
    return mode == "offline" or (mode in ("online", "minvis") and not streaming)


def check_frame_limit(
    frames: int, limit: int, *, mode: str, path: str | Path | None = None, declared: bool = False
) -> None:
    """Raise an :class:`InputError` when ``frames`` (the header's count if ``declared``, else the
    frames decoded so far) is above ``limit`` (``inference.max_frames``; 0 = no limit)."""
    if not limit or frames <= limit:
        return
    what = f"the header declares {frames} frames" if declared else f"more than {limit} frames decoded"
    other = "--mode long" if mode == "offline" else "--stream"
    raise InputError(
        f"{what}, above the limit of {limit} frames for --mode {mode}, which keeps every frame's "
        f"tensors until the end (inference.max_frames; raise it with --set inference.max_frames=N, "
        f"0 = no limit, or use {other})",
        path=path,
    )


def open_video(
    path: str | Path, *, folder_fps: float = DEFAULT_FOLDER_FPS, max_pixels: int = DEFAULT_MAX_INPUT_PIXELS
) -> VideoSource:
    """Open a video file or a folder of frames for streaming.

    Args:
        path: a video file (see :data:`VIDEO_EXTENSIONS`) or a folder of frame images.
        folder_fps: frame rate reported for a folder of frames (folders carry none).
        max_pixels: largest frame (height x width) accepted (``inference.max_input_pixels``;
            0 = no limit).

    Raises:
        InputError: naming the file, if the path does not exist, has an unsupported extension,
            cannot be decoded, has no video stream or no frames, is a folder without images, or
            has frames above ``max_pixels``.
    """
    path = Path(path)
    if path.is_dir():
        return FrameFolderSource(path, fps=folder_fps, max_pixels=max_pixels)
    if not path.exists():
        raise InputError("no such video file or frame folder", path=path)
    if not path.is_file():  # a FIFO or device would block or never end
        raise InputError("not a regular file or folder (a pipe or device?)", path=path)
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        raise InputError(
            "is a single image; put the frames of a video in a folder and pass the folder", path=path
        )
    if suffix not in VIDEO_EXTENSIONS:
        raise InputError(
            f"unsupported extension {suffix or '(none)'!r}: expected a video file "
            f"({', '.join(sorted(VIDEO_EXTENSIONS))}) or a folder of frame images",
            path=path,
        )
    return VideoFileSource(path, max_pixels=max_pixels)


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    """A short reason for an FFmpeg/OS error, without the repeated file name PyAV appends."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).strip()


def _quarter_turns(rotation: float) -> int:
    """Counter-clockwise display rotation in degrees -> number of np.rot90 quarter turns (0..3)."""
    if rotation % 90:
        logger.warning("display rotation %s is not a multiple of 90 degrees; rounded", rotation)
    return round(rotation / 90.0) % 4


def _frame_count(container: Any, stream: Any, fps: float) -> tuple[int, bool, float]:
    """(frame count, whether the header stated it, duration in seconds or 0): the header's count,
    else duration x fps, else 0 (unknown)."""
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / _av().time_base
    if duration is None or not math.isfinite(duration) or duration <= 0:
        duration = 0.0
    if stream.frames and stream.frames > 0:
        return int(stream.frames), True, duration
    return (round(duration * fps) if duration else 0), False, duration


def _seconds(frame: Any, index: int, fps: float) -> float:
    """Presentation time of a decoded frame in seconds (index / fps when it has no pts)."""
    if frame.pts is not None and frame.time_base is not None:
        return round(float(frame.pts * frame.time_base), 6)
    return round(index / fps, 6)
