"""VIPSeg training dataset: clip targets equal the PNG content; upfront validation of bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from clip_data import CATEGORIES, raw_video, write_vipseg

from vidpan.data.categories import CategoryMapping
from vidpan.data.datasets import VOID, VipsegDataset, to_clip_sample
from vidpan.data.formats.rgb_id import read_id_png
from vidpan.data.formats.vipseg import read_panoptic_video_json
from vidpan.errors import InputError


def _expected(
    root: Path, split: str, video: int, frames: list[int]
) -> tuple[list[int], list[int], torch.Tensor]:
    """Instances in first-appearance order, their model labels, and masks read straight from the PNGs."""
    gt = read_panoptic_video_json(root / f"panoptic_gt_VIPSeg_{split}.json")
    mapping = CategoryMapping.from_categories(gt.categories)
    v = gt.videos[video]
    order: dict[int, int] = {}
    for t in frames:
        for s in v.segments[t]:
            order.setdefault(s.id, mapping.to_model(s.category_id))
    maps = np.stack([read_id_png(root / "panomasksRGB" / v.video_id / v.frames[t].file_name) for t in frames])
    ids = [i for i in order if (maps == i).any()]
    masks = torch.from_numpy(np.stack([maps == i for i in ids]))
    return ids, [order[i] for i in ids], masks


def test_clip_targets_equal_the_pngs(tiny_vipseg: Path) -> None:
    ds = VipsegDataset(tiny_vipseg, split="train")
    assert len(ds) == 2 and [ds.num_frames(i) for i in range(2)] == [6, 3]
    assert ds.video_id(1) == "vid_b" and ds.mapping.num_things == 2
    for frames in ([0, 1, 2], [3, 2, 1, 0], [1, 1, 4], [5]):
        sample = to_clip_sample(ds.load_labelled_clip(0, frames))
        ids, labels, masks = _expected(tiny_vipseg, "train", 0, frames)
        assert sample.targets.ids.tolist() == ids
        assert sample.targets.labels.tolist() == labels
        assert torch.equal(sample.targets.masks, masks)
        assert sample.frames.shape == (len(frames), 3, 40, 60) and sample.frames.dtype == torch.uint8
        assert sample.frame_names == [f"{t * 5:08d}" for t in frames]


def test_labels_things_first_and_absent_instances(tiny_vipseg: Path) -> None:
    ds = VipsegDataset(tiny_vipseg, split="train")
    sample = to_clip_sample(ds.load_labelled_clip(0, [0, 1, 2, 3]))
    t = sample.targets
    # wall(0)->2, door(1)->0, person(3)->1, road(4)->4: things first, then stuff, each sorted by id
    assert sorted(set(t.labels.tolist())) == [0, 1, 2, 4]
    assert t.labels.tolist().count(1) == 2  # two persons, one instance each
    late = int(torch.nonzero(~t.present[:, 0] & t.present[:, 2]).squeeze())  # person #1 appears at frame 2
    assert not t.masks[late, :2].any() and t.masks[late, 2:].any(dim=(1, 2)).all()
    # masks are disjoint and never cover the void strip
    assert int(t.masks.sum(0).max()) == 1 and not t.masks[..., :2].any()


def test_images_match_masks(tiny_vipseg: Path) -> None:
    from clip_data import segment_color

    clip = VipsegDataset(tiny_vipseg).load_labelled_clip(1, [0, 2])
    for k in range(2):
        for seg in clip.segments:
            inside = clip.segment_map[k] == seg
            if inside.any():
                colour = torch.tensor(segment_color(seg)).view(3, 1)
                assert (clip.frames[k][:, inside].int() - colour).abs().float().mean() < 3
    assert (clip.segment_map[:, :, :2] == VOID).all()


def test_split_from_list_and_unsplit_json(tmp_path: Path) -> None:
    root = tmp_path / "v"
    gt = write_vipseg(root, {"a": raw_video(3), "b": raw_video(4), "c": raw_video(2)}, split="all")
    (root / "panoptic_gt_VIPSeg_all.json").rename(root / "panoptic_gt_VIPSeg.json")
    (root / "val.txt").write_text("c\na\n")
    ds = VipsegDataset(root, split="val")
    assert [ds.video_id(i) for i in range(len(ds))] == ["a", "c"] and len(gt.videos) == 3
    with pytest.raises(InputError, match="no annotations for split 'test'"):
        VipsegDataset(root, split="test")


def test_missing_image_named_before_training(tiny_vipseg: Path) -> None:
    (tiny_vipseg / "images" / "vid_a" / "00000010.jpg").unlink()
    (tiny_vipseg / "images" / "vid_b" / "00000000.jpg").unlink()
    with pytest.raises(
        InputError, match=r"2 image files missing: .*vid_a/00000010\.jpg.*vid_b/00000000\.jpg"
    ):
        VipsegDataset(tiny_vipseg)
    ds = VipsegDataset(tiny_vipseg, check_files=False)  # lazily: the clip that needs it fails, naming it
    with pytest.raises(InputError, match=r"00000010\.jpg: image file not found"):
        ds.load_labelled_clip(0, [1, 2])


def test_frames_in_json_missing_on_disk(tiny_vipseg: Path) -> None:
    (tiny_vipseg / "panomasksRGB" / "vid_b" / "00000005.png").unlink()
    with pytest.raises(InputError, match=r"1 mask files missing: .*vid_b/00000005\.png"):
        VipsegDataset(tiny_vipseg)


def test_empty_split_and_unknown_category(tiny_vipseg: Path) -> None:
    path = tiny_vipseg / "panoptic_gt_VIPSeg_train.json"
    data = json.loads(path.read_text())
    empty = dict(data, videos=[], annotations=[])
    (tiny_vipseg / "panoptic_gt_VIPSeg_val.json").write_text(json.dumps(empty))
    with pytest.raises(InputError, match="split 'val' has no videos"):
        VipsegDataset(tiny_vipseg, split="val")
    data["annotations"][0]["annotations"][1]["segments_info"][0]["category_id"] = 77
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"panoptic_gt_VIPSeg_train\.json: .*unknown category id 77"):
        VipsegDataset(tiny_vipseg)
    with pytest.raises(InputError, match="VIPSeg root is not a directory"):
        VipsegDataset(tiny_vipseg / "nope")


def test_image_size_must_match_annotation(tiny_vipseg: Path) -> None:
    from clip_data import save_jpeg

    save_jpeg(tiny_vipseg / "images" / "vid_a" / "00000000.jpg", np.zeros((20, 60, 3), np.uint8))
    ds = VipsegDataset(tiny_vipseg)
    with pytest.raises(InputError, match=r"00000000\.jpg: image is 20x60 .* annotation says 40x60"):
        ds.load_labelled_clip(0, [0])
    with pytest.raises(IndexError):
        ds.load_labelled_clip(0, [6])


def test_oracle_case(oracle_roots: Callable[[], tuple[Path, Path]]) -> None:
    """The metrics oracle's official-format GT: every clip's masks equal its PNGs."""
    root, _ = oracle_roots()
    ds = VipsegDataset(root, split="val")
    assert len(ds) == 4 and ds.mapping.num_classes == 124 and ds.mapping.num_things == 58
    rng = np.random.default_rng(0)
    for i in range(len(ds)):
        frames = sorted(rng.choice(ds.num_frames(i), size=3, replace=False).tolist())
        sample = to_clip_sample(ds.load_labelled_clip(i, frames))
        ids, labels, masks = _expected(root, "val", i, frames)
        assert sample.targets.ids.tolist() == ids and sample.targets.labels.tolist() == labels
        assert torch.equal(sample.targets.masks, masks)
        # stuff = one instance per class: no two stuff instances share a label
        stuff = [lab for lab in labels if lab >= ds.mapping.num_things]
        assert len(stuff) == len(set(stuff))
    assert CATEGORIES  # the tiny datasets use their own 5-category list
