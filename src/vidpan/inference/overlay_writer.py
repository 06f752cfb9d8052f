"""``overlay/<video>.mp4``: the H.264 overlay video people look at (a :class:`FrameWriter`)."""

from __future__ import annotations

import contextlib
from fractions import Fraction
from typing import Any

import numpy as np

from vidpan.data.categories import CategoryMapping
from vidpan.inference.output import FrameResult, FrameWriter, OutputDirectory, instance_as_panoptic
from vidpan.inference.visualize import draw_panoptic, draw_semantic
from vidpan.structures import InstanceFrame, SemanticFrame


class OverlayVideoWriter(FrameWriter):
    """H.264 overlay video per input video: ``path_template.format(video=...)``.

    Each frame is the input frame blended with one colour per segment id (panoptic: stable per
    track; semantic: per class), with white outlines and class names. Encoded with libx264,
    yuv420p (the format every player decodes), which needs even sizes: an odd height or width is
    padded by one pixel (edge row/column repeated), never cropped. The frame rate is the one
    given to ``begin_video`` (else ``default_fps``).
    """

    def __init__(
        self,
        out: OutputDirectory,
        *,
        labels: CategoryMapping | None = None,
        path_template: str = "overlay/{video}.mp4",
        default_fps: float = 24.0,
        alpha: float = 0.5,
        outlines: bool = True,
        text: bool = True,
        legend: bool = False,
        crf: int = 23,
        preset: str = "veryfast",
    ) -> None:
        super().__init__(out)
        self.labels = labels
        self.path_template = path_template
        self.default_fps = default_fps
        self.draw_options: dict[str, Any] = {
            "alpha": alpha,
            "outlines": outlines,
            "text": text,
            "legend": legend,
        }
        self.codec_options = {"crf": str(crf), "preset": preset}
        self._container: Any = None
        self._stream: Any = None
        self._size: tuple[int, int] | None = None

    def _write(self, result: FrameResult, image: np.ndarray | None) -> None:
        if isinstance(result, SemanticFrame):
            rgb = draw_semantic(image, result, labels=self.labels, **self.draw_options)
        else:
            if isinstance(result, InstanceFrame):
                result = instance_as_panoptic(result)
            rgb = draw_panoptic(image, result, labels=self.labels, **self.draw_options)
        h, w = rgb.shape[:2]
        if self._container is None:
            self._open(h, w)
        elif (h, w) != self._size:
            raise ValueError(f"frame {result.index}: size {h}x{w} differs from the video's {self._size}")
        if h % 2 or w % 2:
            rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        import av

        for packet in self._stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
            self._container.mux(packet)

    def _open(self, h: int, w: int) -> None:
        fps = Fraction(self.fps or self.default_fps).limit_denominator(1001)  # 29.97 -> 30000/1001
        path = self.out.file(self.path_template.format(video=self.video))
        import av  # lazy: only when an overlay is written

        self._container = av.open(str(path), mode="w")
        self._stream = self._container.add_stream("libx264", rate=fps, options=self.codec_options)
        self._stream.width, self._stream.height = w + w % 2, h + h % 2
        self._stream.pix_fmt = "yuv420p"
        self._size = (h, w)

    def _end_video(self) -> None:
        if self._container is not None:
            for packet in self._stream.encode():  # flush delayed frames
                self._container.mux(packet)
            self._container.close()
        self._container = self._stream = self._size = None

    def _release(self) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):  # the partial file is deleted anyway
                self._container.close()
        self._container = self._stream = self._size = None
