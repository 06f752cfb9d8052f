"""YouTube-VIS results (``results.json``) for ``--task vis``, readable by the official tools.

The YouTube-VIS / OVIS evaluation (the ``ytvos`` fork of ``pycocotools``) reads a list of
``{"video_id", "category_id", "score", "segmentations"}`` with one *compressed* COCO RLE per frame
(``counts`` a string); it rejects the uncompressed run-length lists and counts every entry as a
thing instance. :class:`YTVISResultsWriter` writes exactly that, for thing classes only.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from vidpan.data.categories import CategoryMapping
from vidpan.inference.output import FrameResult, FrameWriter, OutputDirectory
from vidpan.structures import InstanceFrame


def rle_encode(mask: np.ndarray) -> dict[str, Any]:
    """COCO *compressed* RLE of a [H, W] bool mask, as ``pycocotools.mask.encode`` returns it
    with ``counts`` as ``str`` (JSON-ready): ``{"size": [H, W], "counts": "..."}``.

    This is what the YouTube-VIS / OVIS evaluation (``pycocotools`` / ``ytvos``) reads; the
    uncompressed form (a list of run lengths) is only accepted for crowd ground truth.
    """
    try:
        from pycocotools import mask as mask_utils
    except ImportError:
        return _rle_compress(mask)
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _rle_compress(mask: np.ndarray) -> dict[str, Any]:
    """The same string pycocotools' ``rleToString`` writes (LEB128-like 5-bit groups, each run
    after the second stored as the difference to the run two before): used when pycocotools
    is not installed; tested equal to it."""
    flat = np.asarray(mask, dtype=bool).flatten(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate([[0], change, [flat.size]])).tolist() if flat.size else [0]
    if flat.size and flat[0]:
        counts = [0, *counts]
    out = []
    for i, run in enumerate(counts):
        x = int(run) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": "".join(out)}


class YTVISResultsWriter(FrameWriter):
    """VIS results in the YouTube-VIS submission format (``results.json``): one entry per
    (track, class) pair and video, ``{"video_id", "category_id", "score", "segmentations"}`` with
    one compressed COCO RLE per frame (``counts`` a string, :func:`rle_encode`; an empty RLE where
    the instance has no pixel), as the official evaluation and DVIS++ write it.

    Only thing classes are instances: stuff predictions (sky, road) are left out. ``video_id`` is
    the video name, as an integer when the name is one (YouTube-VIS GT files number their videos;
    pass ``video_ids`` to map names to the GT's ids). Entries are assembled per video in memory
    (RLE is compact) and written at the end.
    """

    def __init__(
        self,
        out: OutputDirectory,
        *,
        labels: CategoryMapping | None = None,
        filename: str = "results.json",
        video_ids: dict[str, int] | None = None,
    ) -> None:
        super().__init__(out)
        self.labels = labels
        self.video_ids = video_ids or {}
        self.path = out.file(filename)
        self._results: list[dict[str, Any]] = []
        self._video: dict[int, dict[str, Any]] = {}
        self._frames = 0

    def _start_video(self) -> None:
        self._video = {}
        self._frames = 0

    def _video_id(self) -> int | str:
        assert self.video is not None
        if self.video in self.video_ids:
            return int(self.video_ids[self.video])
        return int(self.video) if self.video.isdigit() else self.video

    def _write(self, result: FrameResult, image: np.ndarray | None) -> None:
        if not isinstance(result, InstanceFrame):
            raise TypeError("YTVISResultsWriter writes InstanceFrame results (task vis)")
        shape = tuple(result.masks.shape[1:])
        for n, inst in enumerate(result.instances):
            if not inst.isthing:
                continue
            entry = self._video.get(inst.id)
            if entry is None:
                category = (
                    inst.category_id if self.labels is None else self.labels.to_dataset(inst.category_id)
                )
                entry = {"video_id": self._video_id(), "category_id": int(category), "score": float(inst.score),
                         "segmentations": [rle_encode(np.zeros(shape, bool))] * self._frames}  # fmt: skip
                self._video[inst.id] = entry
            entry["segmentations"].append(rle_encode(result.masks[n]))
        self._frames += 1
        empty = rle_encode(np.zeros(shape, bool))
        for entry in self._video.values():  # instances absent from this frame
            if len(entry["segmentations"]) < self._frames:
                entry["segmentations"].append(empty)

    def _end_video(self) -> None:
        self._results.extend(self._video.values())
        self._video = {}

    def _finish(self) -> None:
        self.path.write_text(json.dumps(self._results) + "\n", encoding="utf-8")
