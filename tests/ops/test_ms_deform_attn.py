"""Multi-scale deformable attention: the grid_sample core against an explicit bilinear reference.

The reference below samples with the four corner weights written out (zero outside the map), in
float64 NumPy, independently of ``F.grid_sample``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidpan.ops import ms_deform_attn as msda
from vidpan.ops.ms_deform_attn import MSDeformAttn, compute_dtype, ms_deform_attn_core, softmax_short_rows


@pytest.fixture(params=msda.IMPLS, autouse=True)
def impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with both implementations (the gather fast path and grid_sample)."""
    monkeypatch.setattr(msda, "IMPL", request.param)
    return str(request.param)


def explicit_bilinear_attention(
    value: np.ndarray,
    spatial_shapes: list[tuple[int, int]],
    locations: np.ndarray,
    weights: np.ndarray,
) -> np.ndarray:
    """value [B, S, M, D]; locations [B, Q, M, L, P, 2] (x, y in [0, 1]); weights [B, Q, M, L, P]."""
    b, _, m, d = value.shape
    q = locations.shape[1]
    out = np.zeros((b, q, m, d), dtype=np.float64)
    start = 0
    for level, (h, w) in enumerate(spatial_shapes):
        v = value[:, start : start + h * w].reshape(b, h, w, m, d)
        start += h * w
        # align_corners=False: normalised u maps to pixel u * size - 0.5.
        px = locations[:, :, :, level, :, 0] * w - 0.5  # [B, Q, M, P]
        py = locations[:, :, :, level, :, 1] * h - 0.5
        x0 = np.floor(px).astype(np.int64)
        y0 = np.floor(py).astype(np.int64)
        fx = px - x0
        fy = py - y0
        corners = (
            (x0, y0, (1 - fx) * (1 - fy)),
            (x0 + 1, y0, fx * (1 - fy)),
            (x0, y0 + 1, (1 - fx) * fy),
            (x0 + 1, y0 + 1, fx * fy),
        )
        bi = np.arange(b)[:, None, None, None]
        mi = np.arange(m)[None, None, :, None]
        for cx, cy, cw in corners:
            inside = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
            sample = v[bi, np.clip(cy, 0, h - 1), np.clip(cx, 0, w - 1), mi]  # [B, Q, M, P, D]
            coef = cw * inside * weights[:, :, :, level]  # [B, Q, M, P]
            out += (sample * coef[..., None]).sum(3)
    return out.reshape(b, q, m * d)


def _random_inputs(
    generator: torch.Generator,
    *,
    b: int,
    q: int,
    m: int,
    d: int,
    shapes: list[tuple[int, int]],
    p: int,
    dtype: torch.dtype = torch.float32,
    spread: float = 0.4,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    s = sum(h * w for h, w in shapes)
    value = torch.randn(b, s, m, d, generator=generator, dtype=dtype)
    # Locations from -spread to 1 + spread: many points fall outside the map on purpose.
    loc = torch.rand(b, q, m, len(shapes), p, 2, generator=generator, dtype=dtype) * (1 + 2 * spread) - spread
    logits = torch.randn(b, q, m, len(shapes) * p, generator=generator, dtype=dtype)
    weights = logits.softmax(-1).view(b, q, m, len(shapes), p)
    return value, loc, weights


@pytest.mark.parametrize(
    ("shapes", "m", "p"),
    [
        ([(5, 7)], 1, 1),
        ([(6, 8)], 2, 4),
        ([(8, 6), (4, 3), (2, 2)], 3, 4),
        ([(7, 5), (3, 9), (1, 1), (2, 4)], 4, 2),
    ],
)
def test_core_matches_explicit_bilinear(shapes: list[tuple[int, int]], m: int, p: int) -> None:
    g = torch.Generator().manual_seed(len(shapes) * 10 + m)
    value, loc, weights = _random_inputs(g, b=2, q=11, m=m, d=5, shapes=shapes, p=p, dtype=torch.float64)
    expected = explicit_bilinear_attention(value.numpy(), shapes, loc.numpy(), weights.numpy())
    got = ms_deform_attn_core(value, shapes, loc, weights)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-12)
    # float32 path agrees to float32 precision.
    got32 = ms_deform_attn_core(value.float(), shapes, loc.float(), weights.float())
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), expected, rtol=0, atol=1e-5)


def test_core_points_far_outside_read_zero() -> None:
    shapes = [(4, 4)]
    value = torch.randn(1, 16, 1, 3)
    loc = torch.tensor([[-0.3, 0.5], [1.2, 0.5], [0.5, -0.2], [0.5, 1.3]]).view(1, 4, 1, 1, 1, 2)
    weights = torch.ones(1, 4, 1, 1, 1)
    out = ms_deform_attn_core(value, shapes, loc, weights)
    assert torch.count_nonzero(out) == 0


def test_core_half_precision_computes_in_float32() -> None:
    g = torch.Generator().manual_seed(3)
    shapes = [(4, 6), (2, 3)]
    value, loc, weights = _random_inputs(g, b=1, q=5, m=2, d=4, shapes=shapes, p=2)
    out = ms_deform_attn_core(value.to(torch.bfloat16), shapes, loc, weights)
    assert out.dtype == torch.float32
    assert compute_dtype(torch.float16) == torch.float32
    assert compute_dtype(torch.float64) == torch.float64
    ref = ms_deform_attn_core(value.to(torch.bfloat16).float(), shapes, loc, weights)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_core_gradcheck_float64() -> None:
    g = torch.Generator().manual_seed(7)
    shapes = [(3, 4), (2, 2)]
    # Keep points inside so that finite differences do not straddle the map border.
    value, loc, weights = _random_inputs(
        g, b=1, q=3, m=2, d=2, shapes=shapes, p=2, dtype=torch.float64, spread=0
    )
    loc = loc * 0.8 + 0.1
    value.requires_grad_(True)
    loc.requires_grad_(True)
    weights.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda v, x, a: ms_deform_attn_core(v, shapes, x, a), (value, loc, weights), eps=1e-6, atol=1e-6
    )


def test_module_gradcheck_float64() -> None:
    torch.manual_seed(0)
    shapes = [(3, 3), (2, 1)]
    attn = MSDeformAttn(dim=8, num_levels=2, num_heads=2, num_points=2, value_ratio=0.5).double()
    for param in attn.parameters():
        param.data.normal_(0, 0.3)
    query = torch.randn(1, 4, 8, dtype=torch.float64, requires_grad=True)
    value = torch.randn(1, 11, 8, dtype=torch.float64, requires_grad=True)
    ref = torch.rand(1, 4, 2, 2, dtype=torch.float64) * 0.6 + 0.2
    assert torch.autograd.gradcheck(
        lambda qq, vv: attn(qq, ref, vv, shapes), (query, value), eps=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("value_ratio", [1.0, 0.5])
def test_module_value_ratio_shapes(value_ratio: float) -> None:
    dim, heads, levels, points = 48, 4, 3, 2
    attn = MSDeformAttn(
        dim=dim, num_levels=levels, num_heads=heads, num_points=points, value_ratio=value_ratio
    )
    value_dim = int(dim * value_ratio)
    assert attn.value_proj.weight.shape == (value_dim, dim)
    assert attn.output_proj.weight.shape == (dim, value_dim)
    assert attn.sampling_offsets.weight.shape == (heads * levels * points * 2, dim)
    assert attn.attention_weights.weight.shape == (heads * levels * points, dim)
    shapes = [(6, 5), (3, 3), (2, 1)]
    s = sum(h * w for h, w in shapes)
    out = attn(torch.randn(2, 7, dim), torch.rand(2, 7, levels, 2), torch.randn(2, s, dim), shapes)
    assert out.shape == (2, 7, dim)
    assert out.dtype == torch.float32


def test_module_matches_explicit_reference() -> None:
    """The module's offsets are in level pixels and its weights a softmax over L * P."""
    torch.manual_seed(1)
    dim, heads, points = 16, 2, 3
    shapes = [(5, 4), (2, 3)]
    attn = MSDeformAttn(dim=dim, num_levels=2, num_heads=heads, num_points=points, value_ratio=0.5).double()
    for param in attn.parameters():
        param.data.normal_(0, 0.5)
    query = torch.randn(2, 6, dim, dtype=torch.float64)
    value_in = torch.randn(2, 26, dim, dtype=torch.float64)
    ref = torch.rand(2, 6, 2, 2, dtype=torch.float64)
    out = attn(query, ref, value_in, shapes)

    value = attn.value_proj(value_in).view(2, 26, heads, -1)
    offsets = attn.sampling_offsets(query).view(2, 6, heads, 2, points, 2)
    wh = torch.tensor([[w, h] for h, w in shapes], dtype=torch.float64)
    loc = ref[:, :, None, :, None, :] + offsets / wh[None, None, None, :, None, :]
    weights = (
        attn.attention_weights(query).view(2, 6, heads, 2 * points).softmax(-1).view(2, 6, heads, 2, points)
    )
    sampled = explicit_bilinear_attention(
        value.detach().numpy(), shapes, loc.detach().numpy(), weights.detach().numpy()
    )
    expected = attn.output_proj(torch.from_numpy(sampled))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


def test_module_rejects_inconsistent_shapes() -> None:
    attn = MSDeformAttn(dim=8, num_levels=1, num_heads=2, num_points=1)
    with pytest.raises(ValueError, match="do not cover"):
        attn(torch.randn(1, 2, 8), torch.rand(1, 2, 1, 2), torch.randn(1, 5, 8), [(2, 3)])
    with pytest.raises(ValueError, match="divisible"):
        MSDeformAttn(dim=10, num_levels=1, num_heads=4, num_points=1, value_ratio=1.0)


def test_module_padding_mask_zeroes_values() -> None:
    torch.manual_seed(2)
    attn = MSDeformAttn(dim=8, num_levels=1, num_heads=2, num_points=2)
    value = torch.randn(1, 6, 8)
    mask = torch.ones(1, 6, dtype=torch.bool)
    out = attn(torch.randn(1, 3, 8), torch.rand(1, 3, 1, 2), value, [(2, 3)], padding_mask=mask)
    # Every sample reads zero, so the output is the output projection's bias.
    torch.testing.assert_close(out, attn.output_proj.bias.expand(1, 3, 8))


def test_gather_equals_grid_sample_on_pixel_decoder_shapes() -> None:
    """Both implementations agree on a realistic multi-level case incl. points far outside."""
    torch.manual_seed(0)
    shapes = [(6, 8), (12, 16), (24, 32)]
    s = sum(h * w for h, w in shapes)
    value = torch.randn(2, s, 4, 8)
    loc = torch.rand(2, 50, 4, 3, 4, 2) * 1.6 - 0.3
    weights = torch.rand(2, 50, 4, 3, 4).flatten(-2).softmax(-1).view(2, 50, 4, 3, 4)
    a = msda.ms_deform_attn_core_gather(value, shapes, loc, weights)
    b = msda.ms_deform_attn_core_grid_sample(value, shapes, loc, weights)
    assert (a - b).abs().max() < 1e-5


@pytest.mark.parametrize(("groups", "k"), [(8, 12), (6, 4), (1, 3)])
def test_softmax_short_rows_equals_softmax_over_groups(groups: int, k: int) -> None:
    torch.manual_seed(0)
    wide = torch.randn(2, 37, 5 + groups * k) * 4
    x = wide[..., 5:]  # a strided slice, as the fused projection's logits are
    out = softmax_short_rows(x, k)
    expected = x.reshape(2 * 37, groups, k).softmax(-1)
    assert out.shape == (2 * 37, groups, k)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.sum(-1), torch.ones(2 * 37, groups), rtol=0, atol=1e-6)
