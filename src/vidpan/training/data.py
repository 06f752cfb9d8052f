"""The training data of a stage: dataset from ``data.*``, clip sampling, augmentation, DataLoader.

Everything that can be wrong with the data is found here, before any model is built: a missing
root or file (the datasets check every listed image and mask), an empty split, videos shorter than
a ``strict`` clip, a class space that disagrees with ``model.num_classes`` / ``num_things``.

DDP sampling follows :mod:`vidpan.data.loader`: every rank draws its own share of each shuffled
pass of the videos with :class:`~vidpan.data.loader.InfiniteClipSampler` (``start`` = clips this
rank already consumed, so a resumed run reads exactly the clips the uninterrupted run would), and
a sample's frames, scale, crop and flip depend only on (seed, pass, video, rank) — not on the
number of DataLoader workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from vidpan.data.categories import CategoryMapping
from vidpan.data.datasets.base import ClipSource
from vidpan.data.datasets.coco_panoptic import CocoPanopticDataset
from vidpan.data.datasets.vipseg import VipsegDataset
from vidpan.data.datasets.vspw import VspwDataset
from vidpan.data.loader import ClipDataset, InfiniteClipSampler, collate_clips
from vidpan.data.samplers import FrameSampling
from vidpan.data.transforms import ClipAugmentation
from vidpan.errors import InputError
from vidpan.structures import ClipSample
from vidpan.training.config import DataConfig


def _root(value: str, key: str) -> Path:
    if not value:
        raise InputError(
            f"data.{key}: no dataset root given (set it in the recipe or with --set data.{key}=DIR)"
        )
    path = Path(value)
    if not path.is_dir():
        raise InputError(f"data.{key}: dataset root is not a directory", path=path)
    return path


def build_source(cfg: DataConfig) -> ClipSource:
    """The dataset of videos ``data.dataset`` names (validated upfront)."""
    if cfg.dataset == "vipseg":
        root = _root(cfg.vipseg_root, "vipseg_root")
        mapping = CategoryMapping.from_file(cfg.categories) if cfg.categories else None
        return VipsegDataset(root, split=cfg.split, mapping=mapping)
    if cfg.dataset == "vspw":
        root = _root(cfg.vspw_root, "vspw_root")
        categories = cfg.categories
        if not categories and cfg.vipseg_root:
            categories = str(Path(cfg.vipseg_root) / "panoVIPSeg_categories.json")
        if not categories:
            raise InputError(
                "data.categories: VSPW ships no category list; give panoVIPSeg_categories.json "
                "(or data.vipseg_root, where it is looked up)"
            )
        if not Path(categories).is_file():
            raise InputError("data.categories: category file not found", path=categories)
        return VspwDataset(root, mapping=CategoryMapping.from_file(categories), split=cfg.split)
    if cfg.dataset == "coco":
        root = _root(cfg.coco_root, "coco_root")
        mapping = CategoryMapping.from_file(cfg.categories) if cfg.categories else None
        return CocoPanopticDataset(
            root / "annotations" / f"panoptic_{cfg.split}.json",
            root / f"panoptic_{cfg.split}",
            root / cfg.split,
            mapping=mapping,
        )
    raise InputError(f"data.dataset: unknown dataset {cfg.dataset!r}")


def frame_sampling(cfg: DataConfig) -> FrameSampling:
    s = cfg.sampling
    return FrameSampling(
        num_frames=s.num_frames,
        frame_range=s.frame_range,
        reverse=s.reverse,
        replace=s.replace,
        strict=s.strict,
    )


def augmentation(cfg: DataConfig) -> ClipAugmentation:
    a = cfg.augmentation
    return ClipAugmentation(
        short_sides=tuple(a.short_sides),
        sampling=a.short_side_sampling,
        max_long_side=a.max_long_side,
        crop_size=None if a.crop_size is None else (a.crop_size[0], a.crop_size[1]),
        single_category_max_area=a.single_category_max_area,
        flip_prob=a.flip_prob,
        pseudo_rotation_degrees=a.pseudo_rotation_degrees,
    )


def check_class_space(mapping: CategoryMapping, num_classes: int, num_things: int, *, where: str) -> None:
    """The dataset's class space must be the model's."""
    if mapping.num_classes != num_classes or mapping.num_things != num_things:
        raise InputError(
            f"{where} has {mapping.num_classes} categories ({mapping.num_things} things) but the model "
            f"is configured for model.num_classes={num_classes}, model.num_things={num_things}"
        )


def build_dataset(cfg: DataConfig, *, seed: int, rank: int) -> ClipDataset:
    """Augmented clips of the configured dataset for one rank (strict clip lengths checked here)."""
    return ClipDataset(
        build_source(cfg), sampling=frame_sampling(cfg), augmentation=augmentation(cfg), seed=seed, rank=rank
    )


def clip_batches(
    dataset: ClipDataset,
    *,
    per_rank_batch: int,
    rank: int,
    world_size: int,
    seed: int,
    start_iteration: int,
    num_workers: int,
    pin_memory: bool = False,
) -> Iterator[list[ClipSample]]:
    """Endless batches of ``per_rank_batch`` clips for this rank, starting after ``start_iteration``."""
    sampler = InfiniteClipSampler(
        len(dataset), rank=rank, world_size=world_size, seed=seed, start=start_iteration * per_rank_batch
    )
    loader = DataLoader(
        dataset,
        batch_size=per_rank_batch,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_clips,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        # Workers only read and augment; keep the main process's torch threads for the model.
        worker_init_fn=_single_thread_worker if num_workers > 0 else None,
    )
    return iter(loader)


def _single_thread_worker(_: int) -> None:
    torch.set_num_threads(1)
