"""VSS from the VPS model's panoptic output: every predicted segment of a class merged into one mask.

The seed paper's "no fine-tuning" VSS row (§2.3, Table 3): "we simply merged all the predicted
instances from the same class into a single class segmentation mask". Per frame, each pixel of a
predicted segment gets the segment's class; instances of one class (and stuff segments of one
class) become one semantic region. This is the alternative to DVIS++'s soft semantic inference
(``argmax_k Σ_q p(k | q) · mask_q``), which `--task vss` runs by default.

The panoptic maps leave pixels void (0) where no kept query reaches its mask / overlap threshold,
while a VSS prediction needs a class at every pixel (VSPW scores every labelled GT pixel). The
paper does not say what it did there. Our choice (``fill="nearest"``): a void pixel takes the
class of the nearest labelled pixel of the same frame (Euclidean distance transform; ties as
``scipy.ndimage.distance_transform_edt`` breaks them). A frame without any segment is all
``empty_class``.

Entry points: :func:`merge_panoptic_by_class` (one frame), :class:`MergedSemanticPNGWriter` (a
streaming writer turning the VPS model's panoptic frames into VSPW PNGs: ``vidpan segment --task
vss --vss-from panoptic``) and :func:`predict_vss_from_panoptic` (the Python API).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from vidpan.inference.writers import SemanticPNGWriter
from vidpan.structures import PanopticFrame, SemanticFrame

if TYPE_CHECKING:
    from vidpan.inference.output import FrameWriter
    from vidpan.inference.predictor import VideoPrediction, VideoPredictor

VOID_CLASS = -1
Fill = Literal["nearest"]


def merge_panoptic_by_class(
    frame: PanopticFrame, *, fill: Fill = "nearest", empty_class: int = 0
) -> SemanticFrame:
    """One panoptic frame -> its semantic frame (model-space classes).

    Args:
        frame: ``segment_ids`` [H, W] (0 = void) and the frame's ``segments``.
        fill: how void pixels get a class (``nearest`` labelled pixel; see the module docstring).
        empty_class: the class of every pixel of a frame with no segment at all.

    Returns:
        SemanticFrame with ``classes`` [H, W] int32.
    """
    if fill != "nearest":
        raise ValueError(f"fill: expected 'nearest', got {fill!r}")
    ids = frame.segment_ids
    if not frame.segments:
        return SemanticFrame(index=frame.index, classes=np.full(ids.shape, empty_class, dtype=np.int32))
    seg_ids = np.array([s.id for s in frame.segments], dtype=np.int64)
    seg_classes = np.array([s.category_id for s in frame.segments], dtype=np.int32)
    order = np.argsort(seg_ids)
    seg_ids, seg_classes = seg_ids[order], seg_classes[order]
    flat = ids.astype(np.int64).ravel()
    pos = np.clip(np.searchsorted(seg_ids, flat), 0, len(seg_ids) - 1)
    known = seg_ids[pos] == flat
    unknown = np.unique(flat[~known & (flat != 0)])
    if unknown.size:
        raise ValueError(f"frame {frame.index}: segment ids {unknown[:5].tolist()} have no segment entry")
    classes = np.where(known, seg_classes[pos], VOID_CLASS).reshape(ids.shape).astype(np.int32)
    void = classes == VOID_CLASS
    if void.all():
        classes[:] = empty_class
    elif void.any():
        from scipy.ndimage import distance_transform_edt

        nearest = distance_transform_edt(void, return_distances=False, return_indices=True)
        classes = classes[tuple(nearest)]
    return SemanticFrame(index=frame.index, classes=classes)


class MergedSemanticPNGWriter(SemanticPNGWriter):
    """:class:`~vidpan.inference.writers.SemanticPNGWriter` fed with panoptic frames: each is
    merged by class (:func:`merge_panoptic_by_class`) before it is written, so void pixels get a
    class too. Semantic frames pass through unchanged."""

    def _write(self, result: Any, image: np.ndarray | None) -> None:
        if isinstance(result, PanopticFrame):
            result = merge_panoptic_by_class(result)
        super()._write(result, image)


def predict_vss_from_panoptic(
    predictor: VideoPredictor,
    video: Any,
    *,
    writers: Sequence[FrameWriter] = (),
    **options: Any,
) -> VideoPrediction:
    """VSS of ``video`` from the VPS model's panoptic output (the paper's "no fine-tuning" row).

    Runs ``predictor`` with ``task="vps"`` and merges every frame by class; the returned
    prediction's ``frames`` are :class:`SemanticFrame` (``task`` reads ``"vss"``). ``writers``
    receive the panoptic frames (use :class:`MergedSemanticPNGWriter` for VSPW PNGs).
    """
    import dataclasses

    if options.pop("task", "vss") != "vss":
        raise ValueError("predict_vss_from_panoptic is the vss task")
    options.setdefault("keep_frames", True)
    prediction = predictor.predict(video, task="vps", writers=writers, **options)
    frames: list[Any] = [
        merge_panoptic_by_class(f) if isinstance(f, PanopticFrame) else f for f in prediction.frames
    ]
    return dataclasses.replace(prediction, task="vss", frames=frames)
