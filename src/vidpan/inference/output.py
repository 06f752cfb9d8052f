"""Streaming writers of per-frame results into an :class:`~vidpan.inference.output_dir.OutputDirectory`.

:class:`FrameWriter` is the streaming protocol every writer follows::

    with OutputDirectory(out_dir) as out:
        writer = SomeWriter(out, ...)
        writer.begin_video("video_a", frame_names=source.frame_names, fps=source.fps)
        for result, image in ...:          # frames in increasing index order
            writer.write(result, image=image)
        writer.end_video()                 # optional: begin_video / close end the video too
    # here every writer is closed and out_dir holds the complete output
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from vidpan.inference.output_dir import (
    MANIFEST,
    PARTIAL_PREFIX,
    OutputDirectory,
    check_output_location,
    read_manifest,
)
from vidpan.inference.regions import RegionStats, region_stats
from vidpan.structures import InstanceFrame, PanopticFrame, Segment, SemanticFrame

__all__ = [
    "MANIFEST",
    "PARTIAL_PREFIX",
    "FrameResult",
    "FrameWriter",
    "OutputDirectory",
    "bbox_union",
    "check_output_location",
    "instance_as_panoptic",
    "jsonable",
    "panoptic_regions",
    "read_manifest",
]

FrameResult = PanopticFrame | SemanticFrame | InstanceFrame


class FrameWriter(ABC):
    """A streaming writer of per-frame results (see the module docstring for the protocol).

    Frames of a video must come in strictly increasing ``index`` order. Output frame names are
    ``frame_names[index]``'s stem when the video was opened with frame names (a frame folder),
    else the zero-padded index (``00000000``).
    """

    def __init__(self, out: OutputDirectory) -> None:
        self.out = out
        self.video: str | None = None
        self.fps: float | None = None
        self._frame_names: Sequence[str] | None = None
        self._last_index = -1
        self._closed = False
        out.register(self)

    # -- protocol --------------------------------------------------------------------------

    def begin_video(
        self, video_id: str, *, frame_names: Sequence[str] | None = None, fps: float | None = None
    ) -> None:
        """Start a video (ends the previous one). ``video_id`` names its outputs."""
        self._check_open()
        if self.video is not None:
            self.end_video()
        if not video_id or video_id in (".", "..") or "/" in video_id or "\\" in video_id:
            raise ValueError(f"video id {video_id!r} cannot be used as a file name")
        self.video, self.fps, self._frame_names, self._last_index = video_id, fps, frame_names, -1
        self._start_video()

    def write(self, result: FrameResult, image: np.ndarray | None = None) -> None:
        """Write one frame's result; ``image`` is the input frame [H, W, 3] uint8 (overlay only)."""
        self._check_open()
        if self.video is None:
            raise RuntimeError("call begin_video() before write()")
        if result.index <= self._last_index:
            raise ValueError(
                f"frame {result.index} after frame {self._last_index}: frames must come in order"
            )
        self._last_index = result.index
        self._write(result, image)

    def end_video(self) -> None:
        """Finish the current video (no-op if none)."""
        if self.video is not None and not self._closed:
            self._end_video()
        self.video = None

    def close(self) -> None:
        """Finish the current video and finalise the outputs (idempotent)."""
        if self._closed:
            return
        self.end_video()
        self._finish()
        self._closed = True

    def abort(self) -> None:
        """Release files without finalising (the OutputDirectory discards everything)."""
        if self._closed:
            return
        self._closed = True
        self._release()

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.close()
        else:
            self.abort()

    # -- hooks -----------------------------------------------------------------------------

    def _start_video(self) -> None:  # noqa: B027 - optional hook
        pass

    @abstractmethod
    def _write(self, result: FrameResult, image: np.ndarray | None) -> None: ...

    def _end_video(self) -> None:  # noqa: B027 - optional hook
        pass

    def _finish(self) -> None:  # noqa: B027 - optional hook
        pass

    def _release(self) -> None:  # noqa: B027 - optional hook
        pass

    # -- helpers ---------------------------------------------------------------------------

    def frame_stem(self, index: int) -> str:
        """Output name (without extension) of frame ``index`` of the current video."""
        if self._frame_names is None:
            return f"{index:08d}"
        if not 0 <= index < len(self._frame_names):
            raise ValueError(
                f"frame {index} has no name (the video has {len(self._frame_names)} frame names)"
            )
        return Path(self._frame_names[index]).stem

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed")


def panoptic_regions(frame: PanopticFrame) -> tuple[RegionStats, list[tuple[int, Segment]]]:
    """Regions of a panoptic frame and, in the frame's listing order, (region row k, segment)
    for every listed segment present in the map (absent ones are dropped).

    Raises ValueError if the map holds an id that ``segments`` does not list, or if an id is
    listed twice or is <= 0: such a frame breaks the submission contract (the official evaluator
    raises ``KeyError``).
    """
    ids = frame.segment_ids
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(
            f"frame {frame.index}: segment_ids must be an integer [H, W] map, got {ids.dtype} {ids.shape}"
        )
    listed: set[int] = set()
    for seg in frame.segments:
        if seg.id in listed:
            raise ValueError(f"frame {frame.index}: segment id {seg.id} is listed twice")
        if seg.id <= 0:
            raise ValueError(f"frame {frame.index}: segment ids must be > 0, got {seg.id}")
        listed.add(seg.id)
    stats = region_stats(ids)
    row = stats.index()
    missing = sorted(set(row) - listed)
    if missing:
        raise ValueError(f"frame {frame.index}: segment ids {missing[:5]} are in the map but not listed")
    return stats, [(row[seg.id], seg) for seg in frame.segments if seg.id in row]


def instance_as_panoptic(frame: InstanceFrame) -> PanopticFrame:
    """A drawable / classifiable view of a VIS frame: instances painted lowest score first, so
    where masks overlap the best-scoring instance wins; instances with no pixel left are dropped."""
    shape = frame.masks.shape[1:] if frame.masks.ndim == 3 else (0, 0)
    ids = np.zeros(shape, np.int32)
    for n in sorted(range(len(frame.instances)), key=lambda n: frame.instances[n].score):
        ids[frame.masks[n]] = frame.instances[n].id
    present = set(np.unique(ids).tolist())
    return PanopticFrame(frame.index, ids, [s for s in frame.instances if s.id in present])


def bbox_union(a: Sequence[int], b: Sequence[int]) -> list[int]:
    """Union of two [x, y, w, h] boxes."""
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return [x0, y0, x1 - x0, y1 - y0]


def jsonable(value: Any) -> Any:
    """numpy scalars -> Python numbers for ``json``."""
    return value.item() if isinstance(value, np.generic) else value
