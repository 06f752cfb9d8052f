"""VSPW training dataset: one instance per class present, labels shifted, 0 and 255 ignored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from clip_data import CATEGORIES, raw_vspw_video, write_vspw

from vidpan.data.categories import CategoryMapping
from vidpan.data.datasets import VOID, VspwDataset, to_clip_sample
from vidpan.data.formats.vspw import read_label_png, write_label_png
from vidpan.errors import InputError

MAPPING = CategoryMapping.from_categories(CATEGORIES)


def _expected(
    root: Path, video: str, frames: list[int], mapping: CategoryMapping
) -> tuple[list[int], torch.Tensor]:
    """Classes present (ascending dataset id) and their masks, straight from the raw PNGs."""
    raws = np.stack([read_label_png(root / "data" / video / "mask" / f"{t:08d}.png") for t in frames]).astype(
        int
    )
    classes = sorted(int(v) - 1 for v in np.unique(raws) if v not in (0, 255))
    masks = torch.from_numpy(np.stack([raws == c + 1 for c in classes]))
    return classes, masks


def test_semantic_clip(tiny_vspw: Path) -> None:
    ds = VspwDataset(tiny_vspw, mapping=MAPPING, split="train")
    assert len(ds) == 2 and [ds.num_frames(i) for i in range(2)] == [5, 2]
    for frames in ([0, 1, 2], [0], [4, 3, 3]):
        sample = to_clip_sample(ds.load_labelled_clip(0, frames))
        classes, masks = _expected(tiny_vspw, "v1", frames, MAPPING)
        assert sample.targets.ids.tolist() == classes  # the dataset class id is the "segment" id
        assert sample.targets.labels.tolist() == [MAPPING.to_model(c) for c in classes]
        assert torch.equal(sample.targets.masks, masks)
        assert sample.frame_names == [f"{t:08d}" for t in frames]
    clip = ds.load_labelled_clip(0, [0, 1])
    assert (clip.segment_map[:, :3] == VOID).all() and (clip.segment_map[..., -3:] == VOID).all()
    person = to_clip_sample(clip).targets
    k = person.ids.tolist().index(3)  # raw 4 = class 3 (person) appears at frame 1 only
    assert person.labels[k] == 1 and not person.masks[k, 0].any() and person.masks[k, 1].any()


def test_bad_vspw_input(tiny_vspw: Path) -> None:
    (tiny_vspw / "data" / "v2" / "mask" / "00000001.png").unlink()
    with pytest.raises(InputError, match=r"1 mask files missing: .*v2/mask/00000001\.png"):
        VspwDataset(tiny_vspw, mapping=MAPPING)
    (tiny_vspw / "val.txt").write_text("")
    with pytest.raises(InputError, match="split 'val' lists no videos"):
        VspwDataset(tiny_vspw, mapping=MAPPING, split="val")
    (tiny_vspw / "val.txt").write_text("v1\nghost\n")
    with pytest.raises(InputError, match=r"'ghost'.*has no origin/ folder"):
        VspwDataset(tiny_vspw, mapping=MAPPING, split="val")


def test_unknown_class_names_the_mask(tiny_vspw: Path) -> None:
    raw = raw_vspw_video(1)[0]
    raw[0, 0] = 200
    write_label_png(tiny_vspw / "data" / "v1" / "mask" / "00000002.png", raw)
    ds = VspwDataset(tiny_vspw, mapping=MAPPING)
    with pytest.raises(InputError, match=r"v1/mask/00000002\.png: label values \[200\] decode to unknown"):
        ds.load_labelled_clip(0, [1, 2])


def test_oracle_case(oracle_roots: Callable[[], tuple[Path, Path]]) -> None:
    vip, vspw = oracle_roots()
    mapping = CategoryMapping.from_file(vip / "panoptic_gt_VIPSeg_val.json")
    ds = VspwDataset(vspw, mapping=mapping, split="val")
    assert len(ds) == 4
    for i in range(len(ds)):
        names = sorted(p.stem for p in (vspw / "data" / ds.video_id(i) / "mask").iterdir())
        frames = [0, ds.num_frames(i) - 1]
        sample = to_clip_sample(ds.load_labelled_clip(i, frames))
        raws = np.stack(
            [read_label_png(vspw / "data" / ds.video_id(i) / "mask" / f"{names[t]}.png") for t in frames]
        ).astype(int)
        classes = sorted(int(v) - 1 for v in np.unique(raws) if v not in (0, 255))
        assert sample.targets.ids.tolist() == classes
        assert sample.targets.labels.tolist() == [mapping.to_model(c) for c in classes]
        assert torch.equal(sample.targets.masks, torch.from_numpy(np.stack([raws == c + 1 for c in classes])))


def test_written_dataset_roundtrip(tmp_path: Path) -> None:
    write_vspw(tmp_path, {"x": raw_vspw_video(3, 8, 9)}, split="val")
    ds = VspwDataset(tmp_path, mapping=MAPPING, split="val")
    assert ds.load_labelled_clip(0, [2]).frames.shape == (1, 3, 8, 9)
