"""A video session: frames in one at a time, decided frames out (the inference primitive).

::

    session = predictor.start(mode="online", task="vps")
    for frame in frames:                      # RGB uint8 [H, W, 3]
        for result in session.step(frame):    # the frames decided so far
            ...
    for result in session.close():            # the rest
        ...

:meth:`Session.step` buffers frames until a window (``inference.window_size`` frames) is full,
then segments and tracks it and hands it to the mode (:mod:`vidpan.inference.modes`). What
comes back when: ``online`` / ``minvis`` with streaming post-processing (the session default),
every window as soon as it is full; ``long``, every refiner chunk; ``offline`` and whole-video
``online``, everything at :meth:`Session.close`. Results are
:class:`~vidpan.inference.output.FrameResult`\\ s with their frame index, in increasing order,
each frame once.

The session keeps no input frame beyond the window being filled; its memory is bounded by the
window (online streaming) or the chunk (long); whole-video decisions keep per-window tensors
in a :class:`~vidpan.inference.spill.TensorSpill` (disk). :attr:`Session.state` is the whole
state, typed: the frame counters, the pending window and the mode's own state dataclass.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType

import numpy as np

from vidpan.errors import InputError
from vidpan.inference.context import Mode, PostProcess, RunContext, Task
from vidpan.inference.decide import FrameResult
from vidpan.inference.modes.base import ModeRunner, build_mode
from vidpan.inference.video_io import check_frame_limit, frame_limit_applies
from vidpan.inference.window import segment_window


@dataclass
class SessionState:
    """Everything a session carries from frame to frame."""

    mode: Mode
    task: Task
    postprocess: PostProcess
    height: int | None  # frame size: given to ``start`` or taken from the first frame
    width: int | None
    frames_in: int = 0  # frames given to step()
    frames_out: int = 0  # results returned so far
    pending: list[np.ndarray] = field(default_factory=list)  # the window being filled
    closed: bool = False
    mode_state: object = None  # the mode's state dataclass (OnlineState, OfflineState, LongState)


class Session:
    """One video, frame by frame. Created by :meth:`VideoPredictor.start`; see the module docstring.

    Use as a context manager (or call :meth:`close`) so spilled tensors are always removed.
    """

    def __init__(
        self,
        ctx: RunContext,
        *,
        mode: Mode,
        task: Task,
        postprocess: PostProcess,
        height: int | None = None,
        width: int | None = None,
    ) -> None:
        self.ctx = ctx
        self._runner: ModeRunner = build_mode(ctx, mode, task, streaming=postprocess == "stream")
        self._state = SessionState(mode, task, postprocess, height, width)
        self._window = ctx.config.inference.window_size
        if self._window < 1:
            raise InputError(f"inference.window_size: expected >= 1, got {self._window}")
        # inference.max_frames: only the modes that keep every frame's tensors to the end.
        limited = frame_limit_applies(mode, streaming=postprocess == "stream")
        self._frame_limit = ctx.config.inference.max_frames if limited else 0

    # -- public API ---------------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        self._state.mode_state = self._runner.state
        return self._state

    @property
    def decides_at_end(self) -> bool:
        """True when every result comes from :meth:`close` (offline, whole-video online)."""
        return self._runner.decides_at_end

    @property
    def timings(self) -> dict[str, float]:
        """Seconds per stage so far (decode, segmenter, tracker, refiner, postprocess, ...)."""
        return dict(self.ctx.timer.seconds)

    def step(self, frame: np.ndarray) -> list[FrameResult]:
        """Add the next frame (RGB uint8 [H, W, 3]); return the frames decided by it (often none)."""
        st = self._state
        if st.closed:
            raise RuntimeError("step() after close()")
        frame = np.asarray(frame)
        if st.height is None or st.width is None:
            st.height, st.width = (int(frame.shape[0]), int(frame.shape[1])) if frame.ndim == 3 else (0, 0)
        if frame.dtype != np.uint8 or frame.shape != (st.height, st.width, 3):
            raise InputError(
                f"frame {st.frames_in}: expected uint8 [{st.height}, {st.width}, 3] RGB, "
                f"got {frame.dtype} {list(frame.shape)}"
            )
        if self._frame_limit and st.frames_in >= self._frame_limit:
            check_frame_limit(st.frames_in + 1, self._frame_limit, mode=st.mode)
        st.pending.append(frame)
        st.frames_in += 1
        if len(st.pending) < self._window:
            return []
        return self._flush_window()

    def close(self) -> Iterator[FrameResult]:
        """End the video: the frames not returned yet, decided lazily as the iterator is consumed
        (a whole-video decision never holds all its frames at once). Consume it fully."""
        st = self._state
        if st.closed:
            return iter(())
        st.closed = True
        return self._finish()

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._state.closed = True
        self._state.pending.clear()
        self._runner.release()

    # -- internals ----------------------------------------------------------------------------

    def _flush_window(self) -> list[FrameResult]:
        st = self._state
        images, st.pending = st.pending, []
        start = st.frames_in - len(images)
        window = segment_window(self.ctx, list(range(start, st.frames_in)), images)
        del images
        self.ctx.advance("segment", len(window.indices))
        out = [self._count(r) for r in self._runner.add(window)]
        return out

    def _finish(self) -> Iterator[FrameResult]:
        try:
            if self._state.pending:
                yield from self._flush_window()
            for result in self._runner.finish():
                yield self._count(result)
        finally:
            self._runner.release()

    def _count(self, result: FrameResult) -> FrameResult:
        self._state.frames_out += 1
        self.ctx.advance("emit")
        return result
