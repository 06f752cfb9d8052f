"""Training clips for ``torch.utils.data.DataLoader``: deterministic sampling, augmentation, batching.

:class:`ClipDataset` turns a dataset of videos (VIPSeg, VSPW, COCO panoptic, ...) into a map-style
``Dataset`` of augmented :class:`ClipSample`. Its keys are ``(epoch, video_index)`` pairs (a bare
``int`` uses :attr:`ClipDataset.epoch`); the frames, the scale, the crop and the flip of a sample
depend only on ``(seed, epoch, video_index, rank)``, never on worker ids or loading order, so
results are reproducible with any number of workers and after resuming.

How the trainer samples (one process per GPU under ``torchrun``):

- iteration-based (the DVIS++ recipes): ``InfiniteClipSampler(len(ds), rank=r, world_size=n,
  seed=s, start=k)`` yields ``(pass, index)`` keys forever; pass ``p`` is a permutation of the
  videos seeded by ``(s, p)``, dealt round-robin to the ranks (each rank gets ``ceil(len / n)`` keys
  per pass, wrapping around like ``DistributedSampler``). ``start`` = samples this rank already
  consumed (``iteration * per_rank_batch``) resumes the exact stream.
- epoch-based: wrap ``torch.utils.data.DistributedSampler(ds, num_replicas=n, rank=r, seed=s)``
  in :class:`EpochKeys` and call ``set_epoch(e)`` on the wrapper each epoch; it tags indices
  with the epoch.

Then ``DataLoader(ds, batch_size=b, sampler=..., num_workers=w, collate_fn=collate_clips)``.
:func:`collate_clips` keeps a list (clips differ in size; the model pads to /32).
"""

from __future__ import annotations

from collections.abc import Iterator, Sized
from pathlib import Path
from typing import Protocol

import numpy as np
from torch.utils.data import Dataset, Sampler

from vidpan.data.datasets.base import ClipSource, to_clip_sample
from vidpan.data.samplers import FrameSampling, check_clip_lengths, select_frames
from vidpan.data.transforms import ClipAugmentation, augment_clip
from vidpan.structures import ClipSample

ClipKey = tuple[int, int]
"""``(epoch or pass, video_index)``."""


def sample_rng(seed: int, epoch: int, index: int, rank: int) -> np.random.Generator:
    """The generator of one sample: a ``SeedSequence`` of (seed, epoch, index, rank)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, epoch, index, rank])))


class ClipDataset(Dataset[ClipSample]):
    """Augmented training clips of a video dataset.

    Args:
        source: the videos (``VipsegDataset``, ``VspwDataset``, ``CocoPanopticDataset``, ...).
        sampling: which frames make a clip; ``strict`` is checked for every video here.
        augmentation: the clip transform, or None for raw clips (evaluation, debugging).
        seed: base seed of the whole run.
        rank: this process's rank (part of every sample's seed).
    """

    def __init__(
        self,
        source: ClipSource,
        *,
        sampling: FrameSampling,
        augmentation: ClipAugmentation | None,
        seed: int = 0,
        rank: int = 0,
    ) -> None:
        self.source = source
        self.sampling = sampling
        self.augmentation = augmentation
        self.seed = seed
        self.rank = rank
        self.epoch = 0
        check_clip_lengths(
            [source.num_frames(i) for i in range(len(source))],
            sampling,
            video_ids=[source.video_id(i) for i in range(len(source))],
            source=getattr(source, "root", None) or getattr(source, "json_path", None),
        )

    def __len__(self) -> int:
        return len(self.source)

    def set_epoch(self, epoch: int) -> None:
        """Epoch used for bare ``int`` keys (prefer ``(epoch, index)`` keys with workers)."""
        self.epoch = epoch

    def __getitem__(self, key: int | ClipKey) -> ClipSample:
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        index = int(index)
        if not 0 <= index < len(self.source):
            raise IndexError(f"video index {index} out of range 0..{len(self.source) - 1}")
        rng = sample_rng(self.seed, int(epoch), index, self.rank)
        frame_indices = select_frames(self.source.num_frames(index), self.sampling, rng)
        clip = self.source.load_labelled_clip(index, frame_indices)
        if self.augmentation is not None:
            clip = augment_clip(clip, self.augmentation, rng)
        return to_clip_sample(clip)


def collate_clips(batch: list[ClipSample]) -> list[ClipSample]:
    """Keep the clips as a list: sizes differ from clip to clip."""
    return list(batch)


class _EpochSampler(Protocol):
    def __iter__(self) -> Iterator[int]: ...

    def __len__(self) -> int: ...

    def set_epoch(self, epoch: int) -> None: ...


class EpochKeys(Sampler[ClipKey]):
    """Tag the indices of an epoch sampler (e.g. ``DistributedSampler``) with the epoch."""

    def __init__(self, sampler: Sampler[int] | _EpochSampler) -> None:
        self.sampler = sampler
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[ClipKey]:
        for index in self.sampler:
            yield (self.epoch, int(index))

    def __len__(self) -> int:
        assert isinstance(self.sampler, Sized)
        return len(self.sampler)


class InfiniteClipSampler(Sampler[ClipKey]):
    """An endless shuffled stream of ``(pass, index)`` keys for one rank (iteration-based training).

    Args:
        size: number of videos.
        rank, world_size: this process and the number of processes.
        seed: shuffling seed (the same on every rank).
        shuffle: permute each pass (else passes go in order).
        start: number of keys this rank already consumed (resume).
    """

    def __init__(
        self,
        size: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle: bool = True,
        start: int = 0,
    ) -> None:
        if size <= 0:
            raise ValueError("InfiniteClipSampler needs a non-empty dataset")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world size {world_size}")
        self.size, self.rank, self.world_size = size, rank, world_size
        self.seed, self.shuffle, self.start = seed, shuffle, start
        self.per_rank = -(-size // world_size)  # ceil

    def _pass(self, p: int) -> list[int]:
        if self.shuffle:
            order = np.random.default_rng([self.seed, p]).permutation(self.size).tolist()
        else:
            order = list(range(self.size))
        total = self.per_rank * self.world_size
        padded = (order * (-(-total // self.size)))[:total]  # wrap around like DistributedSampler
        return padded[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[ClipKey]:
        p, offset = divmod(self.start, self.per_rank)
        while True:
            for index in self._pass(p)[offset:]:
                yield (p, index)
            p, offset = p + 1, 0


def describe_source(source: ClipSource) -> str:
    """One line for logs: dataset type, videos, frames."""
    frames = sum(source.num_frames(i) for i in range(len(source)))
    where = getattr(source, "root", None) or getattr(source, "json_path", None)
    return f"{type(source).__name__}({Path(where) if where else ''}): {len(source)} videos, {frames} frames"
