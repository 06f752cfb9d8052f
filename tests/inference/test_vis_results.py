"""``results.json`` (task vis) is what the YouTube-VIS evaluation reads: compressed RLE, things only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as mask_utils

from vidpan.data.categories import CategoryMapping
from vidpan.data.formats.vipseg import Category
from vidpan.inference.output import OutputDirectory
from vidpan.inference.vis_results import YTVISResultsWriter, _rle_compress, rle_encode
from vidpan.structures import InstanceFrame, Segment

CATEGORIES = [Category(7, "person", True, (220, 20, 60)), Category(9, "sky", False, (70, 130, 180))]
LABELS = CategoryMapping.from_categories(CATEGORIES)  # model 0 = person (dataset 7), 1 = sky


def _video(t: int, h: int = 12, w: int = 16) -> tuple[list[InstanceFrame], np.ndarray]:
    rng = np.random.default_rng(0)
    instances = [
        Segment(id=1, category_id=0, isthing=True, score=0.9, track=0),
        Segment(id=2, category_id=1, isthing=False, score=0.95, track=1),  # stuff: left out
        Segment(id=3, category_id=0, isthing=True, score=0.4, track=2),
    ]
    masks = rng.random((t, 3, h, w)) > 0.6
    masks[1, 2] = False  # instance 3 has no pixel in frame 1
    return [InstanceFrame(i, masks[i], instances) for i in range(t)], masks


def test_results_load_with_pycocotools(tmp_path: Path) -> None:
    frames, masks = _video(4)
    with OutputDirectory(tmp_path / "out") as out:
        writer = YTVISResultsWriter(out, labels=LABELS)
        writer.begin_video("0042")
        for f in frames:
            writer.write(f)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [(r["video_id"], r["category_id"], r["score"]) for r in results] == [(42, 7, 0.9), (42, 7, 0.4)]
    for r, n in zip(results, (0, 2), strict=True):
        assert set(r) == {"video_id", "category_id", "score", "segmentations"}
        assert len(r["segmentations"]) == 4
        for t, rle in enumerate(r["segmentations"]):
            assert isinstance(rle["counts"], str) and rle["size"] == [12, 16]
            assert np.array_equal(mask_utils.decode(rle).astype(bool), masks[t, n])
            # What the ytvos API's loadRes computes for every result segmentation.
            assert mask_utils.area(rle) == masks[t, n].sum()
            mask_utils.toBbox(rle)


def test_instances_first_seen_later_are_padded_with_empty_masks(tmp_path: Path) -> None:
    seg = Segment(id=5, category_id=0, isthing=True, score=0.5, track=0)
    empty = InstanceFrame(0, np.zeros((0, 4, 4), bool), [])
    later = InstanceFrame(1, np.ones((1, 4, 4), bool), [seg])
    with OutputDirectory(tmp_path / "out") as out:
        writer = YTVISResultsWriter(out, video_ids={"clip": 3})
        writer.begin_video("clip")
        writer.write(empty)
        writer.write(later)
    (r,) = json.loads((tmp_path / "out" / "results.json").read_text())
    assert r["video_id"] == 3
    assert [mask_utils.area(s) for s in r["segmentations"]] == [0, 16]


@settings(max_examples=80, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(0, 9), st.integers(0, 9))))
def test_fallback_encoder_equals_pycocotools(mask: np.ndarray) -> None:
    assert _rle_compress(mask) == rle_encode(mask)
