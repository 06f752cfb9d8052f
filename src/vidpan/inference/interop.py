"""Per-frame results in the formats other tools read: Hugging Face dicts and ``supervision``.

vidpan's segment ids are already stable over the whole video (one id per track, the same in
every frame it appears in), which is what these formats usually lack: transformers' video
post-processing (VidEoMT) renumbers segments on every frame, and ``supervision`` leaves
``tracker_id`` empty for transformers output. Here the id *is* the track id.

- :func:`to_hf`: panoptic / instance frames -> ``{"segmentation", "segments_info"}`` laid out as
  transformers' ``VideomtVideoProcessor.post_process_panoptic_segmentation`` returns a frame
  (``segmentation``: ``torch.long`` [H, W], ``-1`` = void; ``segments_info``: ``id``,
  ``label_id``, ``score``, plus Mask2Former's ``was_fused`` and vidpan's ``track_id`` and
  ``isthing``); semantic frames -> the [H, W] class map, as ``post_process_semantic_segmentation``.
- :func:`to_supervision`: -> ``supervision.Detections`` with ``mask`` [N, H, W] bool, ``xyxy``,
  ``class_id``, ``confidence`` and ``tracker_id`` (= the stable id) filled; optional extra
  ``vidpan[supervision]``.

Label ids are vidpan's model class space (things ``0..num_things-1``, then stuff), the space of
``config.model.class_names``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from vidpan.errors import InputError
from vidpan.inference.output import FrameResult
from vidpan.structures import InstanceFrame, PanopticFrame, Segment, SemanticFrame


def _segment_info(segment: Segment) -> dict[str, Any]:
    return {
        "id": segment.id,
        "label_id": segment.category_id,
        # Mask2Former's key: vidpan merges the stuff segments of one class (label_ids_to_fuse =
        # the stuff classes), never things.
        "was_fused": not segment.isthing,
        "score": round(float(segment.score), 6),
        "track_id": segment.id,
        "isthing": segment.isthing,
    }


def present_instances(result: InstanceFrame) -> list[tuple[int, Segment]]:
    """(row, instance) for the instances with at least one pixel in this frame."""
    if not result.instances:
        return []
    present = np.any(result.masks.reshape(len(result.instances), -1), axis=1).tolist()  # [N]
    return [(n, s) for n, s in enumerate(result.instances) if present[n]]


def to_hf(result: FrameResult) -> dict[str, Any] | torch.Tensor:
    """One frame as transformers' post-processing returns it (see the module docstring).

    Panoptic: ``segmentation`` is ``torch.long`` [H, W] holding the segment ids (``-1`` void).
    Instance (VIS): the same layout; where instances overlap the higher score wins (the full
    overlapping masks are in :func:`to_supervision`). Semantic: ``torch.long`` [H, W] classes.
    ``segments_info`` lists the segments present in the frame, in id order.
    """
    if isinstance(result, SemanticFrame):
        return torch.from_numpy(result.classes.astype(np.int64))
    if isinstance(result, PanopticFrame):
        ids = result.segment_ids.astype(np.int64)
        ids[ids == 0] = -1
        segments = sorted(result.segments, key=lambda s: s.id)
        return {"segmentation": torch.from_numpy(ids), "segments_info": [_segment_info(s) for s in segments]}
    if isinstance(result, InstanceFrame):
        height, width = result.masks.shape[1:]
        seg = np.full((height, width), -1, dtype=np.int64)
        present = present_instances(result)
        for n, s in sorted(present, key=lambda p: p[1].score):  # best last = on top
            seg[result.masks[n]] = s.id
        visible = {int(i) for i in np.unique(seg)} - {-1}
        infos = [_segment_info(s) for _, s in sorted(present, key=lambda p: p[1].id) if s.id in visible]
        return {"segmentation": torch.from_numpy(seg), "segments_info": infos}
    raise InputError(
        f"to_hf: expected a PanopticFrame, InstanceFrame or SemanticFrame, got {type(result).__name__}"
    )


def _boxes(masks: np.ndarray) -> np.ndarray:
    """[N, H, W] bool -> [N, 4] float32 (x_min, y_min, x_max, y_max), inclusive pixel bounds."""
    boxes = np.zeros((len(masks), 4), dtype=np.float32)
    for n, mask in enumerate(masks):
        ys = np.flatnonzero(mask.any(1))
        xs = np.flatnonzero(mask.any(0))
        if len(ys):
            boxes[n] = (xs[0], ys[0], xs[-1], ys[-1])
    return boxes


def to_supervision(result: FrameResult, *, class_names: Sequence[str] | None = None) -> Any:
    """One frame as a ``supervision.Detections`` (one row per segment present in the frame).

    ``mask`` [N, H, W] bool, ``xyxy`` [N, 4] (the mask's bounding box), ``class_id`` [N] (model
    class space), ``confidence`` [N], ``tracker_id`` [N] = the segment id, stable over the video
    (semantic frames: one row per class present, ``tracker_id`` = class id + 1, confidence 1).
    ``data`` holds ``isthing`` [N] and, given ``class_names``, ``class_name`` [N].
    """
    try:
        import supervision as sv
    except ImportError:
        raise InputError("to_supervision needs supervision: pip install vidpan[supervision]") from None
    if isinstance(result, PanopticFrame):
        segments = sorted(result.segments, key=lambda s: s.id)
        masks = np.stack([result.segment_ids == s.id for s in segments]) if segments else None
        shape = result.segment_ids.shape
    elif isinstance(result, InstanceFrame):
        present = sorted(present_instances(result), key=lambda p: p[1].id)
        segments = [s for _, s in present]
        masks = result.masks[[n for n, _ in present]] if present else None
        shape = result.masks.shape[1:]
    elif isinstance(result, SemanticFrame):
        classes = [int(c) for c in np.unique(result.classes) if c >= 0]
        segments = [Segment(id=c + 1, category_id=c, isthing=False, score=1.0, track=-1) for c in classes]
        masks = np.stack([result.classes == c for c in classes]) if classes else None
        shape = result.classes.shape
    else:
        raise InputError(
            f"to_supervision: expected a PanopticFrame, InstanceFrame or SemanticFrame, got {type(result).__name__}"
        )
    if masks is None:
        masks = np.zeros((0, *shape), dtype=bool)
    data: dict[str, Any] = {"isthing": np.array([s.isthing for s in segments], dtype=bool)}
    if class_names is not None:
        data["class_name"] = np.array([class_names[s.category_id] for s in segments], dtype=str)
    return sv.Detections(
        xyxy=_boxes(masks),
        mask=masks.astype(bool, copy=False),
        class_id=np.array([s.category_id for s in segments], dtype=int),
        confidence=np.array([s.score for s in segments], dtype=np.float32),
        tracker_id=np.array([s.id for s in segments], dtype=int),
        data=data,
    )
