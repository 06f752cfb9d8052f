"""Frames already in memory as a :class:`~vidpan.inference.video_io.VideoSource` (the Python
API's ``predictor(video_array)`` and tests)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from vidpan.errors import InputError
from vidpan.inference.video_io import DEFAULT_FOLDER_FPS, VideoSource


class ArrayVideoSource(VideoSource):
    """Frames already in memory: uint8 [T, H, W, 3] RGB (a NumPy array or a list of frames)."""

    def __init__(
        self,
        frames: np.ndarray | Sequence[np.ndarray],
        *,
        name: str = "video",
        fps: float = DEFAULT_FOLDER_FPS,
    ) -> None:
        seq = list(frames)
        if not seq:
            raise InputError("no frames given")
        first = np.asarray(seq[0])
        if first.dtype != np.uint8 or first.ndim != 3 or first.shape[2] != 3:
            raise InputError(f"frames must be uint8 [H, W, 3] RGB, got {first.dtype} {first.shape}")
        for t, frame in enumerate(seq):
            if np.asarray(frame).shape != first.shape:
                raise InputError(f"frame {t} has shape {np.asarray(frame).shape}, frame 0 has {first.shape}")
        self._frames = seq
        self.path = Path(name)
        self.name = name
        self.fps = float(fps)
        self.num_frames = len(seq)
        self.num_frames_exact = True
        self.height, self.width = int(first.shape[0]), int(first.shape[1])
        self.frame_names = None

    def __iter__(self) -> Iterator[np.ndarray]:
        for frame in self._frames:
            yield np.asarray(frame)
