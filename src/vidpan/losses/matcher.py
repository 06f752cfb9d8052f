"""Hungarian matching between predicted queries and ground-truth instances.

Follows Mask2Former's ``HungarianMatcher`` (``mask2former/modeling/matcher.py``) and DVIS++'s
``VideoHungarianMatcher`` / ``VideoHungarianMatcher_Consistent``
(``DVIS_Plus/mask2former_video/modeling/matcher.py``). The cost of giving ground truth j to query q:

    C[q, j] = w_mask * BCE(q, j) + w_class * (-softmax(logits_q)[label_j]) + w_dice * dice(q, j)

BCE and dice are measured on ``num_points`` uniformly random points shared by every mask of the
image (the ground truth is read at full resolution, the prediction at 1/4, at the same normalised
points). Costs are computed in float32 with autocast off and solved with
``scipy.optimize.linear_sum_assignment`` (the reference point-samples the logits in their AMP dtype
before casting; vidpan casts first).

Three granularities (one :class:`HungarianMatcher` serves all):

- :meth:`HungarianMatcher.match_frames`: every frame an independent image (segmenter, MinVIS).
- :meth:`HungarianMatcher.match_clip_consistent`: one assignment per clip (tracker): each instance is
  matched on the first frame where it appears, queries taken in earlier frames are blocked with a
  cost of 1e6, and the union of the assignments holds for every frame of the clip. "Appears" is
  read from the masks (DVIS++ reads track ids, which are never -1 for VPS, so it matches every
  instance on frame 0; ``match_on_first_visible_frame=False`` reproduces that).
- :meth:`HungarianMatcher.match_video`: video-level (refiner): the T frames of a mask are stacked
  into one (T*h, w) image and sampled with ``num_points * T`` points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from vidpan.ops.point_sample import point_sample, rand_points, sample_binary_masks
from vidpan.structures import ClipTargets

# Cost given to queries already matched in an earlier frame of the clip (DVIS++ value).
BLOCKED_QUERY_COST = 1e6


@dataclass(frozen=True)
class MatchIndices:
    """Assignment for one image / clip / video: ``queries[i]`` predicts ground truth ``targets[i]``."""

    queries: torch.Tensor  # [n] int64 (CPU)
    targets: torch.Tensor  # [n] int64 (CPU), indices into the ground-truth instances

    def __len__(self) -> int:
        return int(self.queries.numel())


def mask_bce_cost(pred_points: torch.Tensor, target_points: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of every prediction against every target.

    Args:
        pred_points: [Q, P] logits.
        target_points: [M, P] in [0, 1].

    Returns:
        [Q, M] float32.
    """
    pos = F.binary_cross_entropy_with_logits(pred_points, torch.ones_like(pred_points), reduction="none")
    neg = F.binary_cross_entropy_with_logits(pred_points, torch.zeros_like(pred_points), reduction="none")
    # BCE(x, t) = t * BCE(x, 1) + (1 - t) * BCE(x, 0), summed over points for every (q, j) pair.
    cost = pos @ target_points.T + neg @ (1.0 - target_points).T
    return cost / pred_points.shape[1]


def mask_dice_cost(pred_points: torch.Tensor, target_points: torch.Tensor) -> torch.Tensor:
    """Dice loss 1 - (2|p.t| + 1) / (|p| + |t| + 1) of every prediction against every target.

    Args:
        pred_points: [Q, P] logits (a sigmoid is applied).
        target_points: [M, P] in [0, 1].

    Returns:
        [Q, M] float32.
    """
    probs = pred_points.sigmoid()
    numerator = 2.0 * probs @ target_points.T
    denominator = probs.sum(-1)[:, None] + target_points.sum(-1)[None, :]
    return 1.0 - (numerator + 1.0) / (denominator + 1.0)


class NonFiniteCostError(FloatingPointError):
    """The matching cost holds NaN or inf: the predictions are not finite (training diverged).

    A :class:`FloatingPointError`, like the trainer's non-finite-loss check, which it precedes
    (matching runs before the loss); scipy would raise an opaque ``ValueError`` instead.
    """


def solve_assignment(cost: torch.Tensor) -> MatchIndices:
    """Minimum-cost assignment of a [Q, M] cost matrix (rows sorted, as scipy returns them).

    Raises NonFiniteCostError if the cost holds NaN or inf.
    """
    values = cost.detach().cpu().float().numpy()
    finite = np.isfinite(values)
    if not finite.all():
        raise NonFiniteCostError(
            f"the matching cost has {int(values.size - finite.sum())} non-finite entries of {values.size}: "
            "the predictions are NaN/inf (training diverged; lower solver.base_lr?)"
        )
    rows, cols = linear_sum_assignment(values)
    return MatchIndices(
        queries=torch.as_tensor(rows, dtype=torch.int64), targets=torch.as_tensor(cols, dtype=torch.int64)
    )


def _empty_match() -> MatchIndices:
    empty = torch.zeros(0, dtype=torch.int64)
    return MatchIndices(queries=empty, targets=empty.clone())


def check_same_grid(pred_hw: tuple[int, ...], target_hw: tuple[int, ...]) -> None:
    """Predictions and targets are compared at normalised points: the two grids must cover the same area."""
    (h, w), (th, tw) = pred_hw, target_hw
    if th * w != tw * h:
        raise ValueError(
            f"target masks {th}x{tw} and predicted masks {h}x{w} do not have the same aspect ratio; "
            "targets must be padded like the input (the prediction is at 1/4 of it)"
        )


class HungarianMatcher:
    """Bipartite matching with Mask2Former's class + point-sampled BCE + dice cost.

    Args:
        class_weight: weight of the class cost (Mask2Former / DVIS++ ``CLASS_WEIGHT`` 2.0).
        mask_weight: weight of the BCE cost (``MASK_WEIGHT`` 5.0).
        dice_weight: weight of the dice cost (``DICE_WEIGHT`` 5.0).
        num_points: points per image (``TRAIN_NUM_POINTS`` 12544); video-level matching uses
            ``num_points * T``.
    """

    def __init__(
        self,
        *,
        class_weight: float = 2.0,
        mask_weight: float = 5.0,
        dice_weight: float = 5.0,
        num_points: int = 12544,
    ) -> None:
        if class_weight == 0 and mask_weight == 0 and dice_weight == 0:
            raise ValueError("all matching cost weights are 0")
        self.class_weight = class_weight
        self.mask_weight = mask_weight
        self.dice_weight = dice_weight
        self.num_points = num_points

    @torch.no_grad()
    def cost_matrix(
        self,
        class_logits: torch.Tensor,
        mask_logits: torch.Tensor,
        labels: torch.Tensor,
        masks: torch.Tensor,
        *,
        num_points: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Matching cost of one image.

        Args:
            class_logits: [Q, K+1].
            mask_logits: [Q, h, w] (a video is passed as [Q, T*h, w]).
            labels: [M] int64 in [0, K).
            masks: [M, H, W] bool at input resolution ([M, T*H, W] for a video).
            num_points: points shared by all masks (default ``self.num_points``).
            generator: optional RNG for the points.

        Returns:
            [Q, M] float32 (on the device of the logits). M = 0 gives a [Q, 0] matrix and draws nothing.
        """
        num_queries, num_logits = class_logits.shape
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_logits - 1):
            raise ValueError(f"target labels must be in [0, {num_logits - 1}), got {labels.tolist()}")
        if masks.dtype != torch.bool:
            raise ValueError(f"target masks must be bool, got {masks.dtype}")
        check_same_grid(tuple(mask_logits.shape[-2:]), tuple(masks.shape[-2:]))
        if labels.numel() == 0:
            return class_logits.new_zeros(num_queries, 0, dtype=torch.float32)
        device = mask_logits.device
        with torch.autocast(device_type=device.type, enabled=False):
            probs = class_logits.float().softmax(-1)
            cost_class = -probs[:, labels.to(device)]  # [Q, M]
            # One set of points shared by every mask of the image (reference: rand(1, P, 2)).
            points = rand_points(1, num_points or self.num_points, device=device, generator=generator)
            pred = point_sample(mask_logits.float()[:, None], points.expand(num_queries, -1, -1))[:, 0]
            target = sample_binary_masks(masks.to(device), points.expand(masks.shape[0], -1, -1))
            cost_mask = mask_bce_cost(pred, target)
            cost_dice = mask_dice_cost(pred, target)
            return (
                self.mask_weight * cost_mask + self.class_weight * cost_class + self.dice_weight * cost_dice
            )

    @torch.no_grad()
    def match_frames(
        self,
        class_logits: torch.Tensor,
        mask_logits: torch.Tensor,
        labels: Sequence[torch.Tensor],
        masks: Sequence[torch.Tensor],
        *,
        generator: torch.Generator | None = None,
    ) -> list[MatchIndices]:
        """Independent matching of N images (frames folded into the batch).

        Args:
            class_logits: [N, Q, K+1].
            mask_logits: [N, Q, h, w].
            labels: N tensors [M_n] int64.
            masks: N tensors [M_n, H, W] bool.

        Returns:
            N assignments (min(Q, M_n) pairs each).
        """
        if not len(labels) == len(masks) == class_logits.shape[0] == mask_logits.shape[0]:
            raise ValueError("match_frames: predictions, labels and masks disagree on the number of images")
        out = []
        for n in range(class_logits.shape[0]):
            cost = self.cost_matrix(class_logits[n], mask_logits[n], labels[n], masks[n], generator=generator)
            out.append(solve_assignment(cost))
        return out

    @torch.no_grad()
    def match_clip_consistent(
        self,
        class_logits: torch.Tensor,
        mask_logits: torch.Tensor,
        targets: Sequence[ClipTargets],
        *,
        match_on_first_visible_frame: bool = True,
        generator: torch.Generator | None = None,
    ) -> list[MatchIndices]:
        """One assignment per clip, valid for all its frames (DVIS++ ``VideoHungarianMatcher_Consistent``).

        Each instance is matched on its key frame using that frame's predictions only; frames are
        visited in order and a query taken at an earlier key frame cannot be taken again.

        Args:
            class_logits: [B, T, Q, K+1].
            mask_logits: [B, T, Q, h, w].
            targets: B clips.
            match_on_first_visible_frame: key frame = first frame where the instance's mask is not
                empty (instances never visible: frame 0). DVIS++ decides visibility from track ids,
                which its VPS mapper never sets to -1, so for VPS it matches every instance on frame
                0; pass False to reproduce that.
            generator: optional RNG for the points (one draw per key frame, in frame order).

        Returns:
            B assignments; the pairs are grouped by key frame (in frame order), within a key frame
            sorted by query.
        """
        batch, frames, num_queries = class_logits.shape[:3]
        _check_batch(batch, frames, targets)
        out = []
        for b, clip in enumerate(targets):
            num_instances = clip.labels.numel()
            if num_instances > num_queries:
                raise ValueError(f"clip {b}: {num_instances} instances for {num_queries} queries")
            if match_on_first_visible_frame:
                present = clip.present  # [M, T]
                # argmax of a bool row = its first True; rows with no True give 0 (never visible).
                key_frame = present.to(torch.uint8).argmax(dim=1)
            else:
                key_frame = torch.zeros(num_instances, dtype=torch.int64)
            key_frame = key_frame.cpu()
            used_queries: list[int] = []
            queries: list[torch.Tensor] = []
            instances: list[torch.Tensor] = []
            for t in sorted(set(key_frame.tolist())):
                selected = torch.nonzero(key_frame == t).flatten()  # instances first seen at frame t
                cost = self.cost_matrix(
                    class_logits[b, t],
                    mask_logits[b, t],
                    clip.labels[selected],
                    clip.masks[selected, t],
                    generator=generator,
                ).cpu()
                if used_queries:
                    cost[used_queries, :] = BLOCKED_QUERY_COST
                match = solve_assignment(cost)
                used_queries += match.queries.tolist()
                queries.append(match.queries)
                instances.append(selected[match.targets])
            if queries:
                out.append(MatchIndices(queries=torch.cat(queries), targets=torch.cat(instances)))
            else:
                out.append(_empty_match())
        return out

    @torch.no_grad()
    def match_video(
        self,
        class_logits: torch.Tensor,
        mask_logits: torch.Tensor,
        targets: Sequence[ClipTargets],
        *,
        generator: torch.Generator | None = None,
    ) -> list[MatchIndices]:
        """Video-level matching (DVIS++ offline ``VideoHungarianMatcher`` on (t h) w masks).

        Args:
            class_logits: [B, Q, K+1] one class vector per video (see ``video_class_logits``).
            mask_logits: [B, T, Q, h, w].
            targets: B clips.

        Returns:
            B assignments; ``num_points * T`` points per video.
        """
        batch, frames = mask_logits.shape[:2]
        if class_logits.shape[0] != batch:
            raise ValueError(f"match_video: {class_logits.shape[0]} class vectors for {batch} videos")
        _check_batch(batch, frames, targets)
        out = []
        for b, clip in enumerate(targets):
            cost = self.cost_matrix(
                class_logits[b],
                stack_frames(mask_logits[b].transpose(0, 1)),
                clip.labels,
                stack_frames(clip.masks),
                num_points=self.num_points * frames,
                generator=generator,
            )
            out.append(solve_assignment(cost))
        return out


def stack_frames(masks: torch.Tensor) -> torch.Tensor:
    """Stack the frames of each mask vertically: [R, T, H, W] -> [R, T*H, W] (DVIS++ 'q t h w -> q (t h) w')."""
    r, t, h, w = masks.shape
    return masks.reshape(r, t * h, w)


def _check_batch(batch: int, frames: int, targets: Sequence[ClipTargets]) -> None:
    if len(targets) != batch:
        raise ValueError(f"{len(targets)} target clips for a batch of {batch}")
    for b, clip in enumerate(targets):
        if clip.masks.dim() != 4 or clip.masks.shape[1] != frames:
            raise ValueError(
                f"clip {b}: target masks {tuple(clip.masks.shape)}, expected [M, {frames}, H, W]"
            )
        if clip.labels.shape[0] != clip.masks.shape[0]:
            raise ValueError(f"clip {b}: {clip.labels.shape[0]} labels for {clip.masks.shape[0]} masks")


__all__ = [
    "BLOCKED_QUERY_COST",
    "HungarianMatcher",
    "MatchIndices",
    "check_same_grid",
    "mask_bce_cost",
    "mask_dice_cost",
    "solve_assignment",
    "stack_frames",
]
