"""Our DINOv2 ViT against ``transformers`` (same weights), the official ViT-g key list, the stage API.

Position-embedding interpolation (checked here and in the DVIS++ parity test):
* transformers 5.x ``Dinov2Model`` resizes with ``size=(h, w)`` and no offset, which differs from
  official DINOv2 (``scale_factor=((h+0.1)/M, (w+0.1)/M)``). Off the pretraining grid we therefore
  compare it with our ViT built with ``interpolate_offset=0.0``, and check that the official rule
  gives different (not just renamed) embeddings. The official offset rule itself is verified
  against the DVIS++ reference output in ``test_adapter.py`` (``vit_tokens_in``, a 6 × 8 grid
  resized from 37 × 37).
* ``Dinov2WithRegistersModel`` uses the official registers rule (size + antialias), so it is
  compared with our default registers configuration directly.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from vidpan.config import ViTConfig
from vidpan.models.backbone.vit import DINOV2_ARCHS, VisionTransformer, build_vit, dinov2_config
from vidpan.models.checkpoint import convert_dinov2_hf, load_hf_dinov2_dir, load_state_dict_strict

transformers = pytest.importorskip("transformers")

TOL = 1e-4


def _randomise(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


def _hf_model(*, registers: int, swiglu: bool, seed: int) -> Any:
    common = dict(
        hidden_size=48,
        num_hidden_layers=3,
        num_attention_heads=3,
        image_size=56,
        patch_size=14,
        use_swiglu_ffn=swiglu,
        attn_implementation="eager",
    )
    model: Any
    if registers:
        cfg = transformers.Dinov2WithRegistersConfig(num_register_tokens=registers, **common)
        model = transformers.Dinov2WithRegistersModel(cfg)
    else:
        model = transformers.Dinov2Model(transformers.Dinov2Config(**common))
    _randomise(model, seed)
    return model.eval()


def _ours_from_hf(hf: Any, tmp_path: Path, **overrides: object) -> VisionTransformer:
    hf.save_pretrained(tmp_path)  # the hub layout (query/key/value, weights_in/out)
    cfg, state = load_hf_dinov2_dir(tmp_path)
    vit = build_vit(dataclasses.replace(cfg, **overrides))  # type: ignore[arg-type]
    load_state_dict_strict(vit, state)
    return vit.eval()


def _max_diff(ours: VisionTransformer, hf: Any, images: torch.Tensor) -> float:
    with torch.no_grad():
        expected = hf(pixel_values=images).last_hidden_state
        got = ours.forward_features(images).tokens
    assert got.shape == expected.shape
    return float((got - expected).abs().max())


@pytest.mark.parametrize(("height", "width"), [(56, 56), (70, 42)])
def test_vit_matches_hf_dinov2(tmp_path: Path, height: int, width: int) -> None:
    hf = _hf_model(registers=0, swiglu=False, seed=0)
    images = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(1))
    # transformers 5.x resizes the table with an explicit size and no offset.
    ours = _ours_from_hf(hf, tmp_path, interpolate_offset=0.0)
    diff = _max_diff(ours, hf, images)
    assert diff < TOL, diff


def test_official_offset_rule_differs_from_hf_off_grid(tmp_path: Path) -> None:
    hf = _hf_model(registers=0, swiglu=False, seed=0)
    official = _ours_from_hf(hf, tmp_path)  # load_hf_dinov2_dir picks the official offset 0.1
    assert official.interpolate_offset == pytest.approx(0.1)
    size_rule = _ours_from_hf(hf, tmp_path, interpolate_offset=0.0)
    # On the pretraining grid both return the table unchanged ...
    torch.testing.assert_close(
        official.interpolate_pos_embed(56, 56, torch.float32),
        size_rule.interpolate_pos_embed(56, 56, torch.float32),
    )
    # ... off it, the offset rule samples at different coordinates.
    a = official.interpolate_pos_embed(70, 42, torch.float32)
    b = size_rule.interpolate_pos_embed(70, 42, torch.float32)
    assert a.shape == b.shape == (1, 1 + 5 * 3, 48)
    assert float((a - b).abs().max()) > 1e-3
    torch.testing.assert_close(a[:, :1], b[:, :1])  # the cls entry is never resized


@pytest.mark.parametrize(("height", "width"), [(56, 56), (42, 84)])
def test_vit_swiglu_registers_matches_hf(tmp_path: Path, height: int, width: int) -> None:
    hf = _hf_model(registers=4, swiglu=True, seed=2)
    ours = _ours_from_hf(hf, tmp_path)  # registers rule: offset 0, explicit size, antialias
    assert ours.num_register_tokens == 4
    assert ours.interpolate_offset == 0.0 and ours.interpolate_antialias
    assert isinstance(ours.blocks[0].mlp.w12, torch.nn.Linear)
    images = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(3))
    diff = _max_diff(ours, hf, images)
    assert diff < TOL, diff


def test_hf_in_memory_layout_converts_like_the_hub_layout(tmp_path: Path) -> None:
    """transformers 5.x names (q_proj, gate_proj/up_proj/down_proj) map to the same tensors."""
    hf = _hf_model(registers=2, swiglu=True, seed=4)
    hf.save_pretrained(tmp_path)
    _, from_files = load_hf_dinov2_dir(tmp_path)
    from_memory = convert_dinov2_hf(hf.state_dict(), hf.config.to_dict())
    assert sorted(from_files) == sorted(from_memory)
    for key in from_files:
        torch.testing.assert_close(from_files[key], from_memory[key], rtol=0, atol=0)


def test_sharded_hf_directory(tmp_path: Path) -> None:
    hf = _hf_model(registers=0, swiglu=False, seed=6)
    hf.save_pretrained(tmp_path / "single")
    hf.save_pretrained(tmp_path / "sharded", max_shard_size="60KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    cfg_a, a = load_hf_dinov2_dir(tmp_path / "single")
    cfg_b, b = load_hf_dinov2_dir(tmp_path / "sharded")
    assert cfg_a == cfg_b and sorted(a) == sorted(b)
    assert all(torch.equal(a[k], b[k]) for k in a)


def _official_vitg_keys(registers: int) -> dict[str, tuple[int, ...]]:
    """The DINOv2 ViT-g/14 checkpoint keys and shapes of reference §2.8."""
    keys: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, 1536),
        "pos_embed": (1, 1370, 1536),
        "mask_token": (1, 1536),
        "patch_embed.proj.weight": (1536, 3, 14, 14),
        "patch_embed.proj.bias": (1536,),
        "norm.weight": (1536,),
        "norm.bias": (1536,),
    }
    if registers:
        keys["register_tokens"] = (1, registers, 1536)
    for i in range(40):
        p = f"blocks.{i}."
        keys.update(
            {
                p + "norm1.weight": (1536,),
                p + "norm1.bias": (1536,),
                p + "attn.qkv.weight": (4608, 1536),
                p + "attn.qkv.bias": (4608,),
                p + "attn.proj.weight": (1536, 1536),
                p + "attn.proj.bias": (1536,),
                p + "ls1.gamma": (1536,),
                p + "norm2.weight": (1536,),
                p + "norm2.bias": (1536,),
                p + "mlp.w12.weight": (8192, 1536),
                p + "mlp.w12.bias": (8192,),
                p + "mlp.w3.weight": (1536, 4096),
                p + "mlp.w3.bias": (1536,),
                p + "ls2.gamma": (1536,),
            }
        )
    return keys


@pytest.mark.parametrize("registers", [False, True])
def test_vitg_official_keys_and_parameter_count(registers: bool) -> None:
    with torch.device("meta"):
        vit = build_vit(dinov2_config("vitg14", registers=registers))
    state = {k: tuple(v.shape) for k, v in vit.state_dict().items()}
    assert state == _official_vitg_keys(4 if registers else 0)
    total = sum(p.numel() for p in vit.parameters())
    # Every tensor of the frozen ViT-g/14 checkpoint, mask_token and position table included.
    assert total == 1_136_480_768 + (4 * 1536 if registers else 0)
    assert all(not p.requires_grad for p in vit.parameters())


def test_presets() -> None:
    for name, dims in [("vits14", (384, 12, 6)), ("vitb14", (768, 12, 12)), ("vitl14", (1024, 24, 16))]:
        cfg = dinov2_config(name)
        assert (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.ffn) == (*dims, "mlp")
    assert DINOV2_ARCHS["vitg14"]["ffn"] == "swiglu"
    with pytest.raises(ValueError, match="unknown DINOv2"):
        dinov2_config("vith14")


def _tiny(**overrides: object) -> VisionTransformer:
    cfg = ViTConfig(embed_dim=32, depth=4, num_heads=2, patch_size=8, img_size=64, frozen=False)
    vit = build_vit(dataclasses.replace(cfg, **overrides))  # type: ignore[arg-type]
    _randomise(vit, 5)
    return vit.eval()


def test_stagewise_blocks_equal_full_forward() -> None:
    vit = _tiny(num_register_tokens=2)
    images = torch.randn(2, 3, 40, 56)
    feats = vit.forward_features(images)
    tokens, grid = vit.prepare_tokens(images)
    assert grid == (5, 7) and tokens.shape == (2, 1 + 2 + 35, 32)
    for start, stop in [(0, 1), (1, 3), (3, 4)]:
        tokens = vit.run_blocks(tokens, start, stop)
    torch.testing.assert_close(tokens, feats.prenorm, rtol=0, atol=0)
    torch.testing.assert_close(vit.norm(tokens), feats.tokens, rtol=0, atol=0)
    assert feats.patch_tokens.shape == (2, 35, 32)
    assert feats.register_tokens.shape == (2, 2, 32)
    with pytest.raises(ValueError, match="block range"):
        vit.run_blocks(tokens, 2, 5)


def test_registers_follow_cls_without_position_embedding() -> None:
    vit = _tiny(num_register_tokens=3)
    images = torch.randn(1, 3, 64, 64)
    tokens, _ = vit.prepare_tokens(images)
    assert vit.register_tokens is not None
    torch.testing.assert_close(tokens[:, 1:4], vit.register_tokens)
    torch.testing.assert_close(tokens[:, 0], vit.cls_token[:, 0] + vit.pos_embed[:, 0])


def test_patch_grid_floors_like_cropping() -> None:
    vit = _tiny()
    images = torch.randn(1, 3, 45, 63)
    cropped = images[:, :, :40, :56]
    a, grid = vit.prepare_tokens(images)
    b, _ = vit.prepare_tokens(cropped)
    assert grid == (5, 7)
    # The position table is resized for the same grid; pixels past the last patch are ignored.
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_pos_embed_offset_rule_orientation() -> None:
    """Rows follow H and columns W for a non-square grid (checked on a separable ramp table)."""
    vit = _tiny()
    m = vit.pos_grid
    rows = torch.arange(m, dtype=torch.float32)[:, None].expand(m, m)
    with torch.no_grad():
        vit.pos_embed[0, 1:, 0] = rows.reshape(-1)  # channel 0 varies along rows only
        vit.pos_embed[0, 1:, 1] = rows.t().reshape(-1)  # channel 1 along columns only
    pos = vit.interpolate_pos_embed(24, 48, torch.float32)[0, 1:].reshape(3, 6, -1)
    assert torch.allclose(pos[:, :1, 0].expand(3, 6), pos[:, :, 0], atol=1e-5)
    assert torch.allclose(pos[:1, :, 1].expand(3, 6), pos[:, :, 1], atol=1e-5)
    expected = F.interpolate(
        vit.pos_embed[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2),
        scale_factor=((3 + 0.1) / m, (6 + 0.1) / m),
        mode="bicubic",
    )
    torch.testing.assert_close(pos.permute(2, 0, 1)[None], expected)


def test_frozen_vit_keeps_no_graph_and_stays_in_eval() -> None:
    vit = _tiny(frozen=True)
    assert vit.frozen and all(not p.requires_grad for p in vit.parameters())
    vit.train()
    assert not vit.training and not any(m.training for m in vit.modules())
    images = torch.randn(1, 3, 32, 32, requires_grad=True)
    feats = vit.forward_features(images)
    assert not feats.tokens.requires_grad and feats.tokens.grad_fn is None

    vit.set_frozen(False)
    vit.train()
    assert vit.training
    feats = vit.forward_features(images)
    feats.tokens.sum().backward()
    assert vit.blocks[0].attn.qkv.weight.grad is not None


def test_half_precision_runs() -> None:
    vit = _tiny().to(torch.bfloat16)
    out = vit.forward_features(torch.randn(1, 3, 48, 40, dtype=torch.bfloat16))
    assert out.tokens.dtype == torch.bfloat16
    ref = _tiny().forward_features(torch.randn(1, 3, 48, 40))
    assert out.tokens.shape == ref.tokens.shape
