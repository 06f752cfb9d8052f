"""Point sampling: bilinear semantics, the boolean-mask sampler and the importance sampler."""

from __future__ import annotations

import pytest
import torch

from vidpan.ops.point_sample import (
    logit_uncertainty,
    point_sample,
    rand_points,
    sample_binary_masks,
    uncertain_point_coords_with_randomness,
)


def _bilinear(grid: list[list[float]], x: float, y: float) -> float:
    """Hand-written bilinear read of a 2-D list at normalised (x, y), zero outside (align_corners=False)."""
    h, w = len(grid), len(grid[0])
    px, py = x * w - 0.5, y * h - 0.5
    x0, y0 = int(torch.floor(torch.tensor(px))), int(torch.floor(torch.tensor(py)))
    total = 0.0
    for xi, wx in ((x0, x0 + 1 - px), (x0 + 1, px - x0)):
        for yi, wy in ((y0, y0 + 1 - py), (y0 + 1, py - y0)):
            if 0 <= xi < w and 0 <= yi < h:
                total += wx * wy * grid[yi][xi]
    return total


def test_point_sample_matches_hand_computed_bilinear_values() -> None:
    grid = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]  # H=2, W=3
    feats = torch.tensor(grid)[None, None]
    points = [(0.5, 0.5), (0.25, 0.4), (1 / 6, 0.25), (0.05, 0.9), (0.999, 0.01), (0.7, 0.62)]
    coords = torch.tensor([points])
    out = point_sample(feats, coords)
    assert out.shape == (1, 1, len(points))
    # Pixel centres are read exactly; the centre of the map averages the two middle pixels.
    assert out[0, 0, 2].item() == pytest.approx(1.0)
    assert out[0, 0, 0].item() == pytest.approx(0.5 * (2.0 + 5.0))
    # (0.25, 0.4) -> pixel (0.25, 0.3): 0.75*0.7*1 + 0.25*0.7*2 + 0.75*0.3*4 + 0.25*0.3*5.
    assert out[0, 0, 1].item() == pytest.approx(0.525 + 0.35 + 0.9 + 0.375)
    for i, (x, y) in enumerate(points):
        assert out[0, 0, i].item() == pytest.approx(_bilinear(grid, x, y), abs=1e-6)


def test_point_sample_grid_form_and_channels() -> None:
    feats = torch.randn(2, 3, 5, 7)
    coords = torch.rand(2, 4, 6, 2)
    out = point_sample(feats, coords)
    assert out.shape == (2, 3, 4, 6)
    flat = point_sample(feats, coords.flatten(1, 2))
    torch.testing.assert_close(out.flatten(2), flat)


def test_sample_binary_masks_equals_point_sample_of_float_masks() -> None:
    g = torch.Generator().manual_seed(3)
    masks = torch.rand(5, 13, 9, generator=g) > 0.5
    # Points inside and slightly outside [0, 1] (zero padding), and exactly on pixel centres/edges.
    coords = torch.rand(5, 200, 2, generator=g) * 1.2 - 0.1
    coords[:, :9, 0] = (torch.arange(9) + 0.5) / 9
    coords[:, :9, 1] = torch.arange(9) / 13
    expected = point_sample(masks[:, None].float(), coords)[:, 0]
    # Exactly the reference's float sampling, whatever the chunking.
    for chunk_bytes in (1, 13 * 9 * 4 * 2, 2**30):
        got = sample_binary_masks(masks, coords, chunk_bytes=chunk_bytes)
        torch.testing.assert_close(got, expected, atol=0, rtol=0)
    assert sample_binary_masks(masks[:0], coords[:0]).shape == (0, 200)
    with pytest.raises(ValueError, match="bool"):
        sample_binary_masks(masks.float(), coords)


def test_rand_points_generator_reproducible_and_global_rng_stream() -> None:
    a = rand_points(2, 10, device=torch.device("cpu"), generator=torch.Generator().manual_seed(7))
    b = rand_points(2, 10, device=torch.device("cpu"), generator=torch.Generator().manual_seed(7))
    c = rand_points(2, 10, device=torch.device("cpu"), generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)
    # Without a generator the global RNG is used with the reference's call shape rand(N, P, 2).
    torch.manual_seed(11)
    d = rand_points(2, 10, device=torch.device("cpu"))
    torch.manual_seed(11)
    torch.testing.assert_close(d, torch.rand(2, 10, 2), rtol=0, atol=0)


def test_importance_sampler_picks_points_in_the_known_uncertain_region() -> None:
    # Logits 0 (most uncertain) on the left half, +-20 elsewhere.
    logits = torch.full((2, 1, 8, 16), 20.0)
    logits[1] = -20.0
    logits[:, :, :, :8] = 0.0
    coords = uncertain_point_coords_with_randomness(
        logits, logit_uncertainty, 40, 3.0, 0.75, generator=torch.Generator().manual_seed(5)
    )
    assert coords.shape == (2, 40, 2)
    # Importance points: where the interpolated logit is 0, i.e. left of the last zero column's centre.
    assert (coords[:, :30, 0] <= 7.5 / 16).all()
    # The uniform remainder is not confined to that region.
    assert (coords[:, 30:, 0] > 0.5).any()


def test_importance_sampler_keeps_the_top_uncertain_candidates() -> None:
    # A ramp with distinct |logit| everywhere (no ties): uncertain band around column 2.3.
    cols = torch.arange(12, dtype=torch.float32)
    rows = torch.arange(6, dtype=torch.float32)
    logits = (0.9 * (cols[None, :] - 2.3) + 0.017 * rows[:, None])[None, None].repeat(3, 1, 1, 1)
    logits[1] = -logits[1]
    num_points, oversample, ratio = 40, 3.0, 0.75
    coords = uncertain_point_coords_with_randomness(
        logits, logit_uncertainty, num_points, oversample, ratio, generator=torch.Generator().manual_seed(5)
    )
    num_uncertain = int(ratio * num_points)
    # Independent re-derivation from the same random stream.
    g = torch.Generator().manual_seed(5)
    candidates = torch.rand(3, int(num_points * oversample), 2, generator=g)
    uniform = torch.rand(3, num_points - num_uncertain, 2, generator=g)
    for r in range(3):
        values = torch.tensor([_bilinear(logits[r, 0].tolist(), x, y) for x, y in candidates[r].tolist()])
        order = torch.argsort(values.abs())[:num_uncertain]  # smallest |logit| first
        torch.testing.assert_close(coords[r, :num_uncertain], candidates[r, order], rtol=0, atol=0)
    torch.testing.assert_close(coords[:, num_uncertain:], uniform, rtol=0, atol=0)


def test_importance_sampler_limits_and_validation() -> None:
    logits = torch.randn(3, 1, 4, 4)
    all_uniform = uncertain_point_coords_with_randomness(
        logits, logit_uncertainty, 10, 1.0, 0.0, generator=torch.Generator().manual_seed(0)
    )
    g = torch.Generator().manual_seed(0)
    torch.rand(3, 10, 2, generator=g)  # the (unused) candidates are drawn first
    torch.testing.assert_close(all_uniform, torch.rand(3, 10, 2, generator=g), rtol=0, atol=0)
    all_uncertain = uncertain_point_coords_with_randomness(logits, logit_uncertainty, 10, 2.0, 1.0)
    assert all_uncertain.shape == (3, 10, 2)
    with pytest.raises(ValueError, match="oversample"):
        uncertain_point_coords_with_randomness(logits, logit_uncertainty, 10, 0.5, 0.5)
    with pytest.raises(ValueError, match="importance"):
        uncertain_point_coords_with_randomness(logits, logit_uncertainty, 10, 2.0, 1.5)
