"""Checkpoint readers, converters, strict loading and the native format."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from vidpan.config import Config, ViTConfig, apply_overrides
from vidpan.errors import InputError
from vidpan.models.backbone.vit import build_vit, dinov2_config
from vidpan.models.checkpoint import (
    DVIS_PLUS_RULES,
    RenameRule,
    add_prefix,
    apply_rename_rules,
    convert_dinov2_hf,
    convert_dinov2_official,
    convert_dvis_plus,
    infer_vit_config,
    load_native,
    load_state_dict_strict,
    read_checkpoint,
    resize_patch_embed,
    resize_patch_kernel,
    save_native,
    select_prefix,
)


class _Evil:
    """Unpickling this runs a shell command — the loaders must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_rejects_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"model": {"w": _Evil(marker)}}))
    with pytest.raises(InputError, match=r"refusing to load global (posix|os|nt)\.system"):
        read_checkpoint(path)
    assert not marker.exists()


def test_pth_loader_rejects_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model": {"w": _Evil(marker)}}, path)
    with pytest.raises(InputError, match="refused: the checkpoint contains"):
        read_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_pkl_numpy_checkpoint_loads(tmp_path: Path, protocol: int) -> None:
    arrays = OrderedDict(
        [("backbone.a", np.arange(6, dtype=np.float32).reshape(2, 3)), ("b", np.ones(4, dtype=np.float64))]
    )
    path = tmp_path / "m2f.pkl"
    path.write_bytes(pickle.dumps({"model": arrays, "__author__": "someone"}, protocol=protocol))
    state = read_checkpoint(path)
    assert sorted(state) == ["b", "backbone.a"]
    assert state["backbone.a"].dtype == torch.float32 and state["b"].dtype == torch.float64
    np.testing.assert_array_equal(state["backbone.a"].numpy(), arrays["backbone.a"])


def test_pth_unwraps_detectron2_model_key(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pth"
    torch.save({"model": {"x": torch.ones(2)}, "iteration": 5, "optimizer": {"state": {}}}, path)
    assert list(read_checkpoint(path)) == ["x"]
    torch.save({"state_dict": {"y": torch.zeros(1)}}, path)
    assert list(read_checkpoint(path)) == ["y"]


def test_read_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_checkpoint(tmp_path / "missing.pth")
    bad = tmp_path / "w.onnx"
    bad.write_bytes(b"x")
    with pytest.raises(InputError, match="unknown checkpoint type"):
        read_checkpoint(bad)
    mixed = tmp_path / "mixed.pth"
    torch.save({"x": torch.ones(1), "step": 3}, mixed)
    with pytest.raises(InputError, match=r"non-tensor entries.*step"):
        read_checkpoint(mixed)


def test_strict_loading_names_keys_and_shapes() -> None:
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    state = dict(module.state_dict())
    del state["1.bias"]
    state["2.weight"] = torch.ones(1)
    state["0.weight"] = torch.ones(5, 3)
    with pytest.raises(InputError) as info:
        load_state_dict_strict(module, state, source="model.pth")
    message = str(info.value)
    assert message.startswith("model.pth:")
    assert re.search(r"missing keys \(1\):\s+1\.bias", message)
    assert re.search(r"unexpected keys \(1\):\s+2\.weight", message)
    assert re.search(r"shape mismatches \(1\):\s+0\.weight: expected \(4, 3\), got \(5, 3\)", message)
    good = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    load_state_dict_strict(module, good.state_dict())
    torch.testing.assert_close(module[0].weight, good[0].weight)


def _tiny_vit(**kw: object) -> torch.nn.Module:
    cfg = ViTConfig(embed_dim=128, depth=4, num_heads=2, patch_size=14, img_size=56, layerscale_init=1.0)
    return build_vit(dataclasses.replace(cfg, **kw))  # type: ignore[arg-type]


def test_dinov2_official_block_chunks_and_prefixes() -> None:
    vit = _tiny_vit(ffn="swiglu", num_register_tokens=4)
    reference = vit.state_dict()
    # block_chunks=2: chunk 0 holds blocks 0-1, chunk 1 (padded with identities) blocks 2-3.
    chunked = {}
    for key, value in reference.items():
        if key.startswith("blocks."):
            i = int(key.split(".")[1])
            key = f"blocks.{i // 2}.{i}." + key.split(".", 2)[2]
        chunked["module.backbone." + key] = value
    converted = convert_dinov2_official(chunked)
    assert sorted(converted) == sorted(reference)
    for key in reference:
        assert converted[key] is reference[key]
    fresh = _tiny_vit(ffn="swiglu", num_register_tokens=4)
    load_state_dict_strict(fresh, converted)
    # Flat keys pass through unchanged.
    assert convert_dinov2_official(reference).keys() == reference.keys()


def test_infer_vit_config_from_official_state() -> None:
    with torch.device("meta"):
        vitg = build_vit(dinov2_config("vitg14", registers=True))
    cfg = infer_vit_config(vitg.state_dict())
    assert cfg == dinov2_config("vitg14", registers=True)
    with torch.device("meta"):
        vitl16 = build_vit(dinov2_config("vitl14", patch_size=16, img_size=592))
    assert infer_vit_config(vitl16.state_dict()) == dinov2_config("vitl14", patch_size=16, img_size=592)
    with pytest.raises(InputError, match="not a DINOv2"):
        infer_vit_config({"x": torch.ones(1)})


def test_official_round_trip_gives_same_outputs() -> None:
    a = _tiny_vit().eval()
    b = _tiny_vit().eval()
    load_state_dict_strict(b, convert_dinov2_official(a.state_dict()))
    images = torch.randn(1, 3, 42, 70)
    torch.testing.assert_close(a(images).tokens, b(images).tokens, rtol=0, atol=0)


def test_resize_patch_kernel() -> None:
    w = torch.randn(8, 3, 14, 14)
    ac = resize_patch_kernel(w, 16, align_corners=True)
    nac = resize_patch_kernel(w, 16, align_corners=False)
    assert ac.shape == nac.shape == (8, 3, 16, 16)
    assert not torch.allclose(ac, nac)
    # On a ramp along x, bilinear resizing samples the source at
    # x * 13/15 (align_corners=True) or clamp((x + 0.5) * 14/16 - 0.5, 0, 13) (False).
    ramp = torch.arange(14, dtype=torch.float32).expand(1, 3, 14, 14)
    x = torch.arange(16, dtype=torch.float32)
    expected_ac = (x * 13 / 15).expand(1, 3, 16, 16)
    expected_nac = ((x + 0.5) * 14 / 16 - 0.5).clamp(0, 13).expand(1, 3, 16, 16)
    torch.testing.assert_close(resize_patch_kernel(ramp, 16, align_corners=True), expected_ac)
    torch.testing.assert_close(resize_patch_kernel(ramp, 16, align_corners=False), expected_nac)
    const = torch.full((2, 3, 14, 14), 0.25)
    torch.testing.assert_close(
        resize_patch_kernel(const, 16, align_corners=False), torch.full((2, 3, 16, 16), 0.25)
    )
    assert resize_patch_kernel(w, 14, align_corners=True) is w
    # Official ViT-L/14 -> DVIS++ patch-16 mode loads strictly into a patch-16 ViT of img_size 592.
    with torch.device("meta"):
        vit16 = build_vit(dinov2_config("vitl14", patch_size=16, img_size=592))
    small = {"patch_embed.proj.weight": w, "cls_token": torch.zeros(1)}
    assert resize_patch_embed(small, 16)["patch_embed.proj.weight"].shape == (8, 3, 16, 16)
    assert vit16.pos_embed.shape == (1, 1370, 1024)


def test_convert_dvis_plus_fixture_keys(dvis_fixture: Path) -> None:
    source = load_file(str(dvis_fixture / "weights.safetensors"))
    converted = convert_dvis_plus(source)
    assert "criterion.empty_weight" in source and "criterion.empty_weight" not in converted
    assert len(converted) == len(source) - 1
    torch.testing.assert_close(
        converted["segmenter.backbone.vit.pos_embed"], source["backbone.vit_module.pos_embed"], rtol=0, atol=0
    )
    assert "segmenter.backbone.interactions.3.extra_extractors.1.attn.value_proj.weight" in converted
    prefixes = {
        k.split(".")[0] if not k.startswith("segmenter.") else ".".join(k.split(".")[:2]) for k in converted
    }
    assert prefixes == {
        "segmenter.backbone",
        "segmenter.pixel_decoder",
        "segmenter.decoder",
        "tracker",
        "refiner",
    }
    assert not any("vit_module" in k for k in converted)
    backbone = select_prefix(converted, "segmenter.backbone.")
    assert add_prefix(backbone, "segmenter.backbone.").keys() <= converted.keys()


def test_rename_rules_are_strict() -> None:
    with pytest.raises(InputError, match=r"no conversion rule for 1 keys: weird.key"):
        convert_dvis_plus({"backbone.a": torch.ones(1), "weird.key": torch.ones(1)})
    rules = (RenameRule(r"a\.(\d)", r"x.\1"), RenameRule(r"b\.(\d)", r"x.\1"))
    with pytest.raises(InputError, match=r"two entries map to 'x.1'"):
        apply_rename_rules({"a.1": torch.ones(1), "b.1": torch.ones(1)}, rules, what="test")
    # First match wins and transforms apply.
    rules = (RenameRule(r"a\.0", "first", lambda t: t * 2), RenameRule(r"a\.(\d)", r"second.\1"))
    out = apply_rename_rules({"a.0": torch.ones(1), "a.1": torch.ones(1)}, rules, what="test")
    assert sorted(out) == ["first", "second.1"] and float(out["first"]) == 2.0
    assert all(rule.pattern for rule in DVIS_PLUS_RULES)


def test_convert_dinov2_hf_errors() -> None:
    with pytest.raises(InputError, match="unrecognised"):
        convert_dinov2_hf(
            {"embeddings.cls_token": torch.ones(1, 1, 4), "pooler.dense.weight": torch.ones(1)}, {}
        )
    partial = {
        "embeddings.cls_token": torch.ones(1, 1, 4),
        "encoder.layer.0.attention.attention.query.weight": torch.ones(4, 4),
        "encoder.layer.0.attention.attention.key.weight": torch.ones(4, 4),
    }
    with pytest.raises(InputError, match="incomplete"):
        convert_dinov2_hf(partial, {})


def test_native_round_trip(tmp_path: Path) -> None:
    config = apply_overrides(Config(), ["name=test", "model.vit.depth=2", "model.adapter.value_ratio=0.5"])
    qkv = torch.randn(6, 4)
    state = {"a": torch.randn(3, 4), "q": qkv[:3], "k": qkv[3:], "int": torch.arange(3)}
    path = tmp_path / "sub" / "model.safetensors"
    save_native(path, state, config)
    loaded_config, loaded = load_native(path)
    assert loaded_config == config
    assert sorted(loaded) == sorted(state)
    for key in state:
        torch.testing.assert_close(loaded[key], state[key], rtol=0, atol=0)
    assert [p.name for p in path.parent.iterdir()] == ["model.safetensors"]  # no temp files left


def test_native_rejects_foreign_files(tmp_path: Path) -> None:
    path = tmp_path / "foreign.safetensors"
    save_file({"x": torch.ones(1)}, str(path))
    with pytest.raises(InputError, match="not a vidpan weights file"):
        load_native(path)
    bad = tmp_path / "bad.safetensors"
    save_file(
        {"x": torch.ones(1)},
        str(bad),
        metadata={"format": "vidpan", "vidpan_config": json.dumps({"model": {"nope": 1}})},
    )
    with pytest.raises(InputError, match=r"invalid embedded config.*nope"):
        load_native(bad)
    with pytest.raises(InputError, match="not found"):
        load_native(tmp_path / "missing.safetensors")
