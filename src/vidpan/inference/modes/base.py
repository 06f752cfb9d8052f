"""The interface every inference mode implements, and the one place a mode is chosen.

A mode receives the segmented windows of a video in order (:meth:`ModeRunner.add`) and yields
the frames it can decide after each one; :meth:`ModeRunner.finish` decides and yields the rest
once the video has ended. Results carry their frame index in the video and come in increasing
index order, each frame exactly once. A mode keeps only its own explicit state dataclass
(``state``) plus, for whole-video decisions, the per-window tensors in a
:class:`~vidpan.inference.spill.TensorSpill`.

=========  ======================================  =================================
mode       decides                                 state held in memory
=========  ======================================  =================================
online     every window at once (``stream``)       tracker state, running class sum
           or the whole video at the end
minvis     as online (no tracker: MinVIS matching)  last frame's aligned embeddings
offline    the whole video at the end (refiner)    per-frame query embeddings
long       per refiner chunk                       one chunk of per-frame tensors
=========  ======================================  =================================
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

from vidpan.errors import InputError
from vidpan.inference.context import Mode, RunContext, Task
from vidpan.inference.decide import FrameResult
from vidpan.inference.window import Window


class ModeRunner(ABC):
    """One video through one mode. ``state`` is the mode's typed state (inspectable)."""

    #: True when the mode decides every frame only once the video has ended (offline, and
    #: online / minvis with whole-video post-processing).
    decides_at_end: bool = False

    def __init__(self, ctx: RunContext, task: Task) -> None:
        self.ctx = ctx
        self.task: Task = task

    @property
    @abstractmethod
    def state(self) -> object:
        """The mode's state dataclass (a snapshot reference, not a copy)."""

    @abstractmethod
    def add(self, window: Window) -> Iterator[FrameResult]:
        """Take the next window; yield the frames decided by it. Must be consumed fully."""

    @abstractmethod
    def finish(self) -> Iterator[FrameResult]:
        """The video has ended: decide and yield every frame not yielded yet."""

    def release(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Drop spilled tensors (called once the session is closed, also after an error)."""


def build_mode(ctx: RunContext, mode: Mode, task: Task, *, streaming: bool) -> ModeRunner:
    """The runner of ``mode`` (imports here keep each mode module independent of the others)."""
    if mode == "online":
        from vidpan.inference.modes.online import OnlineMode, TrackerAssociation

        return OnlineMode(ctx, task, TrackerAssociation(ctx), streaming=streaming)
    if mode == "minvis":
        from vidpan.inference.modes.minvis import MinvisAssociation
        from vidpan.inference.modes.online import OnlineMode

        return OnlineMode(ctx, task, MinvisAssociation(), streaming=streaming)
    if mode == "offline":
        from vidpan.inference.modes.offline import OfflineMode

        return OfflineMode(ctx, task)
    if mode == "long":
        from vidpan.inference.modes.long import LongMode

        return LongMode(ctx, task)
    raise InputError(f"mode: expected online, offline, long or minvis, got {mode!r}")
