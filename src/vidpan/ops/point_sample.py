"""Point sampling for the point-based mask losses (PointRend, as used by Mask2Former / DVIS++).

Semantics follow detectron2's ``projects/PointRend/point_rend/point_features.py``:

- :func:`point_sample` reads a map at normalised (x, y) points in [0, 1] with ``F.grid_sample``
  (bilinear, zero padding, ``align_corners=False``), so ``(j + 0.5) / W`` is the centre of pixel
  ``j`` and a map and an upsampled copy of it are read at the same physical location. That is why
  the losses can compare 1/4-resolution logits with full-resolution ground truth without resizing
  either: both are sampled at the same normalised points.
- :func:`uncertain_point_coords_with_randomness` draws ``oversample_ratio * P`` uniform points,
  keeps the ``importance_sample_ratio * P`` most uncertain ones and adds uniform points up to P.
  Uncertainty is measured on the *sampled* (interpolated) logits, not on the coarse map.
- :func:`sample_binary_masks` is ``point_sample(masks.float(), ...)`` for boolean masks, converting
  a few masks at a time so that a full-resolution volume (the refiner's ground truth is
  [M, T*H, W]) is never copied to float as a whole.

Randomness: every draw goes through :func:`rand_points`, which takes an optional
``torch.Generator``. With ``generator=None`` the global RNG of the target device is used and the
draws have the shapes and order of the reference (so, from the same RNG state on the same device,
the same points). With a generator, the points are drawn on the generator's device and moved to
the data's device; saving ``generator.get_state()`` in a checkpoint makes the losses resume
exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def rand_points(
    num: int, num_points: int, *, device: torch.device, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Uniform random (x, y) points in [0, 1): [num, num_points, 2] float32 on ``device``."""
    if generator is None:
        return torch.rand(num, num_points, 2, device=device)
    points = torch.rand(num, num_points, 2, generator=generator, device=generator.device)
    return points.to(device)


def point_sample(features: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinearly read ``features`` at normalised points.

    Args:
        features: [R, C, H, W].
        coords: [R, P, 2] or [R, Hg, Wg, 2] (x, y) in [0, 1]; points outside read zeros.

    Returns:
        [R, C, P] (or [R, C, Hg, Wg]) in the dtype of ``features``.
    """
    flat = coords.dim() == 3
    grid = coords.unsqueeze(2) if flat else coords  # [R, P, 2] -> [R, P, 1, 2]
    grid = 2.0 * grid.to(features.dtype) - 1.0
    out = F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.squeeze(3) if flat else out


def sample_binary_masks(
    masks: torch.Tensor, coords: torch.Tensor, *, chunk_bytes: int = 256 * 2**20
) -> torch.Tensor:
    """``point_sample(masks[:, None].float(), coords)[:, 0]`` for boolean masks, in bounded memory.

    The masks are converted to float32 a chunk at a time (at most ``chunk_bytes`` of float copy),
    so the result is exactly the reference's while a full-resolution volume such as the refiner's
    [M, T*H, W] ground truth is never copied to float as a whole.

    Args:
        masks: [R, H, W] bool.
        coords: [R, P, 2] (x, y) in [0, 1].

    Returns:
        [R, P] float32: the bilinear fraction of foreground around each point (zero padding).
    """
    if masks.dtype != torch.bool:
        raise ValueError(f"sample_binary_masks expects bool masks, got {masks.dtype}")
    r, h, w = masks.shape
    if r == 0:
        return coords.new_zeros(0, coords.shape[1], dtype=torch.float32)
    step = max(1, chunk_bytes // max(1, 4 * h * w))
    coords = coords.float()
    parts = [
        point_sample(masks[i : i + step, None].float(), coords[i : i + step])[:, 0] for i in range(0, r, step)
    ]
    return torch.cat(parts)


def logit_uncertainty(logits: torch.Tensor) -> torch.Tensor:
    """Mask2Former's ``calculate_uncertainty``: -|logit| (0 = on the decision boundary = most uncertain)."""
    return -logits.abs()


def uncertain_point_coords_with_randomness(
    logits: torch.Tensor,
    uncertainty_fn: Callable[[torch.Tensor], torch.Tensor],
    num_points: int,
    oversample_ratio: float,
    importance_sample_ratio: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Importance-sample points where ``uncertainty_fn`` of the interpolated logits is highest.

    Args:
        logits: [R, 1, H, W] mask logits (class-agnostic).
        uncertainty_fn: maps sampled logits [R, 1, P'] to uncertainties [R, 1, P'] (higher = more
            uncertain), e.g. :func:`logit_uncertainty`.
        num_points: P, points per mask.
        oversample_ratio: >= 1; int(P * oversample_ratio) candidates are drawn uniformly.
        importance_sample_ratio: in [0, 1]; int(ratio * P) points are the most uncertain
            candidates, the remaining ones are fresh uniform points.
        generator: optional RNG (see the module docstring).

    Returns:
        [R, P, 2] (x, y) coordinates in [0, 1] (float32): the uncertain points first, in decreasing
        uncertainty, then the uniform ones.
    """
    if oversample_ratio < 1:
        raise ValueError(f"oversample_ratio must be >= 1, got {oversample_ratio}")
    if not 0.0 <= importance_sample_ratio <= 1.0:
        raise ValueError(f"importance_sample_ratio must be in [0, 1], got {importance_sample_ratio}")
    num_masks = logits.shape[0]
    num_candidates = int(num_points * oversample_ratio)
    candidates = rand_points(num_masks, num_candidates, device=logits.device, generator=generator)
    uncertainty = uncertainty_fn(point_sample(logits, candidates))  # [R, 1, P']
    num_uncertain = int(importance_sample_ratio * num_points)
    num_random = num_points - num_uncertain
    top = torch.topk(uncertainty[:, 0, :], k=num_uncertain, dim=1).indices  # [R, num_uncertain]
    # [R, P', 2] -> [R, num_uncertain, 2]
    coords = candidates.gather(1, top.unsqueeze(-1).expand(-1, -1, 2))
    if num_random > 0:
        uniform = rand_points(num_masks, num_random, device=logits.device, generator=generator)
        coords = torch.cat([coords, uniform], dim=1)
    return coords
