"""Training datasets (VIPSeg, VSPW, COCO panoptic) that load labelled clips lazily."""

from vidpan.data.datasets.base import VOID, ClipSource, LabelledClip, to_clip_sample
from vidpan.data.datasets.coco_panoptic import CocoPanopticDataset
from vidpan.data.datasets.vipseg import VipsegDataset
from vidpan.data.datasets.vspw import VspwDataset

__all__ = [
    "VOID",
    "ClipSource",
    "CocoPanopticDataset",
    "LabelledClip",
    "VipsegDataset",
    "VspwDataset",
    "to_clip_sample",
]
