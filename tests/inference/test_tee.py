"""A teed source is decoded once for several readers in threads; each reader sees every frame in
order, frames are dropped once all have read them, and a decode error reaches every reader."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from vidpan.errors import InputError
from vidpan.inference.array_source import ArrayVideoSource
from vidpan.inference.tee import tee
from vidpan.inference.video_io import VideoSource


class _Once(VideoSource):
    """A source that can be iterated once and counts the frames it produced; fails at ``fail_at``."""

    replayable = False

    def __init__(self, frames: np.ndarray, fail_at: int | None = None) -> None:
        self._inner = ArrayVideoSource(frames, name="once")
        for key in (
            "path",
            "name",
            "fps",
            "num_frames",
            "num_frames_exact",
            "height",
            "width",
            "frame_names",
        ):
            setattr(self, key, getattr(self._inner, key))
        self.fail_at = fail_at
        self.produced = 0
        self.iterations = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        self.iterations += 1
        for i, frame in enumerate(self._inner):
            if i == self.fail_at:
                raise InputError(f"decoding failed at frame {i}", path="once")
            self.produced += 1
            yield frame


def _frames(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 6, 3), np.uint8)


def _read_all(view: VideoSource, out: list[int], delay: float) -> None:
    for frame in view:
        out.append(int(frame[0, 0, 0]))
        time.sleep(delay)


def test_readers_in_threads_see_every_frame_from_one_decode() -> None:
    source = _Once(_frames(40))
    views = tee(source, 3)
    got: list[list[int]] = [[], [], []]
    threads = [threading.Thread(target=_read_all, args=(v, got[k], 0.001 * k)) for k, v in enumerate(views)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert got == [list(range(40))] * 3
    assert source.iterations == 1 and source.produced == 40
    assert views[0].replayable is False and views[0].name == "once" and views[0].num_frames == 40


def test_frames_are_dropped_once_every_reader_has_them() -> None:
    source = _Once(_frames(30))
    a, b = tee(source, 2)
    ia, ib = iter(a), iter(b)
    for _ in range(30):  # lockstep: at most one frame waits for the other reader
        next(ia)
        next(ib)
    assert a._tee.peak == 1
    b.close()  # a reader that leaves no longer holds frames back
    assert next(ia, None) is None


def test_a_reader_that_leaves_early_does_not_hold_frames() -> None:
    source = _Once(_frames(50))
    a, b = tee(source, 2)
    b.close()  # its predictor failed before reading anything
    assert sum(1 for _ in a) == 50
    assert a._tee.peak == 1


def test_a_decode_error_reaches_every_reader() -> None:
    source = _Once(_frames(20), fail_at=7)
    views = tee(source, 2)
    for view in views:
        with pytest.raises(InputError, match="frame 7"):
            for _ in view:
                pass
    assert source.iterations == 1
