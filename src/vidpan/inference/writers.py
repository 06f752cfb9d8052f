"""Streaming writers of ``vidpan segment`` results, one frame at a time.

All write into an :class:`~vidpan.inference.output.OutputDirectory` (atomic: complete or
absent) and follow the :class:`~vidpan.inference.output.FrameWriter` protocol
(``begin_video`` / ``write`` / ``end_video`` / ``close``). Layout inside the output directory:

- :class:`VIPSegSubmissionWriter` -- ``pred.json`` + ``pan_pred/<video>/<frame>.png``: the
  official VIPSeg submission (``reference/metrics_reference.md`` §1.4), scorable by
  ``vidpan eval vps`` and the official scripts.
- :class:`SemanticPNGWriter` -- ``sem_pred/<video>/<frame>.png``: VSPW-style single-channel
  uint8 PNGs of 0-based dataset class ids (255 = void), for ``vidpan eval vss``.
- :class:`~vidpan.inference.overlay_writer.OverlayVideoWriter` -- ``overlay/<video>.mp4``: H.264
  overlay for people (re-exported here).
- :class:`FrameJSONWriter` -- ``frames.jsonl``: one JSON object per line per frame.
- :class:`~vidpan.inference.vis_results.YTVISResultsWriter` -- ``results.json``: YouTube-VIS
  results (compressed RLE, things only; re-exported here).

Memory is constant in the video length: PNGs are written as frames arrive, JSON is streamed
into the file (``pred.json`` is only valid once closed, which the atomic directory guarantees).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TextIO

import numpy as np

from vidpan.data.categories import CategoryMapping
from vidpan.data.formats.rgb_id import IdGenerator, encode_png, id2rgb
from vidpan.errors import InputError
from vidpan.inference.output import (
    FrameResult,
    FrameWriter,
    OutputDirectory,
    bbox_union,
    instance_as_panoptic,
    panoptic_regions,
)
from vidpan.inference.overlay_writer import OverlayVideoWriter
from vidpan.inference.regions import region_stats
from vidpan.inference.video_io import VideoSource
from vidpan.inference.vis_results import YTVISResultsWriter, rle_encode
from vidpan.structures import InstanceFrame, PanopticFrame, SemanticFrame

VOID_LABEL = 255  # VSPW void / ignore value in semantic PNGs

__all__ = [
    "FrameJSONWriter",
    "OverlayVideoWriter",
    "SemanticPNGWriter",
    "VIPSegSubmissionWriter",
    "YTVISResultsWriter",
    "rle_encode",
]


class VIPSegSubmissionWriter(FrameWriter):
    """VIPSeg submission: ``pred.json`` + RGB-id PNGs ``<masks_dir>/<video>/<frame>.png``.

    Segment ids are colours (``id = R + 256 G + 65536 B``) chosen as DVIS++ ``VPSEvaluator``
    does, with a fresh seeded :class:`IdGenerator` per video: a stuff segment gets its dataset
    category's colour, a thing segment the category colour if free else a random nearby colour.
    Each (input segment id, dataset category) pair keeps its colour for the whole video, so a
    track is one id in every frame; never 0, never shared between things or with stuff. Stuff
    segments of the same category share the category colour, i.e. they merge (DVIS++ merges stuff
    by class too). A track whose class changes gets a new id for the new class.

    Per frame, ``segments_info`` lists exactly the ids present in the PNG (id, dataset
    ``category_id``, ``iscrowd`` 0, ``area``, ``bbox`` [x, y, w, h]), in the frame's segment order.

    Args:
        out: the output directory.
        labels: model class -> dataset category (ids, isthing, colours).
        pred_json: file name of the JSON inside the output directory.
        masks_dir: folder of the PNGs inside the output directory.
        seed: colour seed of the thing instances.
    """

    def __init__(
        self,
        out: OutputDirectory,
        *,
        labels: CategoryMapping,
        pred_json: str = "pred.json",
        masks_dir: str = "pan_pred",
        seed: int = 0,
    ) -> None:
        stuff_colors: dict[tuple[int, int, int], str] = {}
        for c in labels.categories():
            if not c.isthing:
                if c.color in stuff_colors:
                    raise InputError(
                        f"stuff categories {stuff_colors[c.color]!r} and {c.name!r} share the colour "
                        f"{c.color}: their segment ids would collide"
                    )
                stuff_colors[c.color] = c.name
            if c.color == (0, 0, 0) and not c.isthing:
                raise InputError(f"stuff category {c.name!r} has colour (0, 0, 0), which is id 0 (void)")
        super().__init__(out)
        self.labels = labels
        self.masks_dir = masks_dir
        self.seed = seed
        self._generator_args = {c.id: (c.isthing, c.color) for c in labels.categories()}
        self._json: TextIO | None = out.file(pred_json).open("w", encoding="utf-8")
        self._json.write('{"annotations": [')
        self._videos_written = 0
        self._frames_in_video = 0
        self._ids: dict[tuple[int, int], int] = {}
        self._generator: IdGenerator | None = None

    def _start_video(self) -> None:
        assert self._json is not None
        self._generator = IdGenerator(self._generator_args, seed=self.seed)
        self._ids = {}
        self._frames_in_video = 0
        sep = ", " if self._videos_written else ""
        self._json.write(f'{sep}{{"video_id": {json.dumps(self.video)}, "annotations": [')
        self._videos_written += 1

    def _write(self, result: FrameResult, image: np.ndarray | None) -> None:
        if not isinstance(result, PanopticFrame):
            raise TypeError("VIPSegSubmissionWriter writes PanopticFrame results")
        assert self._json is not None and self._generator is not None
        stats, present = panoptic_regions(result)
        out_ids = np.zeros(len(stats.ids) + 1, np.int64)  # row k + 1 = output id of region k
        infos: dict[int, dict[str, Any]] = {}
        for k, seg in present:
            category = self.labels.category(seg.category_id)
            key = (seg.id, category.id)
            if key not in self._ids:
                self._ids[key] = self._generator.get_id(category.id)
            oid = self._ids[key]
            out_ids[k + 1] = oid
            area, bbox = int(stats.areas[k]), [int(v) for v in stats.bboxes[k]]
            if oid in infos:  # stuff segments of one category merge
                infos[oid]["area"] += area
                infos[oid]["bbox"] = bbox_union(infos[oid]["bbox"], bbox)
            else:
                infos[oid] = {"id": oid, "category_id": category.id, "iscrowd": 0, "area": area, "bbox": bbox}
        stem = self.frame_stem(result.index)
        png = self.out.file(f"{self.masks_dir}/{self.video}/{stem}.png")
        png.write_bytes(
            encode_png(id2rgb(out_ids)[stats.compact])
        )  # colour per region, then [H, W] -> [H, W, 3]
        entry = {"image_id": stem, "file_name": f"{stem}.png", "segments_info": list(infos.values())}
        self._json.write((", " if self._frames_in_video else "") + json.dumps(entry))
        self._frames_in_video += 1

    def _end_video(self) -> None:
        assert self._json is not None
        self._json.write("]}")

    def _finish(self) -> None:
        assert self._json is not None
        self._json.write("]}\n")
        self._json.close()
        self._json = None

    def _release(self) -> None:
        if self._json is not None:
            self._json.close()
            self._json = None


class SemanticPNGWriter(FrameWriter):
    """VSPW-style predictions: ``<masks_dir>/<video>/<frame>.png``, single-channel uint8 of
    0-based dataset class ids; void (negative ids, panoptic void) is 255.

    Accepts :class:`SemanticFrame` and :class:`PanopticFrame` (each segment painted with its
    class). Without ``labels`` model classes are written as they are (must be 0..254).
    """

    def __init__(
        self, out: OutputDirectory, *, labels: CategoryMapping | None = None, masks_dir: str = "sem_pred"
    ) -> None:
        if labels is not None and any(not 0 <= c.id < VOID_LABEL for c in labels.categories()):
            raise InputError("dataset class ids must lie in 0..254 to be stored in a uint8 PNG")
        super().__init__(out)
        self.labels = labels
        self.masks_dir = masks_dir
        if labels is not None:
            self._lut = np.array([c.id for c in labels.categories()], np.uint8)

    def _dataset_classes(self, classes: np.ndarray) -> np.ndarray:
        """[H, W] model classes (negative = void) -> [H, W] uint8 dataset classes."""
        if self.labels is None:
            if classes.size and classes.max() >= VOID_LABEL:
                raise ValueError(f"class {int(classes.max())} does not fit a uint8 PNG (max 254)")
            return np.where(classes < 0, VOID_LABEL, classes).astype(np.uint8)
        if classes.size and classes.max() >= self.labels.num_classes:
            raise ValueError(f"class {int(classes.max())} is outside the label space")
        return np.where(classes < 0, VOID_LABEL, self._lut[np.clip(classes, 0, None)]).astype(np.uint8)

    def _write(self, result: FrameResult, image: np.ndarray | None) -> None:
        if isinstance(result, SemanticFrame):
            labels = self._dataset_classes(result.classes.astype(np.int64))
        else:
            if isinstance(result, InstanceFrame):
                result = instance_as_panoptic(result)
            stats, present = panoptic_regions(result)
            model_classes = np.full(len(stats.ids) + 1, -1, np.int64)  # row k + 1 = class of region k
            for k, seg in present:
                model_classes[k + 1] = seg.category_id
            labels = self._dataset_classes(model_classes)[stats.compact]
        png = self.out.file(f"{self.masks_dir}/{self.video}/{self.frame_stem(result.index)}.png")
        png.write_bytes(encode_png(labels))


class FrameJSONWriter(FrameWriter):
    """Per-frame results as JSON Lines (``filename``, default ``frames.jsonl``): one object per
    frame, streamed, easy to read back line by line for hours-long videos.

    Panoptic frame::

        {"video": str, "frame": int, "name": str, ["time": float,] "height": int, "width": int,
         "segments": [{"id", "category_id", "category_name", "isthing", "score", "area",
                       "bbox": [x, y, w, h], "track"}, ...]}

    ``id`` is the frame's segment id (stable per track over the video, not the submission's
    colour id); ``category_id`` is the dataset id (model class without ``labels``). Segments
    absent from the frame are left out. Semantic frame: ``"classes": [{"category_id",
    "category_name", "area", "bbox"}]`` instead of ``segments``. Instance (VIS) frame:
    ``"instances": [{"id", "category_id", "category_name", "score", "area", "bbox", "track"}]``
    (masks may overlap; the full masks are in the YouTube-VIS ``results.json``).

    ``time`` is the frame's presentation time in seconds, for videos among ``sources`` that have
    timestamps (video files: variable frame rates keep their timing); absent for frame folders.
    """

    def __init__(
        self,
        out: OutputDirectory,
        *,
        labels: CategoryMapping | None = None,
        filename: str = "frames.jsonl",
        sources: Sequence[VideoSource] = (),
    ) -> None:
        super().__init__(out)
        self.labels = labels
        self._sources = {s.name: s for s in sources}
        self._file: TextIO | None = out.file(filename).open("w", encoding="utf-8")

    def _time(self, index: int) -> float | None:
        """Presentation time (s) of frame ``index`` of the current video, if its source has one."""
        source = self._sources.get(self.video or "")
        times = None if source is None else source.timestamps
        return times[index] if times is not None and index < len(times) else None

    def _category(self, model_class: int) -> tuple[int, str]:
        if self.labels is None:
            return model_class, f"class {model_class}"
        c = self.labels.category(model_class)
        return c.id, c.name

    def _write(self, result: FrameResult, image: np.ndarray | None) -> None:
        assert self._file is not None
        record: dict[str, Any] = {
            "video": self.video,
            "frame": result.index,
            "name": self.frame_stem(result.index),
        }
        time = self._time(result.index)
        if time is not None:
            record["time"] = time
        if isinstance(result, PanopticFrame):
            stats, present = panoptic_regions(result)
            record["height"], record["width"] = result.segment_ids.shape
            items = []
            for k, seg in present:
                category_id, name = self._category(seg.category_id)
                items.append(
                    {
                        "id": int(seg.id),
                        "category_id": category_id,
                        "category_name": name,
                        "isthing": bool(seg.isthing),
                        "score": round(float(seg.score), 6),
                        "area": int(stats.areas[k]),
                        "bbox": [int(v) for v in stats.bboxes[k]],
                        "track": int(seg.track),
                    }
                )
            record["segments"] = items
        elif isinstance(result, InstanceFrame):
            record["height"], record["width"] = result.masks.shape[1:]
            instances = []
            for n, inst in enumerate(result.instances):
                ys, xs = np.nonzero(result.masks[n])
                if len(ys) == 0:
                    continue
                category_id, name = self._category(inst.category_id)
                x0, y0 = int(xs.min()), int(ys.min())
                instances.append(
                    {
                        "id": int(inst.id),
                        "category_id": category_id,
                        "category_name": name,
                        "score": round(float(inst.score), 6),
                        "area": len(ys),
                        "bbox": [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1],
                        "track": int(inst.track),
                    }
                )
            record["instances"] = instances
        else:
            classes = result.classes.astype(np.int64)
            record["height"], record["width"] = classes.shape
            stats = region_stats(np.where(classes < 0, 0, classes + 1))  # class c -> region c + 1
            entries = []
            for k, shifted in enumerate(stats.ids.tolist()):
                category_id, name = self._category(int(shifted) - 1)
                entries.append(
                    {
                        "category_id": category_id,
                        "category_name": name,
                        "area": int(stats.areas[k]),
                        "bbox": [int(v) for v in stats.bboxes[k]],
                    }
                )
            record["classes"] = entries
        self._file.write(json.dumps(record) + "\n")

    def _finish(self) -> None:
        self._release()

    def _release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
