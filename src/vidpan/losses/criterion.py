"""The Mask2Former / DVIS++ set criterion: matched class, mask-BCE and dice losses with deep supervision.

Follows Mask2Former's ``SetCriterion`` (``mask2former/modeling/criterion.py``) and DVIS++'s
``VideoSetCriterion`` (``DVIS_Plus/mask2former_video/modeling/criterion.py``) as the DVIS++ meta
architectures drive it (``DVIS_Plus/dvis_Plus/meta_architecture.py``):

- ``loss_ce``: cross-entropy over the K+1 logits of every query, unmatched queries labelled
  no-object, class weights (1, ..., 1, no_object_weight) (buffer ``empty_weight``); a weighted mean,
  so the no-object weight scales both the term and the normaliser.
- ``loss_mask`` / ``loss_dice``: for every matched (query, ground truth) pair, P points are
  importance-sampled on the predicted logits (3P candidates, the 0.75P most uncertain + 0.25P
  uniform); the ground truth is read at full resolution at the same normalised points. Mean BCE
  over the points and dice 1 - (2 p.t + 1) / (p + t + 1), each summed over pairs and divided by
  ``num_masks`` = the number of ground-truth masks, averaged over distributed ranks, at least 1.
- Deep supervision: the same three terms for every auxiliary prediction, named ``*_aux{i}``
  (DVIS++ ``*_{i}``), each re-matched unless a matching is given (DVIS++ first-half mode).

Three variants, one per training stage (all take batch-first :class:`VideoMaskPrediction`):

- :meth:`SetCriterion.image_losses` (segmenter, MinVIS): every frame an image, matched on its own.
  Like DVIS++, each frame's targets are all the clip's instances (empty where absent); T = 1 for
  MinVIS. ``num_masks`` = sum over frames of the target count.
- :meth:`SetCriterion.tracker_losses` (online tracker): one consistent assignment per clip
  (:meth:`HungarianMatcher.match_clip_consistent`), then per-frame losses for every frame.
  ``num_masks`` = M * T per clip.
- :meth:`SetCriterion.refiner_losses` (offline refiner): video-level matching and losses on masks
  stacked as (T*h, w) with P*T points; the class vector of frame 0 (the refiner repeats one vector
  over T). ``num_masks`` = M per clip.

Losses are computed in float32 with autocast off (the reference samples in the AMP dtype, fp16
coordinates included). Random points come from an optional ``torch.Generator`` (see
:mod:`vidpan.ops.point_sample`); with one, saving its state in the checkpoint makes the losses of a
resumed run equal those of an uninterrupted one. With ``generator=None`` the draws have the
reference's shapes and order on the global RNG, so from the same RNG state on the same device the
points equal the reference's (tests/losses/test_reference_equivalence.py); a real DVIS++ run's
points can never be reproduced, since its global CUDA RNG state also depends on everything else
that ran before the loss.

Rank semantics: every rank must call a variant once per step (``num_masks_across_ranks`` all-reduces).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from vidpan.losses.matcher import HungarianMatcher, MatchIndices, check_same_grid, stack_frames
from vidpan.losses.prediction import VideoMaskPrediction, video_class_logits
from vidpan.ops.point_sample import (
    logit_uncertainty,
    point_sample,
    sample_binary_masks,
    uncertain_point_coords_with_randomness,
)
from vidpan.structures import ClipTargets


def num_masks_across_ranks(count: float, device: torch.device) -> float:
    """Loss normaliser: ``count`` averaged over the ranks of the default process group, at least 1.

    Every rank must call it the same number of times (it all-reduces when distributed is initialised).
    """
    num = torch.as_tensor([float(count)], dtype=torch.float32, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(num)
        num = num / dist.get_world_size()
    return max(float(num.item()), 1.0)


@dataclass
class LossOutput:
    """Result of one criterion call.

    ``terms`` are the unweighted scalars (``loss_ce``, ``loss_mask``, ``loss_dice``, then
    ``loss_ce_aux0`` ...); ``total`` = sum of weights[k] * terms[k] (what DVIS++ sums; its logs show
    the weighted values).
    """

    total: torch.Tensor  # [] scalar, differentiable
    terms: dict[str, torch.Tensor]
    weights: dict[str, float]
    matching: list[MatchIndices]  # assignment of the final layer, one per image / clip
    num_masks: float

    def weighted_terms(self) -> dict[str, torch.Tensor]:
        return {k: v * self.weights[k] for k, v in self.terms.items()}


def sigmoid_bce_point_loss(logits: torch.Tensor, labels: torch.Tensor, num_masks: float) -> torch.Tensor:
    """Sum over masks of the mean BCE over points, / num_masks. logits, labels: [R, P]."""
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(1).sum() / num_masks


def dice_point_loss(logits: torch.Tensor, labels: torch.Tensor, num_masks: float) -> torch.Tensor:
    """Sum over masks of 1 - (2 p.t + 1) / (p + t + 1) with p = sigmoid(logits), / num_masks. [R, P]."""
    probs = logits.sigmoid()
    numerator = 2.0 * (probs * labels).sum(-1)
    denominator = probs.sum(-1) + labels.sum(-1)
    return (1.0 - (numerator + 1.0) / (denominator + 1.0)).sum() / num_masks


class SetCriterion(nn.Module):
    """Matched-set losses for the three DVIS stages (see the module docstring).

    Args:
        num_classes: K (the logits have K+1 entries, the last one no-object).
        matcher: the Hungarian matcher (its weights are the matching costs).
        class_weight, mask_weight, dice_weight: loss weights (2 / 5 / 5), also used for aux terms.
        no_object_weight: class weight of the no-object logit in ``loss_ce`` (0.1).
        num_points: P points per mask (12544); the refiner uses P * T.
        oversample_ratio: candidates per point for importance sampling (3.0).
        importance_sample_ratio: fraction of points taken from the most uncertain candidates (0.75).
        num_masks_fn: the normaliser reduction, :func:`num_masks_across_ranks` by default.
    """

    empty_weight: torch.Tensor

    def __init__(
        self,
        *,
        num_classes: int,
        matcher: HungarianMatcher,
        class_weight: float = 2.0,
        mask_weight: float = 5.0,
        dice_weight: float = 5.0,
        no_object_weight: float = 0.1,
        num_points: int = 12544,
        oversample_ratio: float = 3.0,
        importance_sample_ratio: float = 0.75,
        num_masks_fn: Callable[[float, torch.device], float] = num_masks_across_ranks,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher
        self.weights = {"loss_ce": class_weight, "loss_mask": mask_weight, "loss_dice": dice_weight}
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.num_masks_fn = num_masks_fn
        empty_weight = torch.ones(num_classes + 1)
        empty_weight[-1] = no_object_weight
        # Derived from the arguments, so not saved in checkpoints (DVIS++ saves it as criterion.empty_weight).
        self.register_buffer("empty_weight", empty_weight, persistent=False)

    # ---------------------------------------------------------------- variants (one per stage)

    def image_losses(
        self,
        pred: VideoMaskPrediction,
        targets: Sequence[ClipTargets],
        *,
        drop_absent: bool = False,
        generator: torch.Generator | None = None,
    ) -> LossOutput:
        """Segmenter losses: every frame an independent image, every layer re-matched.

        Args:
            pred: [B, T, ...] (``VideoMaskPrediction.from_frames`` unfolds a ``SegmenterOutput``).
            targets: B clips with masks at input resolution.
            drop_absent: leave out of a frame's targets the instances whose mask is empty there
                (DVIS++ keeps them, which only matters for T > 1).
        """
        batch, frames = pred.class_logits.shape[:2]
        _check_targets(batch, frames, targets)
        labels: list[torch.Tensor] = []
        masks: list[torch.Tensor] = []
        for clip in targets:
            for t in range(frames):
                keep = clip.present[:, t] if drop_absent else slice(None)
                labels.append(clip.labels[keep])
                masks.append(clip.masks[keep, t])
        num_masks = self._num_masks(sum(x.numel() for x in labels), pred.class_logits.device)
        layers = []
        final_matching: list[MatchIndices] = []
        for i, layer in enumerate(pred.layers()):
            class_logits = layer.class_logits.flatten(0, 1)  # [B, T, Q, K+1] -> [B*T, Q, K+1]
            mask_logits = layer.mask_logits.flatten(0, 1)  # [B, T, Q, h, w] -> [B*T, Q, h, w]
            matching = self.matcher.match_frames(
                class_logits, mask_logits, labels, masks, generator=generator
            )
            final_matching = matching if i == 0 else final_matching
            pred_masks = torch.cat([mask_logits[n, m.queries] for n, m in enumerate(matching)])
            target_masks = torch.cat([masks[n][m.targets] for n, m in enumerate(matching)])
            layers.append(
                self._layer_terms(
                    class_logits,
                    labels,
                    matching,
                    pred_masks,
                    target_masks,
                    num_masks,
                    self.num_points,
                    generator,
                )
            )
        return self._assemble(layers, final_matching, num_masks)

    def tracker_losses(
        self,
        pred: VideoMaskPrediction,
        targets: Sequence[ClipTargets],
        *,
        matching: Sequence[MatchIndices] | None = None,
        match_on_first_visible_frame: bool = True,
        generator: torch.Generator | None = None,
    ) -> LossOutput:
        """Tracker losses: per-frame losses under one assignment per clip.

        Args:
            pred: tracker predictions [B, T, ...] with per-layer ``aux``.
            targets: B clips.
            matching: B assignments to use for every layer (first-half schedule: computed on the
                frozen segmenter, see ``vidpan.losses.schedule``); None = consistent matching on
                each layer's own predictions.
            match_on_first_visible_frame: see :meth:`HungarianMatcher.match_clip_consistent`.
        """
        batch, frames = pred.class_logits.shape[:2]
        _check_targets(batch, frames, targets)
        if matching is not None and len(matching) != batch:
            raise ValueError(f"{len(matching)} given assignments for {batch} clips")
        labels = [clip.labels for clip in targets for _ in range(frames)]
        num_masks = self._num_masks(
            frames * sum(clip.labels.numel() for clip in targets), pred.class_logits.device
        )
        layers = []
        final_matching: list[MatchIndices] = []
        for i, layer in enumerate(pred.layers()):
            if matching is None:
                clip_matching = self.matcher.match_clip_consistent(
                    layer.class_logits,
                    layer.mask_logits,
                    targets,
                    match_on_first_visible_frame=match_on_first_visible_frame,
                    generator=generator,
                )
            else:
                clip_matching = list(matching)
            final_matching = clip_matching if i == 0 else final_matching
            frame_matching = [m for m in clip_matching for _ in range(frames)]  # b-major, like B*T
            # [n pairs of clip b, frame t] ordered b, t, pair.
            pred_masks = torch.cat(
                [
                    layer.mask_logits[b, t, m.queries]
                    for b, m in enumerate(clip_matching)
                    for t in range(frames)
                ]
            )
            target_masks = torch.cat(
                [targets[b].masks[m.targets, t] for b, m in enumerate(clip_matching) for t in range(frames)]
            )
            layers.append(
                self._layer_terms(
                    layer.class_logits.flatten(0, 1),  # [B, T, Q, K+1] -> [B*T, Q, K+1]
                    labels,
                    frame_matching,
                    pred_masks,
                    target_masks,
                    num_masks,
                    self.num_points,
                    generator,
                )
            )
        return self._assemble(layers, final_matching, num_masks)

    def refiner_losses(
        self,
        pred: VideoMaskPrediction,
        targets: Sequence[ClipTargets],
        *,
        matching: Sequence[MatchIndices] | None = None,
        generator: torch.Generator | None = None,
    ) -> LossOutput:
        """Refiner losses: video-level matching and losses over the whole clip.

        Args:
            pred: refiner predictions [B, T, ...] (class logits identical over T; frame 0 is used).
            targets: B clips.
            matching: B assignments for every layer (first-half schedule: computed on the frozen
                tracker, ``vidpan.losses.schedule.match_on_frozen_tracker``); None = video-level
                matching of each layer's own predictions.
        """
        batch, frames = pred.class_logits.shape[:2]
        _check_targets(batch, frames, targets)
        if matching is not None and len(matching) != batch:
            raise ValueError(f"{len(matching)} given assignments for {batch} clips")
        labels = [clip.labels for clip in targets]
        num_masks = self._num_masks(sum(x.numel() for x in labels), pred.class_logits.device)
        num_points = self.num_points * frames
        layers = []
        final_matching: list[MatchIndices] = []
        for i, layer in enumerate(pred.layers()):
            class_logits = video_class_logits(layer.class_logits, "first")
            if matching is None:
                video_matching = self.matcher.match_video(
                    class_logits, layer.mask_logits, targets, generator=generator
                )
            else:
                video_matching = list(matching)
            final_matching = video_matching if i == 0 else final_matching
            # [T, n, h, w] -> [n, T, h, w] -> [n, T*h, w] per clip.
            pred_masks = torch.cat(
                [
                    stack_frames(layer.mask_logits[b][:, m.queries].transpose(0, 1))
                    for b, m in enumerate(video_matching)
                ]
            )
            target_masks = torch.cat(
                [stack_frames(targets[b].masks[m.targets]) for b, m in enumerate(video_matching)]
            )
            layers.append(
                self._layer_terms(
                    class_logits,
                    labels,
                    video_matching,
                    pred_masks,
                    target_masks,
                    num_masks,
                    num_points,
                    generator,
                )
            )
        return self._assemble(layers, final_matching, num_masks)

    # ---------------------------------------------------------------- shared pieces

    def _num_masks(self, count: float, device: torch.device) -> float:
        return self.num_masks_fn(count, device)

    def classification_loss(
        self, class_logits: torch.Tensor, labels: Sequence[torch.Tensor], matching: Sequence[MatchIndices]
    ) -> torch.Tensor:
        """Weighted cross-entropy over K+1 classes.

        Args:
            class_logits: [U, Q, K+1] for U images / frames / videos.
            labels: U tensors [M_u]; matching: U assignments.
        """
        units, num_queries, num_logits = class_logits.shape
        if num_logits != self.num_classes + 1:
            raise ValueError(f"class logits have {num_logits} entries, expected {self.num_classes + 1}")
        target = torch.full(
            (units, num_queries), self.num_classes, dtype=torch.int64, device=class_logits.device
        )
        for u, m in enumerate(matching):
            target[u, m.queries.to(target.device)] = labels[u][m.targets].to(target.device)
        # [U, Q, K+1] -> [U*Q, K+1]: the same weighted mean as the reference's [U, K+1, Q] layout.
        return F.cross_entropy(class_logits.float().flatten(0, 1), target.flatten(), weight=self.empty_weight)

    def mask_losses(
        self,
        pred_masks: torch.Tensor,
        target_masks: torch.Tensor,
        num_masks: float,
        num_points: int,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Point-sampled BCE and dice of matched pairs.

        Args:
            pred_masks: [R, h, w] logits of the matched queries.
            target_masks: [R, H, W] bool ground truth (same aspect ratio, any resolution).
            num_masks: normaliser; num_points: P.

        Returns:
            (loss_mask, loss_dice) scalars.
        """
        if pred_masks.shape[0] != target_masks.shape[0]:
            raise ValueError(f"{pred_masks.shape[0]} predicted masks for {target_masks.shape[0]} targets")
        check_same_grid(tuple(pred_masks.shape[-2:]), tuple(target_masks.shape[-2:]))
        if pred_masks.shape[0] == 0:
            zero = pred_masks.sum() * 0.0  # keeps the graph connected when nothing is matched
            return zero, zero.clone()
        logits = pred_masks.float()[:, None]  # [R, 1, h, w]
        with torch.no_grad():
            coords = uncertain_point_coords_with_randomness(
                logits,
                logit_uncertainty,
                num_points,
                self.oversample_ratio,
                self.importance_sample_ratio,
                generator=generator,
            )
            point_labels = sample_binary_masks(target_masks.to(logits.device), coords)  # [R, P]
        point_logits = point_sample(logits, coords)[:, 0]  # [R, P]
        return (
            sigmoid_bce_point_loss(point_logits, point_labels, num_masks),
            dice_point_loss(point_logits, point_labels, num_masks),
        )

    def _layer_terms(
        self,
        class_logits: torch.Tensor,
        labels: Sequence[torch.Tensor],
        matching: Sequence[MatchIndices],
        pred_masks: torch.Tensor,
        target_masks: torch.Tensor,
        num_masks: float,
        num_points: int,
        generator: torch.Generator | None,
    ) -> dict[str, torch.Tensor]:
        with torch.autocast(device_type=class_logits.device.type, enabled=False):
            loss_ce = self.classification_loss(class_logits, labels, matching)
            loss_mask, loss_dice = self.mask_losses(
                pred_masks, target_masks, num_masks, num_points, generator
            )
        return {"loss_ce": loss_ce, "loss_mask": loss_mask, "loss_dice": loss_dice}

    def _assemble(
        self, layers: list[dict[str, torch.Tensor]], matching: list[MatchIndices], num_masks: float
    ) -> LossOutput:
        terms: dict[str, torch.Tensor] = {}
        weights: dict[str, float] = {}
        for i, layer in enumerate(layers):
            suffix = "" if i == 0 else f"_aux{i - 1}"
            for name, value in layer.items():
                terms[name + suffix] = value
                weights[name + suffix] = self.weights[name]
        total = torch.stack([terms[k] * weights[k] for k in terms]).sum()
        return LossOutput(total=total, terms=terms, weights=weights, matching=matching, num_masks=num_masks)


def _check_targets(batch: int, frames: int, targets: Sequence[ClipTargets]) -> None:
    if len(targets) != batch:
        raise ValueError(f"{len(targets)} target clips for a batch of {batch}")
    for b, clip in enumerate(targets):
        if clip.masks.dim() != 4 or clip.masks.shape[1] != frames:
            raise ValueError(
                f"clip {b}: target masks {tuple(clip.masks.shape)}, expected [M, {frames}, H, W]"
            )
        if clip.masks.dtype != torch.bool:
            raise ValueError(f"clip {b}: target masks must be bool, got {clip.masks.dtype}")
