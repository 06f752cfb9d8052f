"""ViT-Adapter (no injectors): parity with the DVIS++ fixture, native patch-14 grids, MRFP, freezing.

The parity tests build the ViT and the adapter from the fixture's ``meta.json`` (every size comes
from there), load ``weights.safetensors`` through ``convert_dvis_plus`` and compare every
``backbone.frame0.*`` tensor the reference recorded, within 1e-4 absolute.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from vidpan.config import AdapterConfig, ModelConfig, ViTConfig
from vidpan.models.backbone.adapter import (
    AdapterIntermediates,
    InteractionStage,
    ViTAdapter,
    build_adapter_backbone,
    tokens_to_maps,
)
from vidpan.models.backbone.vit import build_vit
from vidpan.models.checkpoint import convert_dvis_plus, load_state_dict_strict, select_prefix
from vidpan.structures import FeaturePyramid

TOL = 1e-4


def model_config_from_meta(meta: dict[str, Any]) -> ModelConfig:
    v, a = meta["config"]["vit"], meta["config"]["adapter"]
    vit = ViTConfig(
        embed_dim=v["embed_dim"],
        depth=v["depth"],
        num_heads=v["num_heads"],
        mlp_ratio=float(v["mlp_ratio"]),
        ffn="swiglu" if v["ffn_layer"].startswith("swiglu") else "mlp",
        patch_size=v["patch_size"],
        img_size=v["img_size"],
        # DVIS++'s DINOv2 copy hard-codes the 0.1 offset (see the fixture notes).
        interpolate_offset=0.1,
        interpolate_antialias=False,
        layerscale_init=v["init_values"],
        qkv_bias=v["qkv_bias"],
        proj_bias=v["proj_bias"],
        ffn_bias=v["ffn_bias"],
        norm_eps=v["layernorm_eps"],
        frozen=True,
    )
    assert v["pos_embed_grid"] == [v["img_size"] // v["patch_size"]] * 2
    assert not a["injector"] and a["with_cffn"] and a["n_levels"] == 1
    adapter = AdapterConfig(
        interaction_indexes=tuple((int(r[0]), int(r[1])) for r in a["interaction_indexes"]),
        deform_num_heads=a["deform_num_heads"],
        n_points=a["n_points"],
        conv_inplane=a["conv_inplane"],
        cffn_ratio=a["cffn_ratio"],
        # DVIS++ ignores deform_ratio: full-width value/output projections.
        value_ratio=a["deform_ratio"] if a["deform_ratio_is_used"] else 1.0,
        extra_extractors=a["n_extra_extractors_last_stage"] if a["use_extra_extractor"] else 0,
        add_vit_feature=a["add_vit_feature"],
    )
    c = meta["config"]
    return ModelConfig(
        vit=vit,
        adapter=adapter,
        pixel_mean=tuple(c["pixel_mean"]),
        pixel_std=tuple(c["pixel_std"]),
        size_divisibility=a["size_divisibility"],
    )


@pytest.fixture(scope="module")
def parity_run(dvis_fixture: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(ours, reference) tensors keyed by the fixture's ``backbone.frame0.*`` names."""
    meta = json.loads((dvis_fixture / "meta.json").read_text())
    cfg = model_config_from_meta(meta)
    model = build_adapter_backbone(cfg).eval()
    state = select_prefix(
        convert_dvis_plus(load_file(str(dvis_fixture / "weights.safetensors"))), "segmenter.backbone."
    )
    load_state_dict_strict(model, state)

    video = load_file(str(dvis_fixture / "inputs.safetensors"))[meta["input"]["key"]]
    frame = video[:1].float()  # [1, 3, H, W]
    assert tuple(frame.shape[-2:]) == (meta["input"]["height"], meta["input"]["width"])
    mean = torch.tensor(cfg.pixel_mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.pixel_std).view(1, 3, 1, 1)
    images = (frame - mean) / std
    d = cfg.size_divisibility  # detectron2 ImageList pads the normalised image with zeros
    images = F.pad(images, (0, -images.shape[-1] % d, 0, -images.shape[-2] % d))

    with torch.no_grad():
        pyramid, inter = model.forward_with_intermediates(images)
    ours = _named(pyramid, inter)
    reference = {k: v for k, v in load_file(str(dvis_fixture / "outputs.safetensors")).items()}
    recorded = sorted(k for k in meta["outputs"]["keys"] if k.startswith("backbone.frame0."))
    assert recorded, "the fixture records no backbone tensors"
    unknown = sorted(set(recorded) - set(ours))
    assert not unknown, f"fixture keys this test does not know how to compare: {unknown}"
    return {k: ours[k] for k in recorded}, {k: reference[k] for k in recorded}


def _named(pyramid: FeaturePyramid, inter: AdapterIntermediates) -> dict[str, torch.Tensor]:
    p = "backbone.frame0."
    out = {
        p + "vit_tokens_in": inter.vit_tokens_in,
        p + "spm.c2": inter.spm_c2,
        p + "spm.c3": inter.spm_c3,
        p + "spm.c4": inter.spm_c4,
        p + "res2": pyramid.res2,
        p + "res3": pyramid.res3,
        p + "res4": pyramid.res4,
        p + "res5": pyramid.res5,
    }
    for i, stage in enumerate(inter.stages):
        out[f"{p}stage{i}.vit_out"] = stage.vit_out
        out[f"{p}stage{i}.cls"] = stage.cls
        out[f"{p}stage{i}.c"] = stage.c
    return out


def _check(run: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]], which: str) -> None:
    ours, ref = run
    keys = [k for k in ref if which in k]
    assert keys
    report = {}
    for key in keys:
        assert ours[key].shape == ref[key].shape, (key, ours[key].shape, ref[key].shape)
        report[key] = float((ours[key] - ref[key]).abs().max())
    bad = {k: d for k, d in report.items() if not d <= TOL}
    assert not bad, f"max abs diff above {TOL}: {bad}"


def test_backbone_parity_vit_tokens_in(parity_run: Any) -> None:
    _check(parity_run, ".vit_tokens_in")


def test_backbone_parity_spatial_prior(parity_run: Any) -> None:
    _check(parity_run, ".spm.")


def test_backbone_parity_stages(parity_run: Any) -> None:
    _check(parity_run, ".stage")


def test_backbone_parity_pyramid(parity_run: Any) -> None:
    _check(parity_run, ".res")


def test_backbone_parity_covers_every_recorded_tensor(parity_run: Any) -> None:
    ours, ref = parity_run
    groups = (".vit_tokens_in", ".spm.", ".stage", ".res")
    assert all(any(g in k for g in groups) for k in ref)
    assert len(ours) == len(ref)


# --------------------------------------------------------------------------------------------
# Beyond the fixture
# --------------------------------------------------------------------------------------------


def _tiny_cfg(**adapter: Any) -> ModelConfig:
    vit = ViTConfig(embed_dim=32, depth=4, num_heads=2, patch_size=14, img_size=56, frozen=True)
    ad = AdapterConfig(
        interaction_indexes=((0, 0), (1, 1), (2, 2), (3, 3)), deform_num_heads=2, conv_inplane=8
    )
    return ModelConfig(vit=vit, adapter=dataclasses.replace(ad, **adapter))


def _randomise(model: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)


def test_native_patch14_two_grids() -> None:
    model = build_adapter_backbone(_tiny_cfg()).eval()
    _randomise(model)
    images = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        pyramid, inter = model.forward_with_intermediates(images)
    # ViT grid floor(96/14) x floor(128/14) = 6 x 9; adapter grid 96/16 x 128/16 = 6 x 8.
    assert inter.vit_tokens_in.shape == (2, 1 + 6 * 9, 32)
    assert all(s.vit_out.shape == (2, 32, 6, 9) for s in inter.stages)
    assert [tuple(x.shape) for x in pyramid.levels()] == [
        (2, 32, 24, 32),
        (2, 32, 12, 16),
        (2, 32, 6, 8),
        (2, 32, 3, 4),
    ]
    # res3..res5 = norm(c-map + ViT map resized to the adapter size), recomputed from intermediates.
    maps = tokens_to_maps(inter.stages[-1].c, (6, 8))
    for level, (norm, c_map, vit_map, res) in enumerate(
        zip(
            [model.norm2, model.norm3, model.norm4],
            maps,
            [s.vit_out for s in inter.stages[1:]],
            [pyramid.res3, pyramid.res4, pyramid.res5],
            strict=True,
        )
    ):
        resized = F.interpolate(vit_map, size=c_map.shape[-2:], mode="bilinear", align_corners=False)
        with torch.no_grad():
            torch.testing.assert_close(norm(c_map + resized), res, msg=f"level {level}")


def test_value_ratio_half_shapes() -> None:
    model = build_adapter_backbone(_tiny_cfg(value_ratio=0.5))
    attn = model.interactions[0].extractor.attn
    assert attn.value_proj.weight.shape == (16, 32) and attn.output_proj.weight.shape == (32, 16)
    out = model(torch.randn(1, 3, 64, 64))
    assert out.res2.shape == (1, 32, 16, 16)


def test_state_dict_names_follow_dvis_plus() -> None:
    keys = set(build_adapter_backbone(_tiny_cfg()).state_dict())
    for key in (
        "level_embed",
        "spm.stem.0.weight",
        "spm.stem.7.running_var",
        "spm.conv4.1.num_batches_tracked",
        "spm.fc4.bias",
        "interactions.0.extractor.attn.sampling_offsets.weight",
        "interactions.0.extractor.ffn.dwconv.dwconv.weight",
        "interactions.3.extra_extractors.1.ffn_norm.bias",
        "up.weight",
        "norm4.running_mean",
        "vit.blocks.3.ls2.gamma",
    ):
        assert key in keys, key
    assert not any(k.startswith("interactions.2.extra_extractors") for k in keys)
    assert not any(".mrfp." in k for k in keys)


def test_mrfp_keys_and_no_residual() -> None:
    model = build_adapter_backbone(_tiny_cfg(use_mrfp=True, mrfp_ratio=2.0))
    keys = set(model.state_dict())
    for i in range(4):
        for name in (
            "fc1.weight",
            "fc2.bias",
            "dwconv.dwconv1.weight",
            "dwconv.dwconv6.weight",
            "dwconv.bn3.running_var",
        ):
            assert f"interactions.{i}.mrfp.{name}" in keys
    stage = model.interactions[0]
    assert isinstance(stage, InteractionStage) and stage.mrfp is not None
    assert stage.mrfp.dwconv.dwconv1.kernel_size == (3, 3) and stage.mrfp.dwconv.dwconv2.kernel_size == (5, 5)
    assert stage.mrfp.dwconv.dwconv1.in_channels == 32  # half of the 64 hidden channels
    # c <- MRFP(c) replaces c: with a zero output projection the extractor sees zeros.
    with torch.no_grad():
        stage.mrfp.fc2.weight.zero_()
        stage.mrfp.fc2.bias.zero_()
    grid = (2, 2)
    c = torch.randn(1, 21, 32)
    ref = torch.rand(1, 21, 1, 2)
    feat = torch.randn(1, 6, 32)
    stage.eval()
    with torch.no_grad():
        got = stage(c, ref, feat, (2, 3), grid, False)
        expected = stage.extractor(torch.zeros_like(c), ref, feat, (2, 3), grid)
    torch.testing.assert_close(got, expected)


def test_frozen_vit_trains_adapter_only() -> None:
    model = build_adapter_backbone(_tiny_cfg())
    model.train()
    assert model.training and model.spm.training and not model.vit.training
    pyramid = model(torch.randn(2, 3, 64, 64))
    sum(x.square().mean() for x in pyramid.levels()).backward()
    assert all(p.grad is None for p in model.vit.parameters())
    assert (
        model.level_embed.grad is not None
        and model.interactions[3].extra_extractors[1].attn.value_proj.weight.grad is not None
    )


def test_grad_checkpoint_gives_same_gradients() -> None:
    torch.manual_seed(0)
    a = build_adapter_backbone(_tiny_cfg())
    b = build_adapter_backbone(_tiny_cfg(grad_checkpoint=True))
    b.load_state_dict(a.state_dict())
    images = torch.randn(2, 3, 64, 64)
    for m in (a, b):
        m.train()
        sum(x.sum() for x in m(images).levels()).backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        if pa.grad is not None:
            torch.testing.assert_close(pa.grad, pb.grad, msg=name)


def test_registers_ride_along() -> None:
    cfg = _tiny_cfg()
    vit_cfg = dataclasses.replace(cfg.vit, num_register_tokens=4, interpolate_offset=0.0)
    model = build_adapter_backbone(ModelConfig(vit=vit_cfg, adapter=cfg.adapter)).eval()
    with torch.no_grad():
        _, inter = model.forward_with_intermediates(torch.randn(1, 3, 64, 96))
    assert inter.vit_tokens_in.shape == (1, 1 + 4 + 4 * 6, 32)
    assert inter.stages[0].cls.shape == (1, 1, 32) and inter.stages[0].vit_out.shape == (1, 32, 4, 6)


def test_bad_inputs_and_indexes() -> None:
    model = build_adapter_backbone(_tiny_cfg())
    with pytest.raises(ValueError, match="multiple of 32"):
        model(torch.randn(1, 3, 48, 64))
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        model(torch.randn(3, 64, 64))
    vit = build_vit(_tiny_cfg().vit)
    for bad in ([(0, 0), (2, 2), (3, 3), (4, 4)], [(0, 1), (2, 3)], [(0, 0), (1, 1), (2, 2), (3, 4)]):
        with pytest.raises(ValueError, match="interaction_indexes"):
            ViTAdapter(vit=vit, interaction_indexes=bad, deform_num_heads=2)


def test_eval_batch_norm_equals_module() -> None:
    from vidpan.models.backbone.adapter import batch_norm

    torch.manual_seed(6)
    norm = torch.nn.BatchNorm2d(8)
    norm.running_mean.normal_()
    norm.running_var.uniform_(0.5, 2.0)
    norm.weight.data.normal_()
    norm.bias.data.normal_()
    x = torch.randn(2, 8, 5, 6).contiguous(memory_format=torch.channels_last)
    norm.eval()
    torch.testing.assert_close(batch_norm(norm, x), norm(x), atol=1e-5, rtol=1e-5)
    norm.train()
    torch.testing.assert_close(batch_norm(norm, x), norm(x))  # training mode: the module itself
