"""One decode of a video read by several consumers: ``vidpan segment --task vps,vss`` on a stream.

A stream (stdin, a URL, a capture device: :class:`~vidpan.inference.sources.StreamSource`) can be
read once, but a multi-task run (:func:`~vidpan.inference.multitask.run_tasks`) runs one
predictor per task, each in its own thread, each iterating its own source. :func:`tee` gives each
of them a :class:`TeeView`: the first view to ask for frame ``i`` decodes it from the shared
source, the others take it from a buffer, and a frame is dropped once every view has read it.

The views advance together: the models share one ViT (:class:`~vidpan.inference.multitask.SharedViT`),
which lets a model run at most ``capacity`` ViT inputs ahead of the slowest, so the buffer holds
about ``capacity + 1`` windows of frames, never the whole stream. A view that stops early (its
predictor failed) stops counting. A decode error is raised in every view that reaches it.
Every view gets the same arrays: consumers must not write into a frame (vidpan does not: the
resize and the overlay painting make new arrays).

Views are read once (``replayable = False``): a whole-video mode keeps the frames it shows again in
a spill on disk, as for the stream itself. Files and folders need no tee: each task opens its own
reader (:func:`vidpan.inference.tasks.segment_tasks`).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator

import numpy as np

from vidpan.inference.video_io import VideoSource


class _Tee:
    """The shared state of :func:`tee`'s views: the source's iterator and the unread frames."""

    def __init__(self, source: VideoSource, readers: int) -> None:
        self.source = source
        self._frames: Iterator[np.ndarray] | None = None  # started by the first read
        self._buffer: deque[np.ndarray] = deque()  # frames base .. base + len - 1
        self._base = 0
        self._next = [0] * readers  # the next frame each view reads; -1: the view left
        self._done = False
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self.decoded = 0  # frames read from the source
        self.peak = 0  # most frames buffered at once

    def read(self, reader: int, index: int) -> np.ndarray | None:
        """Frame ``index`` for view ``reader`` (None after the last frame)."""
        with self._lock:
            while index >= self._base + len(self._buffer):
                if self._error is not None:
                    raise self._error
                if self._done:
                    return None
                if self._frames is None:
                    self._frames = iter(self.source)
                try:
                    frame = next(self._frames)
                except StopIteration:
                    self._done = True
                    continue
                except BaseException as exc:  # raised here and in every view that reaches it
                    self._error = exc
                    raise
                self._buffer.append(frame)
                self.decoded += 1
                self.peak = max(self.peak, len(self._buffer))
            frame = self._buffer[index - self._base]
            self._next[reader] = index + 1
            self._trim()
            return frame

    def leave(self, reader: int) -> None:
        """View ``reader`` reads nothing more; the source is closed once every view left."""
        with self._lock:
            if self._next[reader] < 0:
                return
            self._next[reader] = -1
            self._trim()
            if all(n < 0 for n in self._next) and self._frames is not None:
                close = getattr(self._frames, "close", None)
                if close is not None:
                    close()  # a generator: runs the source's cleanup (closes the stream)

    def _trim(self) -> None:
        active = [n for n in self._next if n >= 0]
        keep_from = min(active) if active else self._base + len(self._buffer)
        while self._buffer and self._base < keep_from:
            self._buffer.popleft()
            self._base += 1


class TeeView(VideoSource):
    """One consumer's view of a teed source: its metadata, and its frames read once."""

    replayable = False

    def __init__(self, tee: _Tee, reader: int) -> None:
        source = tee.source
        self._tee = tee
        self._reader = reader
        self._used = False
        self.path = source.path
        self.name = source.name
        self.fps = source.fps
        self.num_frames = source.num_frames
        self.num_frames_exact = source.num_frames_exact
        self.height, self.width = source.height, source.width
        self.frame_names = source.frame_names

    @property
    def incomplete(self) -> str | None:  # set by the shared source as it is read
        return self._tee.source.incomplete

    @incomplete.setter
    def incomplete(self, value: str | None) -> None:
        self._tee.source.incomplete = value

    @property
    def timestamps(self) -> list[float] | None:
        return self._tee.source.timestamps

    @timestamps.setter
    def timestamps(self, value: list[float] | None) -> None:
        self._tee.source.timestamps = value

    def close(self) -> None:
        """Read nothing more (also when iteration ends); the buffer no longer waits for this view."""
        self._tee.leave(self._reader)

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._used:
            raise RuntimeError(f"{self.name}: a teed view can be read only once")
        self._used = True
        return self._frames()

    def _frames(self) -> Iterator[np.ndarray]:
        index = 0
        try:
            while (frame := self._tee.read(self._reader, index)) is not None:
                yield frame
                index += 1
        finally:
            self._tee.leave(self._reader)


def tee(source: VideoSource, readers: int) -> list[TeeView]:
    """``readers`` views of ``source`` that decode it once between them (module docstring)."""
    if readers < 1:
        raise ValueError(f"tee needs at least one reader, got {readers}")
    shared = _Tee(source, readers)
    return [TeeView(shared, k) for k in range(readers)]
