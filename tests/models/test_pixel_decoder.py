"""Tests of the Mask2Former pixel decoder (vidpan.models.pixel_decoder).

Parity: the DVIS++ fixture's pixel-decoder weights applied to its stored backbone outputs of
window 0 / frame 0 must reproduce the stored multi-scale features and mask features. All sizes
come from the fixture's meta.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from vidpan.models.pixel_decoder import MSDeformAttnPixelDecoder, encoder_reference_points
from vidpan.structures import FeaturePyramid

ATOL = 1e-4
PREFIX = "sem_seg_head.pixel_decoder."


def strip_prefix(weights: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Reference checkpoint keys -> ours: our parameter names equal the reference's."""
    return {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}


def build_from_meta(meta: dict[str, Any]) -> MSDeformAttnPixelDecoder:
    cfg = meta["config"]
    pd = cfg["pixel_decoder"]
    assert pd["encoder_in_features"] == ["res3", "res4", "res5"]
    assert pd["common_stride"] == 4
    return MSDeformAttnPixelDecoder(
        in_channels=[cfg["vit"]["embed_dim"]] * 4,
        conv_dim=pd["convs_dim"],
        mask_dim=pd["mask_dim"],
        num_layers=pd["transformer_enc_layers"],
        num_heads=pd["encoder_nheads"],
        num_points=pd["encoder_n_points"],
        dim_feedforward=pd["encoder_dim_feedforward"],
        norm_groups=int(pd["norm"].removeprefix("GN(").removesuffix(")")),
    )


def test_pixel_decoder_parity(dvis_fixture: Path) -> None:
    meta = json.loads((dvis_fixture / "meta.json").read_text())
    weights = load_file(dvis_fixture / "weights.safetensors")
    outputs = load_file(dvis_fixture / "outputs.safetensors")
    model = build_from_meta(meta).eval()
    model.load_state_dict(strip_prefix(weights, PREFIX), strict=True)
    pyramid = FeaturePyramid(*(outputs[f"backbone.frame0.res{i}"] for i in range(2, 6)))
    with torch.no_grad():
        out = model(pyramid)
    assert len(out.multi_scale_features) == 3
    diffs = {}
    for i, ours in enumerate(out.multi_scale_features):
        ref = outputs[f"pixel_decoder.frame0.ms{i}"]
        assert ours.shape == ref.shape
        diffs[f"ms{i}"] = (ours - ref).abs().max().item()
    ref_mf = outputs["segmenter.w0.mask_features"][:1]
    assert out.mask_features.shape == ref_mf.shape
    diffs["mask_features[0]"] = (out.mask_features - ref_mf).abs().max().item()
    print("pixel decoder max abs diffs:", diffs)
    for name, diff in diffs.items():
        assert diff <= ATOL, f"{name}: max abs diff {diff:.3g} > {ATOL}"


def _tiny(in_channels: tuple[int, int, int, int] = (8, 12, 16, 20)) -> MSDeformAttnPixelDecoder:
    return MSDeformAttnPixelDecoder(
        in_channels=in_channels,
        conv_dim=16,
        mask_dim=12,
        num_layers=2,
        num_heads=4,
        num_points=2,
        dim_feedforward=32,
        norm_groups=4,
    )


def _pyramid(n: int, h: int, w: int, channels: tuple[int, int, int, int]) -> FeaturePyramid:
    g = torch.Generator().manual_seed(0)
    maps = [
        torch.randn(n, c, h // s, w // s, generator=g) for c, s in zip(channels, (4, 8, 16, 32), strict=True)
    ]
    return FeaturePyramid(*maps)


@pytest.mark.parametrize(("h", "w"), [(32, 32), (64, 160), (96, 64)])
def test_pixel_decoder_shapes(h: int, w: int) -> None:
    channels = (8, 12, 16, 20)
    model = _tiny(channels).eval()
    with torch.no_grad():
        out = model(_pyramid(2, h, w, channels))
    assert out.mask_features.shape == (2, 12, h // 4, w // 4)
    assert [tuple(f.shape) for f in out.multi_scale_features] == [
        (2, 16, h // 32, w // 32),
        (2, 16, h // 16, w // 16),
        (2, 16, h // 8, w // 8),
    ]


def test_pixel_decoder_frames_are_independent() -> None:
    channels = (8, 12, 16, 20)
    model = _tiny(channels).eval()
    pyramid = _pyramid(3, 64, 96, channels)
    with torch.no_grad():
        together = model(pyramid)
        alone = model(FeaturePyramid(*(x[1:2] for x in pyramid.levels())))
    torch.testing.assert_close(together.mask_features[1:2], alone.mask_features, atol=1e-5, rtol=0)


def test_pixel_decoder_runs_in_float32_under_autocast() -> None:
    channels = (8, 12, 16, 20)
    model = _tiny(channels).eval()
    pyramid = _pyramid(1, 64, 64, channels)
    half = FeaturePyramid(*(x.bfloat16() for x in pyramid.levels()))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(half)
    assert out.mask_features.dtype == torch.float32
    assert all(f.dtype == torch.float32 for f in out.multi_scale_features)


def test_encoder_reference_points_are_pixel_centres() -> None:
    ref = encoder_reference_points([(1, 2), (2, 3)], torch.device("cpu"))
    assert ref.shape == (1, 2 + 6, 2, 2)
    expected = torch.tensor(
        [[0.25, 0.5], [0.75, 0.5]] + [[x / 6, y / 4] for y in (1, 3) for x in (1, 3, 5)]  # (x, y), row-major
    )
    torch.testing.assert_close(ref[0, :, 0], expected)
    torch.testing.assert_close(ref[0, :, 1], expected)  # same point on every level


def test_pixel_decoder_rejects_wrong_level_count() -> None:
    with pytest.raises(ValueError, match=r"res2\.\.res5"):
        MSDeformAttnPixelDecoder(in_channels=(8, 8, 8), conv_dim=16, mask_dim=16, norm_groups=4)
