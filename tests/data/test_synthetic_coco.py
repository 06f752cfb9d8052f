"""The synthetic benchmark's COCO-panoptic output: the real COCO layout, read by the COCO loader the
training uses, and the same frames, segments and classes as the VIPSeg output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from vidpan.data.datasets import CocoPanopticDataset, VipsegDataset
from vidpan.data.synthetic import generate
from vidpan.training.config import DataConfig
from vidpan.training.data import build_source


def test_coco_output_matches_the_vipseg_frames(tmp_path: Path) -> None:
    ds = generate(tmp_path / "s", videos=3, frames=3, size=(48, 64), val_fraction=0.34, coco=True)
    assert ds.coco_root is not None
    root = ds.coco_root
    for split, videos in (("train2017", ds.train_videos), ("val2017", ds.val_videos)):
        data = json.loads((root / "annotations" / f"panoptic_{split}.json").read_text())
        assert len(data["images"]) == len(data["annotations"]) == 3 * len(videos)
        assert {c["id"] for c in data["categories"]} == set(range(1, 17))  # COCO ids start at 1
        assert all((root / split / im["file_name"]).is_file() for im in data["images"])
    coco = build_source(DataConfig(dataset="coco", coco_root=str(root), split="train2017"))
    assert isinstance(coco, CocoPanopticDataset) and len(coco) == 6
    vipseg = VipsegDataset(ds.vipseg_root, split="train")
    assert coco.mapping.names == vipseg.mapping.names  # the same things-first class space
    # image 0 of the COCO set is frame 0 of video 0: same pixels, same segments, same classes
    image = coco.load_labelled_clip(0, [0])
    frame = vipseg.load_labelled_clip(0, [0])
    assert torch.equal(image.frames, frame.frames)
    assert torch.equal(image.segment_map, frame.segment_map)
    assert image.segments == frame.segments
    assert np.unique(image.segment_map.numpy()).size > 2
