"""DINOv2 weights: pure converters from the official and Hugging Face layouts to our ViT names.

Our :class:`~vidpan.models.backbone.vit.VisionTransformer` uses the official DINOv2 parameter
names (``facebookresearch/dinov2``), so official ``.pth`` state dicts need only wrapper prefixes
stripped and ``block_chunks`` keys flattened; Hugging Face ``Dinov2Model`` /
``Dinov2WithRegistersModel`` state dicts are renamed and their separate q/k/v (and SwiGLU
gate/up) projections fused. Also: the architecture of a state dict (:func:`infer_vit_config`,
:func:`vit_config_from_hf`) and the 14 → 16 patch-kernel resize of DVIS++ / ViT-Adapter.
All functions are pure (no I/O); file reading lives in :mod:`vidpan.models.checkpoint`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F

from vidpan.config import ViTConfig
from vidpan.errors import InputError
from vidpan.models.backbone.vit import swiglu_hidden_dim

StateDict = dict[str, torch.Tensor]

# --------------------------------------------------------------------------------------------
# DINOv2 official
# --------------------------------------------------------------------------------------------

_CHUNKED_BLOCK = re.compile(r"blocks\.\d+\.(\d+)\.(.+)")


def convert_dinov2_official(state: Mapping[str, torch.Tensor]) -> StateDict:
    """DINOv2 official state dict -> our :class:`VisionTransformer` names.

    Strips ``module.`` / ``backbone.`` wrapper prefixes (as DINOv2's own loader does) and maps
    ``block_chunks > 0`` keys ``blocks.<chunk>.<i>.…`` to ``blocks.<i>.…`` (``i`` is already the
    global block index: each chunk is padded with identities). Everything else is 1:1.
    """
    out: StateDict = {}
    for key, value in state.items():
        for prefix in ("module.", "backbone."):
            key = key.removeprefix(prefix)
        m = _CHUNKED_BLOCK.fullmatch(key)
        if m:
            key = f"blocks.{m.group(1)}.{m.group(2)}"
        if key in out:
            raise InputError(f"two checkpoint entries map to {key!r}")
        out[key] = value
    return out


def infer_vit_config(state: Mapping[str, torch.Tensor], *, frozen: bool = True) -> ViTConfig:
    """Architecture of an official-name ViT state dict (after :func:`convert_dinov2_official`).

    Heads are not stored in a checkpoint: all DINOv2 models use 64-channel heads, so
    ``num_heads = C / 64``. Register models get the registers interpolation rule.
    """
    for key in ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.norm1.weight"):
        if key not in state:
            raise InputError(f"not a DINOv2 ViT state dict: {key!r} missing")
    dim = int(state["cls_token"].shape[-1])
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    patch = int(state["patch_embed.proj.weight"].shape[-1])
    grid = math.isqrt(int(state["pos_embed"].shape[1]) - 1)
    registers = int(state["register_tokens"].shape[1]) if "register_tokens" in state else 0
    ffn: Literal["mlp", "swiglu"] = "swiglu" if "blocks.0.mlp.w12.weight" in state else "mlp"
    if ffn == "swiglu":
        hidden = int(state["blocks.0.mlp.w3.weight"].shape[1])
        mlp_ratio = 4.0
        if swiglu_hidden_dim(dim, mlp_ratio) != hidden:
            raise InputError(f"SwiGLU width {hidden} is not DINOv2's for width {dim} and MLP ratio 4")
    else:
        mlp_ratio = int(state["blocks.0.mlp.fc1.weight"].shape[0]) / dim
    if dim % 64:
        raise InputError(f"width {dim} is not a multiple of DINOv2's 64-channel heads")
    return ViTConfig(
        embed_dim=dim,
        depth=depth,
        num_heads=dim // 64,
        mlp_ratio=mlp_ratio,
        ffn=ffn,
        patch_size=patch,
        img_size=grid * patch,
        num_register_tokens=registers,
        interpolate_offset=0.0 if registers else 0.1,
        interpolate_antialias=bool(registers),
        layerscale_init=1.0,
        qkv_bias="blocks.0.attn.qkv.bias" in state,
        proj_bias="blocks.0.attn.proj.bias" in state,
        ffn_bias=("blocks.0.mlp.w3.bias" if ffn == "swiglu" else "blocks.0.mlp.fc2.bias") in state,
        frozen=frozen,
    )


def resize_patch_kernel(weight: torch.Tensor, size: int, *, align_corners: bool) -> torch.Tensor:
    """Bilinearly resize a patch-embedding kernel [C, 3, p, p] -> [C, 3, size, size].

    DVIS++ converts 14 → 16 with ``align_corners=True``; ViT-Adapter's ``convert_14to16.py`` with
    ``False``. Values are not rescaled (neither reference does).
    """
    if weight.shape[-1] == size and weight.shape[-2] == size:
        return weight
    out = F.interpolate(weight.float(), size=(size, size), mode="bilinear", align_corners=align_corners)
    return out.to(weight.dtype)


def resize_patch_embed(
    state: Mapping[str, torch.Tensor], size: int, *, align_corners: bool = True
) -> StateDict:
    """Copy of an official-name ViT state dict with ``patch_embed.proj.weight`` resized to ``size``."""
    out = dict(state)
    out["patch_embed.proj.weight"] = resize_patch_kernel(
        out["patch_embed.proj.weight"], size, align_corners=align_corners
    )
    return out


# --------------------------------------------------------------------------------------------
# Hugging Face DINOv2
# --------------------------------------------------------------------------------------------

# Hub layout (transformers 4.x and the files save_pretrained writes) and, as alternatives in the
# same patterns, the names transformers 5.x uses in memory -> our name. q/k/v and gate/up are
# fused separately (_HF_FUSED).
_HF_RENAMES: tuple[tuple[str, str], ...] = (
    (r"embeddings\.cls_token", "cls_token"),
    (r"embeddings\.mask_token", "mask_token"),
    (r"embeddings\.position_embeddings", "pos_embed"),
    (r"embeddings\.register_tokens", "register_tokens"),
    (r"embeddings\.patch_embeddings\.projection\.(weight|bias)", r"patch_embed.proj.\1"),
    (r"encoder\.layer\.(\d+)\.norm([12])\.(weight|bias)", r"blocks.\1.norm\2.\3"),
    (r"encoder\.layer\.(\d+)\.attention\.(?:output\.dense|o_proj)\.(weight|bias)", r"blocks.\1.attn.proj.\2"),
    (r"encoder\.layer\.(\d+)\.layer_scale([12])\.lambda1", r"blocks.\1.ls\2.gamma"),
    (r"encoder\.layer\.(\d+)\.mlp\.(fc[12])\.(weight|bias)", r"blocks.\1.mlp.\2.\3"),
    (r"encoder\.layer\.(\d+)\.mlp\.weights_in\.(weight|bias)", r"blocks.\1.mlp.w12.\2"),
    (r"encoder\.layer\.(\d+)\.mlp\.(?:weights_out|down_proj)\.(weight|bias)", r"blocks.\1.mlp.w3.\2"),
    (r"layernorm\.(weight|bias)", r"norm.\1"),
)
# Pieces concatenated (dim 0) into one of our tensors: (regex, our name template, piece, order).
_HF_FUSED: tuple[tuple[str, str, dict[str, int]], ...] = (
    (
        r"encoder\.layer\.(\d+)\.attention\.(?:attention\.)?(query|key|value|q_proj|k_proj|v_proj)\.(weight|bias)",
        "blocks.{0}.attn.qkv.{2}",
        {"query": 0, "key": 1, "value": 2, "q_proj": 0, "k_proj": 1, "v_proj": 2},
    ),
    (
        r"encoder\.layer\.(\d+)\.mlp\.(gate_proj|up_proj)\.(weight|bias)",
        "blocks.{0}.mlp.w12.{2}",
        {"gate_proj": 0, "up_proj": 1},
    ),
)


def convert_dinov2_hf(state: Mapping[str, torch.Tensor], hf_config: Mapping[str, Any]) -> StateDict:
    """Hugging Face DINOv2 (with or without registers) state dict -> our ViT names.

    Separate q/k/v become the fused ``attn.qkv`` ([q; k; v] rows, DINOv2's order); ``layer_scale*``
    → ``ls*.gamma``; SwiGLU ``weights_in`` (= [gate; up]) → ``w12`` and ``weights_out`` → ``w3``
    (transformers 5.x ``gate_proj``/``up_proj``/``down_proj`` likewise); ``layernorm`` → ``norm``.
    A leading ``dinov2.`` (task models) is stripped. A model saved without a mask token gets a
    zero one (it is unused). Unknown keys raise :class:`InputError`.
    """
    out: StateDict = {}
    pieces: dict[str, dict[int, torch.Tensor]] = {}
    unknown = []
    for raw_key, value in state.items():
        key = raw_key.removeprefix("dinov2.")
        for pattern, target in _HF_RENAMES:
            m = re.fullmatch(pattern, key)
            if m:
                out[m.expand(target)] = value
                break
        else:
            for pattern, template, order in _HF_FUSED:
                m = re.fullmatch(pattern, key)
                if m:
                    name = template.format(*m.groups())
                    pieces.setdefault(name, {})[order[m.group(2)]] = value
                    break
            else:
                unknown.append(raw_key)
    if unknown:
        raise InputError(f"unrecognised Hugging Face DINOv2 keys: {', '.join(sorted(unknown)[:20])}")
    for name, parts in pieces.items():
        n = 3 if ".attn.qkv." in name else 2
        if sorted(parts) != list(range(n)):
            raise InputError(f"incomplete Hugging Face checkpoint: pieces {sorted(parts)} of {name!r}")
        out[name] = torch.cat([parts[i] for i in range(n)], dim=0)
    depth = int(hf_config.get("num_hidden_layers", -1))
    found = {int(k.split(".")[1]) for k in out if k.startswith("blocks.")}
    if depth >= 0 and found != set(range(depth)):
        raise InputError(f"config says {depth} layers but the weights hold layers {sorted(found)[:5]}…")
    if "mask_token" not in out and "cls_token" in out:
        out["mask_token"] = torch.zeros(1, out["cls_token"].shape[-1], dtype=out["cls_token"].dtype)
    return out


def vit_config_from_hf(hf_config: Mapping[str, Any], *, frozen: bool = True) -> ViTConfig:
    """:class:`ViTConfig` of a Hugging Face ``config.json`` (model_type dinov2 / dinov2_with_registers).

    Position interpolation follows the *official* DINOv2 rules (offset 0.1 without registers;
    explicit size with antialias for registers), not transformers 5.x ``Dinov2Model``'s
    explicit-size resize (see ``vidpan.models.backbone.vit``).
    """
    model_type = hf_config.get("model_type")
    if model_type not in ("dinov2", "dinov2_with_registers"):
        raise InputError(f"model_type {model_type!r} is not a DINOv2 model (dinov2 or dinov2_with_registers)")
    if hf_config.get("hidden_act", "gelu") != "gelu":
        raise InputError(f"hidden_act {hf_config.get('hidden_act')!r} unsupported (DINOv2 uses exact 'gelu')")

    def as_int(name: str) -> int:
        value = hf_config.get(name)
        if isinstance(value, (list, tuple)):
            value = value[0]
        if not isinstance(value, int):
            raise InputError(f"config.json: {name}: expected an integer, got {value!r}")
        return value

    registers = int(hf_config.get("num_register_tokens", 0)) if model_type == "dinov2_with_registers" else 0
    return ViTConfig(
        embed_dim=as_int("hidden_size"),
        depth=as_int("num_hidden_layers"),
        num_heads=as_int("num_attention_heads"),
        mlp_ratio=float(hf_config.get("mlp_ratio", 4)),
        ffn="swiglu" if hf_config.get("use_swiglu_ffn", False) else "mlp",
        patch_size=as_int("patch_size"),
        img_size=as_int("image_size"),
        num_register_tokens=registers,
        interpolate_offset=0.0 if model_type == "dinov2_with_registers" else 0.1,
        interpolate_antialias=model_type == "dinov2_with_registers",
        layerscale_init=float(hf_config.get("layerscale_value", 1.0)),
        qkv_bias=bool(hf_config.get("qkv_bias", True)),
        norm_eps=float(hf_config.get("layer_norm_eps", 1e-6)),
        frozen=frozen,
    )
