"""Conversion defects found in review (issue #11 item 6): 0-d NumPy arrays in detectron2 pickles,
and DINOv2-with-registers checkpoints keeping the preset's position-interpolation rule."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vidpan.config import Config, ViTConfig, load_config
from vidpan.errors import InputError
from vidpan.models.backbone.vit import build_vit
from vidpan.models.checkpoint import load_native, read_checkpoint
from vidpan.models.convert import convert_to_native, convert_weights
from vidpan.models.reference_config import model_config_from_reference


def test_pkl_keeps_0d_arrays_and_numpy_scalars(tmp_path: Path) -> None:
    path = tmp_path / "bn.pkl"
    state = {"bn.weight": np.ones(3, np.float32), "bn.num_batches_tracked": np.array(5), "step": np.int64(7)}
    path.write_bytes(pickle.dumps({"model": state}, protocol=2))
    out = read_checkpoint(path)
    assert out["bn.num_batches_tracked"].shape == () and int(out["bn.num_batches_tracked"]) == 5
    assert out["step"].shape == () and out["step"].dtype == torch.int64
    assert out["bn.weight"].shape == (3,)


def test_detectron2_pkl_with_batchnorm_buffers_converts(dvis_fixture: Path, tmp_path: Path) -> None:
    """The DVIS++ fixture's weights (BatchNorm running stats and 0-d num_batches_tracked) as the
    numpy-dict ``.pkl`` detectron2 writes -> converts and loads strictly."""
    meta = json.loads((dvis_fixture / "meta.json").read_text())
    model = model_config_from_reference(meta["config"], num_things=int(meta["metadata"]["n_thing_classes"]))
    weights = load_file(str(dvis_fixture / "weights.safetensors"))
    assert any(v.ndim == 0 for v in weights.values())  # the fixture does hold 0-d buffers
    path = tmp_path / "model_final.pkl"
    path.write_bytes(pickle.dumps({"model": {k: v.numpy() for k, v in weights.items()}}, protocol=2))
    state = convert_weights(path, "dvis-plus", Config(model=model))
    tracked = [k for k in state if k.endswith("num_batches_tracked")]
    assert tracked and all(state[k].shape == () for k in tracked)


def _registers_vit_config() -> ViTConfig:
    # A DINOv2-with-registers ViT (ViT-g layout: SwiGLU, 4 registers), tiny.
    return ViTConfig(embed_dim=128, depth=2, num_heads=2, ffn="swiglu", patch_size=14, img_size=56,
                     num_register_tokens=4, interpolate_offset=0.0, interpolate_antialias=True,
                     layerscale_init=1.0)  # fmt: skip


def test_dinov2_registers_conversion_takes_the_checkpoints_interpolation_rule(tmp_path: Path) -> None:
    torch.manual_seed(0)
    original = build_vit(_registers_vit_config()).eval()
    src = tmp_path / "dinov2_vitg14_reg4_pretrain.pth"
    torch.save(original.state_dict(), src)
    # The preset knows the architecture but, like `vitg`, not the registers or their rule.
    preset = load_config("tiny")
    vit = dataclasses.replace(_registers_vit_config(), num_register_tokens=0, interpolate_offset=0.1,
                              interpolate_antialias=False)  # fmt: skip
    config = dataclasses.replace(preset, model=dataclasses.replace(preset.model, vit=vit))
    with pytest.raises(InputError, match="num_register_tokens=4"):
        convert_weights(src, "dinov2", config)  # the state-only converter refuses to guess
    out = tmp_path / "vit.safetensors"
    convert_to_native(src, "dinov2", config, out)  # no --set needed
    saved, state = load_native(out)
    assert (saved.model.vit.num_register_tokens, saved.model.vit.interpolate_offset) == (4, 0.0)
    assert saved.model.vit.interpolate_antialias is True
    rebuilt = build_vit(saved.model.vit).eval()
    rebuilt.load_state_dict({k.removeprefix("segmenter.backbone.vit."): v for k, v in state.items()})
    images = torch.randn(1, 3, 42, 70)  # a 3 x 5 grid: the 4 x 4 position table is interpolated
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(images).tokens, original(images).tokens, rtol=0, atol=0)
        wrong = build_vit(
            dataclasses.replace(saved.model.vit, interpolate_offset=0.1, interpolate_antialias=False)
        )
        wrong.load_state_dict(rebuilt.state_dict())
        assert not torch.allclose(wrong.eval()(images).tokens, original(images).tokens)
