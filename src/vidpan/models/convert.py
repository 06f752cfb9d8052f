"""Weights people have -> vidpan models: ``vidpan convert`` and weight loading for inference.

Formats (STYLE.md #9: explicit converters, strict loading):

- ``dvis-plus``: a DVIS++ / Mask2Former detectron2 checkpoint (``.pth`` with a ``model`` key,
  ``.pkl`` numpy dict, or ``.safetensors`` with reference key names) of a model whose shapes match
  a preset (``vitl`` for DVIS++ ViT-L) -> a complete native checkpoint (segmenter, plus tracker
  and refiner when present);
- ``dinov2``: an official DINOv2 ``.pth`` (e.g. ``dinov2_vitg14_pretrain.pth``) -> a native
  checkpoint holding only the frozen ViT (``segmenter.backbone.vit.*``), the starting point of
  segmenter training; the patch kernel is resized when the preset runs the ViT with patch 16;
- ``hf-dinov2``: a Hugging Face ``facebook/dinov2-*`` directory (``config.json`` +
  safetensors, read offline) -> the same.

The native format is one ``.safetensors`` file with the resolved config in its metadata
(:func:`vidpan.models.checkpoint.save_native`).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch

from vidpan.config import Config, ViTConfig, apply_overrides, load_config
from vidpan.errors import InputError
from vidpan.models.backbone.vit import build_vit
from vidpan.models.build import DVIS, build_dvis, parts_in_state
from vidpan.models.checkpoint import (
    NATIVE_FORMAT,
    StateDict,
    add_prefix,
    convert_dinov2_official,
    convert_dvis_plus,
    damaged_safetensors,
    infer_vit_config,
    load_hf_dinov2_dir,
    load_native,
    load_state_dict_strict,
    read_checkpoint,
    resize_patch_embed,
    save_native,
)

Format = Literal["dvis-plus", "dinov2", "hf-dinov2"]
FORMATS: tuple[Format, ...] = ("dvis-plus", "dinov2", "hf-dinov2")
VIT_PREFIX = "segmenter.backbone.vit."


def is_native(path: str | Path) -> bool:
    """Whether ``path`` is a vidpan native ``.safetensors`` (config in its metadata)."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return False
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return (f.metadata() or {}).get("format") == NATIVE_FORMAT
    except Exception:
        return False


def _check_vit(found: ViTConfig, wanted: ViTConfig, source: str | Path) -> None:
    for name in ("embed_dim", "depth", "ffn"):
        if getattr(found, name) != getattr(wanted, name):
            raise InputError(
                f"the checkpoint's ViT has {name}={getattr(found, name)!r} but the preset expects "
                f"{getattr(wanted, name)!r} (model.vit.{name}); pick the matching preset",
                path=source,
            )


# Properties of a DINOv2 checkpoint, not of the architecture preset: the register tokens and the
# position-table interpolation rule they imply (offset 0.1 without registers; explicit size with
# antialias for the registers models). Taken from the checkpoint, never left at the preset's value.
CHECKPOINT_VIT_FIELDS = ("num_register_tokens", "interpolate_offset", "interpolate_antialias")


def adapt_to_checkpoint(config: Config, found: ViTConfig) -> tuple[Config, list[str]]:
    """``config`` with the checkpoint's registers and interpolation rule -> (config, what changed)."""
    vit = config.model.vit
    changes = {f: getattr(found, f) for f in CHECKPOINT_VIT_FIELDS if getattr(found, f) != getattr(vit, f)}
    if not changes:
        return config, []
    notes = [f"model.vit.{f}: {getattr(vit, f)!r} -> {v!r} (from the checkpoint)" for f, v in changes.items()]
    model = dataclasses.replace(config.model, vit=dataclasses.replace(vit, **changes))
    return dataclasses.replace(config, model=model), notes


def convert_weights(src: str | Path, fmt: Format, config: Config) -> StateDict:
    """Convert a foreign checkpoint to our full-model key names, checked against ``config``.

    Raises :class:`InputError` naming missing / unexpected keys and shape mismatches (and, for
    DINOv2, registers / interpolation that differ from ``config``: :func:`convert_weights_and_config`
    adopts those from the checkpoint instead).
    """
    if fmt not in FORMATS:
        raise InputError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "dvis-plus":
        state = convert_dvis_plus(read_checkpoint(src))
        model = build_dvis(config.model, parts=parts_in_state(state) or ("segmenter",))
        load_state_dict_strict(model, state, source=str(src))
        return state
    found, vit_state = _read_vit(src, fmt)
    mismatched = [f for f in CHECKPOINT_VIT_FIELDS if getattr(found, f) != getattr(config.model.vit, f)]
    if mismatched:
        raise InputError(
            f"the checkpoint's ViT has {', '.join(f'{f}={getattr(found, f)!r}' for f in mismatched)} but the "
            "config says otherwise: use convert_weights_and_config (vidpan convert does), which adopts them",
            path=src,
        )
    return _finish_vit(found, vit_state, config.model.vit, src)


def convert_weights_and_config(
    src: str | Path, fmt: Format, config: Config
) -> tuple[Config, StateDict, list[str]]:
    """:func:`convert_weights`, also returning the config adapted to the checkpoint (DINOv2 registers
    and their interpolation rule, see :data:`CHECKPOINT_VIT_FIELDS`) and a note per adaptation."""
    if fmt not in ("dinov2", "hf-dinov2"):
        return config, convert_weights(src, fmt, config), []
    found, vit_state = _read_vit(src, fmt)
    config, notes = adapt_to_checkpoint(config, found)
    return config, _finish_vit(found, vit_state, config.model.vit, src), notes


def _read_vit(src: str | Path, fmt: Format) -> tuple[ViTConfig, StateDict]:
    if fmt == "dinov2":
        vit_state = convert_dinov2_official(read_checkpoint(src))
        return infer_vit_config(vit_state), vit_state
    return load_hf_dinov2_dir(src)


def _finish_vit(found: ViTConfig, vit_state: StateDict, wanted: ViTConfig, src: str | Path) -> StateDict:
    """Check the ViT against ``wanted``, resize the patch kernel if needed, load strictly, prefix."""
    _check_vit(found, wanted, src)
    kernel = vit_state["patch_embed.proj.weight"].shape[-1]
    if kernel != wanted.patch_size:
        # DVIS++ resizes the 14x14 kernel to 16x16 with align_corners=True (dvis_reference §2.6).
        vit_state = resize_patch_embed(vit_state, wanted.patch_size, align_corners=True)
    vit = build_vit(wanted)
    load_state_dict_strict(vit, vit_state, source=str(src))
    return add_prefix(vit_state, VIT_PREFIX)


def convert_to_native(src: str | Path, fmt: Format, config: Config, out: str | Path) -> StateDict:
    """``vidpan convert``: convert ``src`` and write a native checkpoint to ``out`` (atomically).

    The saved config takes the checkpoint's DINOv2 registers / interpolation rule (printed as a
    note on stderr when that differs from ``config``).
    """
    config, state, notes = convert_weights_and_config(src, fmt, config)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    save_native(out, state, config)
    return state


def load_for_inference(
    weights: str | Path,
    *,
    preset: str | None = None,
    overrides: Sequence[str] = (),
) -> tuple[Config, DVIS]:
    """A model ready for video inference from a native checkpoint or a DVIS++ checkpoint.

    ``weights`` may also be a zoo name (``vidpan models``) or ``hf://owner/repo[@rev]/path``: it
    is then downloaded, verified and converted once (:func:`vidpan.hub.resolve.resolve_weights`),
    into the zoo entry's preset unless ``preset`` names another.
    A native file carries its config (``preset`` optional: if given, the preset's architecture
    is used and must match the weights). A DVIS++ / Mask2Former checkpoint needs ``preset``.
    """
    from vidpan.hub.resolve import is_remote_spec, resolve_weights

    if is_remote_spec(weights):
        resolved = resolve_weights(weights, preset=preset, overrides=overrides)
        weights, preset = resolved.path, None  # the converted file embeds its config
    weights = Path(weights)
    if not weights.exists():
        raise InputError("weights file not found", path=weights)
    if is_native(weights):
        stored, state = load_native(weights)
        config = stored if preset is None else load_config(preset)
        if preset is not None:
            # Keep the checkpoint's label space (names, ids, colours) with the preset's architecture.
            labels = {
                f: getattr(stored.model, f) for f in ("class_names", "dataset_category_ids", "class_colors")
            }
            config = dataclasses.replace(config, model=dataclasses.replace(config.model, **labels))
    else:
        if weights.suffix.lower() == ".safetensors":
            from safetensors import safe_open

            try:  # unreadable: say it is damaged, not that it needs --preset
                with safe_open(str(weights), "pt"):
                    pass
            except Exception as exc:
                raise damaged_safetensors(weights, exc) from None
        if preset is None:
            raise InputError(
                "not a vidpan weights file: pass --preset (e.g. vitl) to load a DVIS++ / Mask2Former "
                "checkpoint, or convert it first with `vidpan convert`",
                path=weights,
            )
        config = load_config(preset)
        state = convert_weights(weights, "dvis-plus", config)
    config = apply_overrides(config, list(overrides))
    for key, tensor in state.items():  # NaN / inf weights would only give garbage masks
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise InputError(
                f"weight {key} holds NaN or inf values: a damaged or diverged checkpoint", path=weights
            )
    parts = parts_in_state(state)
    if "segmenter" not in parts or not any(k.startswith("segmenter.decoder.") for k in state):
        raise InputError(
            "the checkpoint has no segmentation head (only a backbone?): train the segmenter first "
            "(`vidpan train`)",
            path=weights,
        )
    model = build_dvis(config.model, parts=parts)
    load_state_dict_strict(model, state, source=str(weights))
    return config, model.eval()
