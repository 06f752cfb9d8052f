"""Training stages as data: what each stage builds, freezes and trains, and how its loss is computed.

DVIS trains its three networks one after the other, each with everything before it frozen
(``DVIS_Plus/dvis_Plus/meta_architecture.py``, reference §1.1, §1.5, §1.6). A stage *kind* is one
row of :data:`STAGE_KINDS` — the parts built, frozen and trained, and a small step function that
turns a batch into a :class:`~vidpan.losses.criterion.LossOutput`:

- ``segmenter`` (MinVIS): every frame an independent image, Mask2Former losses with deep
  supervision (``SetCriterion.image_losses``). The ViT inside stays frozen (``ViTConfig.frozen``),
  and so does the decoder's re-id branch: it only feeds the tracker, no image-level loss reaches
  it (a DVIS++ segmenter trained with MinVIS likewise leaves it at its initialisation); freezing it
  keeps every trained parameter on the loss's graph, as DDP requires.
- ``tracker`` (DVIS++ online): the segmenter runs in eval mode under ``no_grad``; the referring
  tracker trains with its identity noise (``model.tracker.noise_mode``), consistent per-clip
  matching, and during the first half of training the matching computed on the frozen
  segmenter's predictions re-ordered into the tracker's slots.
- ``refiner`` (DVIS++ offline): segmenter and tracker frozen; the tracker runs over the whole clip,
  the refiner trains with video-level matching (first half: matched on the frozen tracker).

The named stages of a recipe (``src/vidpan/configs/recipes/*.yaml``) are data on top of these
kinds: ``coco`` and ``segmenter`` are segmenter-kind stages on COCO / VIPSeg frames, ``tracker``
uses 5-frame clips, ``refiner`` 21-frame clips with reverse augmentation, ``finetune`` is the
refiner stage continued at crop 840 and a lower learning rate, ``vss`` the refiner stage on VSPW
semantic targets. Nothing here is a class hierarchy: a stage is a row of data and a function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vidpan.losses.criterion import LossOutput, SetCriterion
from vidpan.losses.matcher import HungarianMatcher
from vidpan.losses.prediction import VideoMaskPrediction
from vidpan.losses.schedule import (
    match_on_frozen_segmenter,
    match_on_frozen_tracker,
    use_frozen_stage_matching,
)
from vidpan.models.build import DVIS, Part, build_dvis
from vidpan.structures import ClipSample, ClipTargets, SegmenterOutput, TrackPrediction
from vidpan.training.checkpoints import load_init_weights
from vidpan.training.config import LossConfig, StageKind, TrainConfig


@dataclass
class Batch:
    """B clips of T frames, ready for the model."""

    frames: torch.Tensor  # [B*T, 3, H, W] float 0..255 (b-major), padded with the pixel mean
    targets: list[ClipTargets]  # B clips, masks [M, T, H_pad, W_pad] (padded to the size divisibility)
    clips: int  # B
    frames_per_clip: int  # T
    video_ids: list[str]


@dataclass
class StepContext:
    """What a step function may use. Trained parts are the (possibly DDP-wrapped) callables."""

    model: DVIS  # the unwrapped model (frozen parts are called through it)
    segmenter: nn.Module  # model.segmenter, or its DistributedDataParallel wrapper when trained
    tracker: nn.Module | None
    refiner: nn.Module | None
    criterion: SetCriterion
    iteration: int  # global iteration (0-based) of this step
    max_iter: int
    frozen_stage_matching: bool
    match_on_first_visible_frame: bool
    loss_generator: torch.Generator  # point sampling (on the training device)
    noise_generator: torch.Generator  # tracker identity noise (CPU)

    @property
    def first_half(self) -> bool:
        return self.frozen_stage_matching and use_frozen_stage_matching(self.iteration, self.max_iter)


StepFn = Callable[[StepContext, Batch], LossOutput]


@dataclass(frozen=True)
class StageSpec:
    """One stage kind: parts built / frozen / trained, and its step function."""

    kind: StageKind
    built: tuple[Part, ...]
    frozen: tuple[Part, ...]
    trained: tuple[Part, ...]
    step: StepFn
    summary: str
    # Parameters of the trained parts that stay frozen (name prefixes).
    frozen_prefixes: tuple[str, ...] = ()
    # DDP option; False as long as every trained parameter gets a gradient at every step.
    find_unused_parameters: bool = False


# --------------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------------


def prepare_batch(
    clips: Sequence[ClipSample],
    *,
    pixel_mean: Sequence[float],
    size_divisibility: int,
    device: torch.device,
    max_instances: int | None = None,
) -> Batch:
    """Pad the clips of a batch to one size and move them to ``device``.

    Frames are padded at the bottom/right with the pixel mean, which the segmenter's
    normalisation maps to 0 — the same as detectron2's ``ImageList`` padding of normalised
    images. Target masks are padded with False to the size the segmenter pads to (a multiple of
    ``size_divisibility``), where its 1/4-resolution mask logits live. With ``max_instances``,
    clips with more instances than queries keep the first ``max_instances``.
    """
    if not clips:
        raise ValueError("empty batch")
    frames_per_clip = clips[0].frames.shape[0]
    if any(c.frames.shape[0] != frames_per_clip for c in clips):
        raise ValueError(f"clips of different lengths in one batch: {[c.frames.shape[0] for c in clips]}")
    height = max(int(c.frames.shape[-2]) for c in clips)
    width = max(int(c.frames.shape[-1]) for c in clips)
    div = max(size_divisibility, 1)
    pad_h, pad_w = -(-height // div) * div, -(-width // div) * div
    mean = torch.tensor(list(pixel_mean), dtype=torch.float32, device=device).view(1, 3, 1, 1)
    frames = mean.expand(len(clips) * frames_per_clip, 3, height, width).clone()  # [B*T, 3, H, W]
    targets = []
    for b, clip in enumerate(clips):
        h, w = clip.frames.shape[-2:]
        rows = slice(b * frames_per_clip, (b + 1) * frames_per_clip)
        frames[rows, :, :h, :w] = clip.frames.to(device, non_blocking=True).float()
        t = clip.targets
        labels, ids, masks = t.labels, t.ids, t.masks
        if max_instances is not None and labels.numel() > max_instances:
            labels, ids, masks = labels[:max_instances], ids[:max_instances], masks[:max_instances]
        masks = F.pad(masks.to(device, non_blocking=True), (0, pad_w - w, 0, pad_h - h), value=False)
        targets.append(ClipTargets(labels=labels.to(device), ids=ids.to(device), masks=masks))
    return Batch(
        frames=frames,
        targets=targets,
        clips=len(clips),
        frames_per_clip=frames_per_clip,
        video_ids=[c.video_id for c in clips],
    )


def _unfold(x: torch.Tensor, batch: Batch) -> torch.Tensor:
    """[B*T, ...] -> [B, T, ...]."""
    return x.unflatten(0, (batch.clips, batch.frames_per_clip))


def _video_prediction(
    class_logits: torch.Tensor, mask_logits: torch.Tensor | None, aux: Sequence[TrackPrediction] = ()
) -> VideoMaskPrediction:
    if mask_logits is None:
        raise ValueError("training needs mask predictions (mask features were not passed)")
    return VideoMaskPrediction(
        class_logits=class_logits,
        mask_logits=mask_logits,
        aux=tuple(_video_prediction(a.class_logits, a.mask_logits) for a in aux),
    )


@torch.no_grad()
def frozen_segmenter(ctx: StepContext, batch: Batch) -> SegmenterOutput:
    """The frozen segmenter on every frame (eval mode is set by the trainer), no gradients."""
    return ctx.model.segmenter(batch.frames, return_aux=False)


# --------------------------------------------------------------------------------------------
# Step functions
# --------------------------------------------------------------------------------------------


def segmenter_step(ctx: StepContext, batch: Batch) -> LossOutput:
    """Image-level Mask2Former losses on every frame (MinVIS)."""
    out = ctx.segmenter(batch.frames, return_aux=True)
    pred = VideoMaskPrediction.from_frames(out, batch.clips)
    return ctx.criterion.image_losses(pred, batch.targets, generator=ctx.loss_generator)


def tracker_step(ctx: StepContext, batch: Batch) -> LossOutput:
    """Referring-tracker losses over the clip on top of the frozen segmenter."""
    if ctx.tracker is None:
        raise ValueError("the tracker stage needs a tracker")
    seg = frozen_segmenter(ctx, batch)
    # [B*T, Q, C] -> [B, T, Q, C]; [B*T, C_m, h, w] -> [B, T, C_m, h, w]
    out, _ = ctx.tracker(
        _unfold(seg.embeds, batch),
        _unfold(seg.embeds_unnormed, batch),
        _unfold(seg.mask_features, batch),
        generator=ctx.noise_generator,
    )
    pred = _video_prediction(out.class_logits, out.mask_logits, out.aux)
    matching = None
    if ctx.first_half:
        segmenter_pred = VideoMaskPrediction(
            class_logits=_unfold(seg.class_logits, batch), mask_logits=_unfold(seg.mask_logits, batch)
        )
        matching = match_on_frozen_segmenter(
            ctx.criterion.matcher,
            segmenter_pred,
            out.indices,
            batch.targets,
            match_on_first_visible_frame=ctx.match_on_first_visible_frame,
            generator=ctx.loss_generator,
        )
    return ctx.criterion.tracker_losses(
        pred,
        batch.targets,
        matching=matching,
        match_on_first_visible_frame=ctx.match_on_first_visible_frame,
        generator=ctx.loss_generator,
    )


def refiner_step(ctx: StepContext, batch: Batch) -> LossOutput:
    """Temporal-refiner losses (video-level matching) on top of the frozen segmenter and tracker."""
    if ctx.refiner is None or ctx.model.tracker is None:
        raise ValueError("the refiner stage needs a tracker and a refiner")
    seg = frozen_segmenter(ctx, batch)
    embeds_unnormed = _unfold(seg.embeds_unnormed, batch)
    mask_features = _unfold(seg.mask_features, batch)
    first_half = ctx.first_half
    with torch.no_grad():
        # The frozen tracker's masks are only needed to match on it (first half).
        tracked, _ = ctx.model.tracker(
            _unfold(seg.embeds, batch), embeds_unnormed, mask_features if first_half else None
        )
    out = ctx.refiner(tracked.embeds, embeds_unnormed, mask_features)
    pred = _video_prediction(out.class_logits, out.mask_logits, out.aux)
    matching = None
    if first_half:
        matching = match_on_frozen_tracker(
            ctx.criterion.matcher,
            _video_prediction(tracked.class_logits, tracked.mask_logits),
            batch.targets,
            generator=ctx.loss_generator,
        )
    return ctx.criterion.refiner_losses(pred, batch.targets, matching=matching, generator=ctx.loss_generator)


STAGE_KINDS: dict[StageKind, StageSpec] = {
    "segmenter": StageSpec(
        kind="segmenter",
        built=("segmenter",),
        frozen=(),
        trained=("segmenter",),
        step=segmenter_step,
        summary="segmenter trained with image-level losses (re-id branch frozen; the ViT too unless model.vit.frozen is false)",
        frozen_prefixes=("segmenter.decoder.reid_embed.",),
    ),
    "tracker": StageSpec(
        kind="tracker",
        built=("segmenter", "tracker"),
        frozen=("segmenter",),
        trained=("tracker",),
        step=tracker_step,
        summary="segmenter frozen; tracker trained with consistent per-clip matching and noise",
    ),
    "refiner": StageSpec(
        kind="refiner",
        built=("segmenter", "tracker", "refiner"),
        frozen=("segmenter", "tracker"),
        trained=("refiner",),
        step=refiner_step,
        summary="segmenter and tracker frozen; refiner trained with video-level matching",
    ),
}


def stage_spec(kind: StageKind) -> StageSpec:
    """The :class:`StageSpec` of a stage kind."""
    return STAGE_KINDS[kind]


# --------------------------------------------------------------------------------------------
# Building a stage
# --------------------------------------------------------------------------------------------

VIT_PREFIX = "segmenter.backbone.vit."


@dataclass
class StageModel:
    """A stage's model with its init weights loaded and its earlier parts frozen."""

    model: DVIS
    init_lines: list[str]  # what was loaded / left random, for the log
    # State-dict prefixes a training checkpoint need not hold (frozen, and loaded from the init file).
    checkpoint_skip: tuple[str, ...]


def build_stage_model(cfg: TrainConfig, spec: StageSpec, init_path: Path | None) -> StageModel:
    """Build the parts ``spec`` needs, load ``init_path``, freeze the frozen parts (``requires_grad``
    False; the trainer keeps them in eval mode and the step functions call them under ``no_grad``)."""
    torch.manual_seed(cfg.seed)  # identical random init on every rank (and on resume)
    model = build_dvis(cfg.model, parts=spec.built)
    frozen_components: list[str] = [*spec.frozen]
    skip = [f"{p}." for p in spec.frozen]
    if cfg.model.vit.frozen:
        frozen_components.append(VIT_PREFIX.rstrip("."))
        skip.append(VIT_PREFIX)
    if init_path is not None:
        report = load_init_weights(
            model, init_path, frozen_components=frozen_components, reset=cfg.stage.init_reset
        )
        lines = report.lines()
    else:
        lines = ["init weights: none (every part starts from its random initialisation)"]
    for part in spec.frozen:
        getattr(model, part).requires_grad_(False)
    for name, param in model.named_parameters():
        if name.startswith(spec.frozen_prefixes):
            param.requires_grad_(False)
    # Without an init file the frozen parts exist only in memory: checkpoints must hold them.
    return StageModel(model=model, init_lines=lines, checkpoint_skip=tuple(skip) if init_path else ())


def build_criterion(cfg: LossConfig, num_classes: int) -> SetCriterion:
    """The set criterion; the matcher uses the loss weights as its costs (Mask2Former)."""
    return SetCriterion(
        num_classes=num_classes,
        matcher=HungarianMatcher(
            class_weight=cfg.class_weight,
            mask_weight=cfg.mask_weight,
            dice_weight=cfg.dice_weight,
            num_points=cfg.num_points,
        ),
        class_weight=cfg.class_weight,
        mask_weight=cfg.mask_weight,
        dice_weight=cfg.dice_weight,
        no_object_weight=cfg.no_object_weight,
        num_points=cfg.num_points,
        oversample_ratio=cfg.oversample_ratio,
        importance_sample_ratio=cfg.importance_sample_ratio,
    )
