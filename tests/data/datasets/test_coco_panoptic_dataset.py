"""COCO panoptic images as single frames and pseudo-clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vidpan.data.datasets import VOID, CocoPanopticDataset, to_clip_sample
from vidpan.data.formats.rgb_id import read_id_png
from vidpan.data.transforms import ClipAugmentation, augment_clip
from vidpan.errors import InputError


def _open(root: Path) -> CocoPanopticDataset:
    return CocoPanopticDataset(root / "panoptic_train.json", root / "panoptic_train", root / "train")


def test_single_frame_and_pseudo_clip(tiny_coco: Path) -> None:
    ds = _open(tiny_coco)
    assert len(ds) == 2 and ds.num_frames(0) == 1 and ds.video_id(1) == "1"
    # sparse ids 1 person, 3 car (things) then 7 sky, 12 grass (stuff)
    assert ds.mapping.dataset_ids == (1, 3, 7, 12) and ds.mapping.num_things == 2
    one = to_clip_sample(ds.load_labelled_clip(1, [0]))
    ids = read_id_png(tiny_coco / "panoptic_train" / "000000000001.png")
    assert one.targets.ids.tolist() == [70, 120, 1001, 3002]  # annotation order, crowd dropped
    assert one.targets.labels.tolist() == [2, 3, 0, 1]
    assert torch.equal(
        one.targets.masks[:, 0], torch.from_numpy(np.stack([ids == i for i in [70, 120, 1001, 3002]]))
    )
    clip = ds.load_labelled_clip(1, [0, 0, 0])
    assert (clip.segment_map[:, 0:4, 0:6] == VOID).all()  # crowd region is void
    assert all(torch.equal(clip.frames[0], clip.frames[k]) for k in range(3))
    with pytest.raises(IndexError):
        ds.load_labelled_clip(0, [1])


def test_pseudo_clip_augmentation(tiny_coco: Path) -> None:
    ds = _open(tiny_coco)
    clip = ds.load_labelled_clip(0, [0] * 4)
    same = augment_clip(clip, ClipAugmentation(short_sides=(48,)), np.random.default_rng(0))
    assert all(
        torch.equal(same.frames[0], same.frames[k]) for k in range(4)
    )  # DVIS pseudo video, no rotation
    turning = augment_clip(
        clip, ClipAugmentation(short_sides=(48,), pseudo_rotation_degrees=15), np.random.default_rng(0)
    )
    assert turning.frames.shape == same.frames.shape
    assert not torch.equal(turning.segment_map[0], turning.segment_map[3])
    sample = to_clip_sample(turning)
    assert sample.targets.masks.shape[:2] == (len(sample.targets.ids), 4)


def test_bad_coco_input(tiny_coco: Path) -> None:
    (tiny_coco / "train" / "000000000001.jpg").unlink()
    with pytest.raises(InputError, match=r"1 image files missing: .*000000000001\.jpg"):
        _open(tiny_coco)
    data = json.loads((tiny_coco / "panoptic_train.json").read_text())
    data["annotations"][0]["segments_info"][0]["category_id"] = 99
    (tiny_coco / "panoptic_train.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match="unknown category id 99"):
        CocoPanopticDataset(
            tiny_coco / "panoptic_train.json",
            tiny_coco / "panoptic_train",
            tiny_coco / "train",
            check_files=False,
        )
