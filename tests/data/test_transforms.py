"""Clip transforms: PIL-equivalent resizing, one transform for every frame and mask, crop constraint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from clip_data import paint, segment_color
from PIL import Image

from vidpan.data.datasets.base import VOID, LabelledClip
from vidpan.data.transforms import (
    ClipAugmentation,
    augment_clip,
    choose_crop,
    nearest_indices,
    resize_frames,
    resize_labels,
    resized_shape,
    short_side_choices,
)
from vidpan.errors import InputError


def test_resized_shape_detectron2_rule() -> None:
    assert resized_shape(720, 1280, 480, 1333) == (480, 853)
    assert resized_shape(1280, 720, 480, 1333) == (853, 480)
    assert resized_shape(720, 1600, 800, 1333) == (600, 1333)  # long side capped
    assert resized_shape(100, 100, 64, 1000) == (64, 64)
    assert short_side_choices(480, 800, 32)[-1] == 800 and len(short_side_choices(480, 1080, 32)) == 19


def test_nearest_matches_pil_exactly() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = rng.integers(1, 400, 2)
        nh, nw = rng.integers(1, 400, 2)
        labels = rng.integers(0, 256, (h, w), dtype=np.uint8)
        ref = np.asarray(Image.fromarray(labels).resize((int(nw), int(nh)), Image.NEAREST))
        out = resize_labels(torch.from_numpy(labels), (int(nh), int(nw))).numpy()
        assert np.array_equal(out, ref)
    assert nearest_indices(5, 10).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_bilinear_matches_pil_within_one_level() -> None:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(base).resize((211, 157), Image.BILINEAR))  # smooth-ish content
    frames = torch.from_numpy(img.transpose(2, 0, 1).copy())[None]
    for nh, nw in [(60, 80), (157, 211), (300, 420), (97, 301)]:
        ref = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BILINEAR)).transpose(2, 0, 1)
        out = resize_frames(frames, (nh, nw))[0].numpy()
        assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1


def _moving_clip(t: int = 4, h: int = 48, w: int = 64) -> LabelledClip:
    """Stuff 1 (top) / 2 (bottom), static thing 10, moving thing 11, void column; image = paint(ids)."""
    maps = []
    for k in range(t):
        m = np.full((h, w), 1, dtype=np.int64)
        m[h // 2 :] = 2
        m[6:18, 40:52] = 10
        m[26:40, 4 + 5 * k : 16 + 5 * k] = 11
        m[:, w - 3 :] = VOID
        maps.append(m)
    ids = np.stack(maps)
    frames = np.stack([paint(m) for m in maps]).transpose(0, 3, 1, 2)
    return LabelledClip(
        video_id="v",
        frame_names=[str(k) for k in range(t)],
        frames=torch.from_numpy(frames.copy()),
        segment_map=torch.from_numpy(ids),
        segments={1: 5, 2: 6, 10: 0, 11: 1},
    )


def _interior(mask: torch.Tensor, r: int = 2) -> torch.Tensor:
    """Pixels whose whole (2r+1)^2 neighbourhood lies in ``mask`` [H, W] (the image border is outside)."""
    outside = F.pad((~mask).float()[None, None], (r, r, r, r), value=1.0)
    return ~(F.max_pool2d(outside, 2 * r + 1, stride=1)[0, 0] > 0) & mask


def _assert_aligned(clip: LabelledClip) -> None:
    """In every frame, the image inside each segment still shows that segment's colour."""
    for k in range(clip.frames.shape[0]):
        for seg in torch.unique(clip.segment_map[k]).tolist():
            if seg == VOID:
                continue
            inner = _interior(clip.segment_map[k] == seg)
            if inner.any():
                pixels = clip.frames[k][:, inner].T.int()
                expected = torch.tensor(segment_color(seg)).int()
                assert (pixels - expected).abs().max() <= 2, f"frame {k} segment {seg} misaligned"


@pytest.mark.parametrize("seed", range(6))
def test_one_transform_for_all_frames_and_masks(seed: int) -> None:
    clip = _moving_clip()
    aug = ClipAugmentation(short_sides=(40, 56, 72, 96), max_long_side=200, crop_size=(36, 44), flip_prob=0.5)
    out = augment_clip(clip, aug, np.random.default_rng(seed))
    t, _, h, w = out.frames.shape
    assert t == 4 and tuple(out.segment_map.shape) == (t, h, w) and (h, w) <= (36, 44)
    _assert_aligned(out)
    static = out.segment_map == 10  # the static thing must land on the same pixels in every frame
    assert all(torch.equal(static[0], static[k]) for k in range(t))
    again = augment_clip(clip, aug, np.random.default_rng(seed))
    assert torch.equal(again.frames, out.frames) and torch.equal(again.segment_map, out.segment_map)


def test_flip_and_crop_are_exact() -> None:
    clip = _moving_clip()
    flipped = augment_clip(clip, ClipAugmentation(short_sides=(0,), flip_prob=1.0), np.random.default_rng(0))
    assert torch.equal(flipped.frames, clip.frames.flip(-1))
    assert torch.equal(flipped.segment_map, clip.segment_map.flip(-1))
    same = augment_clip(clip, ClipAugmentation(short_sides=(0,), flip_prob=0.0), np.random.default_rng(0))
    assert torch.equal(same.frames, clip.frames)
    aug = ClipAugmentation(short_sides=(0,), crop_size=(20, 30), flip_prob=0.0)
    for seed in range(5):
        out = augment_clip(clip, aug, np.random.default_rng(seed))
        windows = [
            (y, x)
            for y in range(48 - 20 + 1)
            for x in range(64 - 30 + 1)
            if torch.equal(clip.segment_map[:, y : y + 20, x : x + 30], out.segment_map)
        ]
        assert windows, "the crop must be one window shared by every frame"
        y, x = windows[0]
        assert torch.equal(clip.frames[..., y : y + 20, x : x + 30], out.frames)


def test_scale_choice_and_range() -> None:
    clip = _moving_clip()
    seen = set()
    for seed in range(40):
        out = augment_clip(
            clip, ClipAugmentation(short_sides=(24, 96), flip_prob=0), np.random.default_rng(seed)
        )
        seen.add(tuple(out.frames.shape[-2:]))
        if seed < 4:
            _assert_aligned(out)
    assert seen == {(24, 32), (96, 128)}
    for seed in range(20):
        aug = ClipAugmentation(short_sides=(30, 40), sampling="range", flip_prob=0)
        h = augment_clip(clip, aug, np.random.default_rng(seed)).frames.shape[-2]
        assert 30 <= h <= 40
    capped = augment_clip(
        clip, ClipAugmentation(short_sides=(96,), max_long_side=100), np.random.default_rng(0)
    )
    assert tuple(capped.frames.shape[-2:]) == (75, 100)


def test_category_area_constraint() -> None:
    cats = torch.zeros(100, 100, dtype=torch.int64)
    cats[45:55, 45:55] = 1

    def ok(y: int, x: int) -> bool:
        window = cats[y : y + 30, x : x + 30]
        counts = torch.bincount(window.flatten(), minlength=2)
        return bool((counts > 0).sum() > 1 and counts.max() < 0.9 * counts.sum())

    constrained = [ok(*choose_crop(cats, (30, 30), 0.9, np.random.default_rng(s))[:2]) for s in range(200)]
    plain = [ok(*choose_crop(cats, (30, 30), 1.0, np.random.default_rng(s))[:2]) for s in range(200)]
    # one window in ~12 satisfies the limit; 10 tries find one about half the time
    assert sum(plain) < 40 and sum(constrained) > 80
    assert choose_crop(cats, (200, 30), 0.9, np.random.default_rng(0))[2:] == (100, 30)  # clipped size


def test_category_area_constraint_ignores_void() -> None:
    """A crop that is mostly void but holds two balanced categories is accepted at the first try
    (void is not a category); counting void it would be rejected every time."""
    cats = torch.full((60, 60), VOID, dtype=torch.int64)
    cats[20:40, 20:30] = 0
    cats[20:40, 30:40] = 1
    for s in range(20):
        first = choose_crop(cats, (40, 40), 1.0, np.random.default_rng(s))
        assert choose_crop(cats, (40, 40), 0.6, np.random.default_rng(s)) == first


def test_pseudo_rotation_keeps_alignment() -> None:
    clip = _moving_clip()
    still = LabelledClip(
        "img",
        ["a"] * 3,
        clip.frames[:1].expand(3, -1, -1, -1).contiguous(),
        clip.segment_map[:1].expand(3, -1, -1).contiguous(),
        clip.segments,
    )
    aug = ClipAugmentation(short_sides=(0,), flip_prob=0.0, pseudo_rotation_degrees=15.0)
    out = augment_clip(still, aug, np.random.default_rng(3))
    assert tuple(out.frames.shape) == (3, 3, 48, 64)
    assert not torch.equal(out.segment_map[0], out.segment_map[2])  # frames turn
    assert (out.segment_map == VOID).any()  # corners rotated in from outside
    _assert_aligned(out)


def test_bad_parameters() -> None:
    with pytest.raises(InputError):
        ClipAugmentation(short_sides=(10, 20, 30), sampling="range")
    with pytest.raises(InputError):
        ClipAugmentation(crop_size=(0, 10))
    with pytest.raises(InputError):
        short_side_choices(800, 480, 32)


def test_cropped_away_segments_are_dropped() -> None:
    from vidpan.data.datasets.base import to_clip_sample

    clip = _moving_clip()
    full = to_clip_sample(clip).targets
    assert full.ids.tolist() == [1, 2, 10, 11] and full.labels.tolist() == [5, 6, 0, 1]
    top_left = LabelledClip(
        clip.video_id,
        clip.frame_names,
        clip.frames[..., :10, :10],
        clip.segment_map[..., :10, :10],
        clip.segments,
    )
    kept = to_clip_sample(top_left).targets
    assert kept.ids.tolist() == [1] and kept.labels.tolist() == [5] and kept.masks.shape == (1, 4, 10, 10)
    void = LabelledClip(
        "v", ["a"], clip.frames[:1], torch.full_like(clip.segment_map[:1], VOID), clip.segments
    )
    empty = to_clip_sample(void).targets
    assert empty.masks.shape == (0, 1, 48, 64) and empty.labels.dtype == torch.int64
