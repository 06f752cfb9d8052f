"""Tests of the Segmenter composition (vidpan.models.segmenter).

``test_segmenter_parity`` builds the segmenter from the DVIS++ fixture's meta.json with a stub
backbone that checks it receives the normalised frame and returns the fixture's stored backbone
outputs (frame 0; the ViT + adapter is tested elsewhere), loads the fixture weights and compares
the frame-0 outputs. The other tests use a small learnable dummy backbone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from vidpan.config import DecoderConfig, ModelConfig, PixelDecoderConfig, ViTConfig
from vidpan.errors import InputError
from vidpan.models.segmenter import Segmenter, build_segmenter
from vidpan.structures import FeaturePyramid

ATOL = 1e-4

# DVIS++ checkpoint prefix -> Segmenter attribute (the full model adds "segmenter." in front).
RENAMES = {"sem_seg_head.pixel_decoder.": "pixel_decoder.", "sem_seg_head.predictor.": "decoder."}


def convert_head_keys(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in weights.items():
        for old, new in RENAMES.items():
            if key.startswith(old):
                out[new + key[len(old) :]] = value
    return out


def config_from_meta(meta: dict[str, Any]) -> ModelConfig:
    cfg = meta["config"]
    pd, dec = cfg["pixel_decoder"], cfg["decoder"]
    return ModelConfig(
        vit=ViTConfig(embed_dim=cfg["vit"]["embed_dim"]),
        pixel_decoder=PixelDecoderConfig(
            conv_dim=pd["convs_dim"],
            mask_dim=pd["mask_dim"],
            num_layers=pd["transformer_enc_layers"],
            num_heads=pd["encoder_nheads"],
            num_points=pd["encoder_n_points"],
            dim_feedforward=pd["encoder_dim_feedforward"],
            norm_groups=int(pd["norm"].removeprefix("GN(").removesuffix(")")),
        ),
        decoder=DecoderConfig(
            hidden_dim=dec["hidden_dim"],
            num_heads=dec["nheads"],
            dim_feedforward=dec["dim_feedforward"],
            num_layers=dec["n_transformer_layers"],
            num_queries=dec["num_queries"],
            reid_hidden_dim=dec["reid_hidden_dim"],
            reid_layers=dec["num_reid_head_layers"],
        ),
        num_classes=dec["num_classes"],
        pixel_mean=tuple(cfg["pixel_mean"]),
        pixel_std=tuple(cfg["pixel_std"]),
        size_divisibility=cfg["adapter"]["size_divisibility"],
    )


class StoredBackbone(nn.Module):
    """Checks its input against the expected normalised frame and returns stored features."""

    def __init__(self, expected_input: torch.Tensor, pyramid: FeaturePyramid) -> None:
        super().__init__()
        self.expected_input = expected_input
        self.pyramid = pyramid
        self.calls = 0

    def forward(self, x: torch.Tensor) -> FeaturePyramid:
        torch.testing.assert_close(x, self.expected_input, atol=1e-6, rtol=0)
        self.calls += 1
        return self.pyramid


def test_segmenter_parity(dvis_fixture: Path) -> None:
    meta = json.loads((dvis_fixture / "meta.json").read_text())
    outputs = load_file(dvis_fixture / "outputs.safetensors")
    frames = load_file(dvis_fixture / "inputs.safetensors")[meta["input"]["key"]]
    mean = torch.tensor(meta["config"]["pixel_mean"]).view(1, 3, 1, 1)
    std = torch.tensor(meta["config"]["pixel_std"]).view(1, 3, 1, 1)
    expected_input = (frames[:1].float() - mean) / std
    pyramid = FeaturePyramid(*(outputs[f"backbone.frame0.res{i}"] for i in range(2, 6)))
    backbone = StoredBackbone(expected_input, pyramid)

    model = build_segmenter(config_from_meta(meta), backbone).eval()
    model.load_state_dict(convert_head_keys(load_file(dvis_fixture / "weights.safetensors")), strict=True)
    with torch.no_grad():
        out = model(frames[:1])
    assert backbone.calls == 1
    assert out.image_size == (meta["input"]["height"], meta["input"]["width"])
    pairs = {
        "mask_features": (out.mask_features, outputs["segmenter.w0.mask_features"][:1]),
        "pred_logits": (out.class_logits, outputs["segmenter.w0.pred_logits"][0, :1]),
        "pred_masks": (out.mask_logits, outputs["segmenter.w0.pred_masks"][0, :, :1].transpose(0, 1)),
        "pred_embds": (out.embeds, outputs["segmenter.w0.pred_embds"][0, :, :1].permute(1, 2, 0)),
        "pred_embds_without_norm": (
            out.embeds_unnormed,
            outputs["segmenter.w0.pred_embds_without_norm"][0, :, :1].permute(1, 2, 0),
        ),
    }
    diffs = {}
    for name, (ours, ref) in pairs.items():
        assert ours.shape == ref.shape, name
        diffs[name] = (ours - ref).abs().max().item()
    print("segmenter (stored backbone features) frame-0 max abs diffs:", diffs)
    for name, diff in diffs.items():
        assert diff <= ATOL, f"{name}: max abs diff {diff:.3g} > {ATOL}"


class DummyBackbone(nn.Module):
    """Average pooling to strides 4..32 plus a learnable 1x1 conv per level; records its input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.proj = nn.ModuleList(nn.Conv2d(3, channels, 1) for _ in range(4))
        self.last_input: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> FeaturePyramid:
        self.last_input = x
        maps = [proj(F.avg_pool2d(x, s)) for proj, s in zip(self.proj, (4, 8, 16, 32), strict=True)]
        return FeaturePyramid(*maps)


def _tiny_config(size_divisibility: int = 32) -> ModelConfig:
    return ModelConfig(
        vit=ViTConfig(embed_dim=8),
        pixel_decoder=PixelDecoderConfig(
            conv_dim=16,
            mask_dim=12,
            num_layers=1,
            num_heads=2,
            num_points=2,
            dim_feedforward=32,
            norm_groups=4,
        ),
        decoder=DecoderConfig(
            hidden_dim=16, num_heads=2, dim_feedforward=32, num_layers=3, num_queries=4, reid_hidden_dim=8
        ),
        num_classes=3,
        num_things=2,
        size_divisibility=size_divisibility,
    )


def _tiny_segmenter(size_divisibility: int = 32) -> Segmenter:
    torch.manual_seed(0)
    return build_segmenter(_tiny_config(size_divisibility), DummyBackbone(8))


@pytest.mark.parametrize(("h", "w"), [(1, 1), (33, 65), (96, 128), (50, 31)])
def test_segmenter_accepts_any_size(h: int, w: int) -> None:
    model = _tiny_segmenter().eval()
    images = torch.randint(0, 256, (2, 3, h, w), dtype=torch.uint8)
    with torch.no_grad():
        out = model(images)
    hp, wp = -(-h // 32) * 32, -(-w // 32) * 32
    assert out.image_size == (h, w)
    assert out.mask_logits.shape == (2, 4, hp // 4, wp // 4)
    assert out.mask_features.shape == (2, 12, hp // 4, wp // 4)
    assert out.class_logits.shape == (2, 4, 4)
    assert out.embeds.shape == (2, 4, 32)
    assert len(out.aux) == 3
    seen = model.backbone.last_input
    assert isinstance(seen, torch.Tensor) and seen.shape == (2, 3, hp, wp)
    expected = (images.float() - model.pixel_mean) / model.pixel_std
    torch.testing.assert_close(seen[..., :h, :w], expected)
    # Padding is zero after normalisation (detectron2 ImageList pads the normalised tensor).
    assert not seen[..., h:, :].any() and not seen[..., :, w:].any()


def test_segmenter_uint8_and_float_agree() -> None:
    model = _tiny_segmenter().eval()
    images = torch.randint(0, 256, (1, 3, 40, 70), dtype=torch.uint8)
    with torch.no_grad():
        a = model(images)
        b = model(images.float())
    torch.testing.assert_close(a.mask_logits, b.mask_logits, atol=0, rtol=0)


def test_segmenter_without_size_divisibility_does_not_pad() -> None:
    model = _tiny_segmenter(size_divisibility=0).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 96))
    assert model.backbone.last_input is not None and model.backbone.last_input.shape == (1, 3, 64, 96)
    assert out.mask_logits.shape[-2:] == (16, 24)


@pytest.mark.parametrize(
    "images",
    [
        torch.zeros(3, 32, 32),
        torch.zeros(1, 4, 32, 32),
        torch.zeros(1, 3, 32, 32, dtype=torch.int64),
        torch.zeros(0, 3, 32, 32),
    ],
    ids=["3d", "4-channels", "int64", "empty"],
)
def test_segmenter_rejects_bad_images(images: torch.Tensor) -> None:
    with pytest.raises(InputError, match="images"):
        _tiny_segmenter()(images)


def test_segmenter_normalisation_buffers_are_not_checkpointed() -> None:
    keys = _tiny_segmenter().state_dict().keys()
    assert not any("pixel_mean" in k or "pixel_std" in k for k in keys)
    assert any(k.startswith("pixel_decoder.transformer.encoder.layers.0.self_attn.") for k in keys)
    assert any(k.startswith("decoder.transformer_cross_attention_layers.") for k in keys)


def test_segmenter_training_step_reduces_loss() -> None:
    model = _tiny_segmenter().train()
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8, generator=g)
    target_cls = torch.randint(0, 4, (2, 4), generator=g)
    target_masks = (torch.rand(2, 4, 16, 16, generator=g) > 0.5).float()
    target_embeds = torch.randn(2, 4, 32, generator=g)

    def loss_fn() -> torch.Tensor:
        out = model(images)
        loss = F.mse_loss(out.embeds, target_embeds)
        predictions = [(a.class_logits, a.mask_logits) for a in out.aux] + [
            (out.class_logits, out.mask_logits)
        ]
        for class_logits, mask_logits in predictions:
            loss = loss + F.cross_entropy(class_logits.flatten(0, 1), target_cls.flatten())
            loss = loss + F.binary_cross_entropy_with_logits(mask_logits, target_masks)
        return loss

    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(25):
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        if step == 1:
            # Not at step 0: the deformable-attention offset / weight projections start at zero,
            # so nothing upstream of them (e.g. the level embedding) gets a gradient until
            # they have moved once.
            no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
            assert not no_grad, f"parameters without gradient: {no_grad}"
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_segmenter_runs_under_bf16_autocast() -> None:
    model = _tiny_segmenter().eval()
    images = torch.randint(0, 256, (2, 3, 70, 90), dtype=torch.uint8)
    with torch.no_grad():
        ref = model(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(images)
    assert out.mask_features.dtype == torch.float32  # the pixel decoder stays in float32
    assert torch.isfinite(out.mask_logits.float()).all()
    # bf16 has ~3 significant digits; this only guards against a broken low-precision path.
    assert (out.mask_logits.float() - ref.mask_logits).abs().max() < 0.1 * ref.mask_logits.abs().max() + 0.05
