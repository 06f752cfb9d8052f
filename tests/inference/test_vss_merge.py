"""VSS from panoptic: segments merged by class, void filled from the nearest labelled pixel."""

from __future__ import annotations

import numpy as np
import pytest

from vidpan.inference.vss_merge import merge_panoptic_by_class
from vidpan.structures import PanopticFrame, Segment


def _seg(sid: int, cls: int, isthing: bool) -> Segment:
    return Segment(id=sid, category_id=cls, isthing=isthing, score=0.9, track=sid)


def test_instances_of_a_class_become_one_region() -> None:
    ids = np.array(
        [
            [5, 5, 0, 9, 9, 9],
            [5, 5, 0, 9, 9, 9],
            [7, 7, 7, 8, 8, 0],
        ],
        dtype=np.int32,
    )
    # 5 and 9: two person instances (class 2); 7: a stuff segment (class 60); 8: a car (class 4)
    segments = [_seg(5, 2, True), _seg(9, 2, True), _seg(7, 60, False), _seg(8, 4, True)]
    out = merge_panoptic_by_class(PanopticFrame(index=3, segment_ids=ids, segments=segments))
    assert out.index == 3 and out.classes.dtype == np.int32
    labelled = ids > 0
    lut = {5: 2, 9: 2, 7: 60, 8: 4}
    assert all(out.classes[y, x] == lut[int(ids[y, x])] for y, x in zip(*np.nonzero(labelled), strict=True))
    assert set(np.unique(out.classes[labelled]).tolist()) == {2, 4, 60}  # 4 segments -> 3 classes
    # void pixels take the class of the nearest labelled pixel
    assert out.classes[0, 2] == 2  # column 2 rows 0-1: neighbours 5 (left) and 9 (right), both person
    assert out.classes[2, 5] == 4  # next to the car
    assert (out.classes >= 0).all()


def test_empty_frame_and_bad_ids() -> None:
    ids = np.zeros((2, 3), np.int32)
    out = merge_panoptic_by_class(PanopticFrame(index=0, segment_ids=ids, segments=[]), empty_class=7)
    assert (out.classes == 7).all()
    with pytest.raises(ValueError, match="have no segment entry"):
        merge_panoptic_by_class(PanopticFrame(index=0, segment_ids=ids + 3, segments=[_seg(1, 0, True)]))
