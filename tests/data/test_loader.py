"""Training-clip loading: deterministic per (seed, epoch, index, rank), workers, DDP-style sampling."""

from __future__ import annotations

import itertools
import pickle
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from vidpan.data.datasets import VipsegDataset
from vidpan.data.loader import ClipDataset, EpochKeys, InfiniteClipSampler, collate_clips
from vidpan.data.samplers import FrameSampling
from vidpan.data.transforms import ClipAugmentation
from vidpan.errors import InputError
from vidpan.structures import ClipSample

AUG = ClipAugmentation(short_sides=(24, 32, 48), max_long_side=100, crop_size=(20, 28), flip_prob=0.5)


def _same(a: ClipSample, b: ClipSample) -> bool:
    return (
        a.video_id == b.video_id
        and a.frame_names == b.frame_names
        and torch.equal(a.frames, b.frames)
        and torch.equal(a.targets.labels, b.targets.labels)
        and torch.equal(a.targets.ids, b.targets.ids)
        and torch.equal(a.targets.masks, b.targets.masks)
    )


def _dataset(root: Path, **kw: object) -> ClipDataset:
    return ClipDataset(
        VipsegDataset(root),
        sampling=FrameSampling(3, 1, reverse=True),
        augmentation=AUG,
        seed=5,
        **kw,  # type: ignore[arg-type]
    )


def test_samples_are_deterministic(tiny_vipseg: Path) -> None:
    ds = _dataset(tiny_vipseg)
    a, b = ds[(3, 0)], ds[(3, 0)]
    assert _same(a, b) and a.frames.shape[0] == 3 and a.targets.masks.shape[1] == 3
    assert a.targets.masks.shape[-2:] == a.frames.shape[-2:]
    draws = [ds[(e, 0)] for e in range(8)]
    assert len({(tuple(s.frame_names), tuple(s.frames.shape)) for s in draws}) > 1  # epochs differ
    ds.set_epoch(3)
    assert _same(ds[0], a)
    other_rank = _dataset(tiny_vipseg, rank=1)
    assert any(not _same(other_rank[(e, 0)], draws[e]) for e in range(8))
    assert pickle.loads(pickle.dumps(ds)).seed == 5  # workers started with spawn get a copy


def test_dataloader_two_workers_is_deterministic(tiny_vipseg: Path) -> None:
    ds = _dataset(tiny_vipseg)

    def run(workers: int) -> list[list[ClipSample]]:
        sampler = InfiniteClipSampler(len(ds), rank=0, world_size=1, seed=1)
        loader = DataLoader(ds, batch_size=2, sampler=sampler, num_workers=workers, collate_fn=collate_clips)
        return list(itertools.islice(iter(loader), 4))

    serial, parallel = run(0), run(2)
    assert all(isinstance(batch, list) and len(batch) == 2 for batch in parallel)
    assert all(
        _same(x, y) for bs, bp in zip(serial, parallel, strict=True) for x, y in zip(bs, bp, strict=True)
    )
    keys = list(itertools.islice(iter(InfiniteClipSampler(len(ds), seed=1)), 8))
    assert all(_same(ds[k], s) for k, s in zip(keys, [s for b in serial for s in b], strict=True))


def test_infinite_sampler_passes_ranks_and_resume() -> None:
    size, world = 5, 2
    streams = [
        list(itertools.islice(iter(InfiniteClipSampler(size, rank=r, world_size=world, seed=3)), 9))
        for r in range(world)
    ]
    for p in range(3):
        per_pass = [idx for s in streams for (q, idx) in s if q == p]
        assert len(per_pass) == 6 and set(per_pass) == set(range(size))  # 3 per rank, one wrapped around
    assert [q for q, _ in streams[0]] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    passes = [[i for q, i in streams[0] if q == p] for p in range(3)]
    assert passes[0] != passes[1] or passes[1] != passes[2]  # reshuffled every pass
    resumed = list(
        itertools.islice(iter(InfiniteClipSampler(size, rank=1, world_size=world, seed=3, start=4)), 5)
    )
    assert resumed == streams[1][4:9]
    ordered = list(itertools.islice(iter(InfiniteClipSampler(3, shuffle=False)), 4))
    assert ordered == [(0, 0), (0, 1), (0, 2), (1, 0)]


def test_epoch_keys_with_distributed_sampler(tiny_vipseg: Path) -> None:
    ds = _dataset(tiny_vipseg)
    wrapped = [EpochKeys(DistributedSampler(ds, num_replicas=2, rank=r, seed=0)) for r in range(2)]
    for w in wrapped:
        w.set_epoch(4)
    keys = [list(w) for w in wrapped]
    assert all(len(k) == len(w) == 1 for k, w in zip(keys, wrapped, strict=True))
    assert {k[0] for k in keys} == {(4, 0), (4, 1)}
    loader = DataLoader(ds, batch_size=1, sampler=wrapped[0], collate_fn=collate_clips)
    assert _same(next(iter(loader))[0], ds[keys[0][0]])


def test_strict_clip_longer_than_videos(tiny_vipseg: Path) -> None:
    with pytest.raises(InputError, match=r"1 of 2 videos are shorter: vid_b \(3 frames\)"):
        ClipDataset(VipsegDataset(tiny_vipseg), sampling=FrameSampling(5, 2, strict=True), augmentation=None)
    lenient = ClipDataset(VipsegDataset(tiny_vipseg), sampling=FrameSampling(5, 2), augmentation=None)
    assert lenient[(0, 1)].frames.shape[0] == 5  # frames repeated


def test_augmented_masks_cover_their_image_content(tiny_vipseg: Path) -> None:
    """End to end (JPEG frames painted from the id PNGs): after sampling and augmentation every
    instance mask still lies on its segment's colour in every frame."""
    from clip_data import segment_color

    ds = _dataset(tiny_vipseg)
    for key in [(0, 0), (1, 0), (2, 1), (3, 1)]:
        s = ds[key]
        for k in range(s.frames.shape[0]):
            for seg, mask in zip(s.targets.ids.tolist(), s.targets.masks[:, k], strict=True):
                inner = mask.clone()
                inner[1:-1, 1:-1] &= mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
                inner[[0, -1]] = False
                inner[:, [0, -1]] = False
                if inner.any():
                    colour = torch.tensor(segment_color(seg)).view(3, 1)
                    assert (s.frames[k][:, inner].int() - colour).abs().float().mean() < 8
