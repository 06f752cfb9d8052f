"""Checkpoints: safe readers, pure converters from foreign formats to our names, strict loading.

One pure function per foreign format (STYLE.md #9), each ``state dict -> state dict`` with no I/O,
so ``vidpan convert`` is a thin wrapper (all importable from here):

* :func:`convert_dinov2_official` — DINOv2 ``.pth`` (``facebookresearch/dinov2``; our ViT uses the
  official names, so this only strips wrapper prefixes and flattens ``block_chunks`` keys).
* :func:`convert_dinov2_hf` — Hugging Face ``Dinov2Model`` / ``Dinov2WithRegistersModel`` (both the
  hub's safetensors layout and the renamed layout of ``transformers`` 5.x state dicts).
  These two, :func:`infer_vit_config`, :func:`vit_config_from_hf` and the 14 → 16 patch-kernel
  resize live in :mod:`vidpan.models.backbone.dinov2_weights`.
* :func:`convert_dvis_plus` — DVIS++ detectron2 checkpoints, by the rename table
  :data:`DVIS_PLUS_RULES` (reference §5), to our full-model names ``segmenter.backbone.*``,
  ``segmenter.pixel_decoder.*``, ``segmenter.decoder.*``, ``tracker.*``, ``refiner.*``.

Files are read without running foreign code: ``.pth`` with ``torch.load(weights_only=True)``,
``.pkl`` (detectron2 / Mask2Former numpy dicts) through a restricted unpickler that only builds
NumPy arrays, dtypes and plain containers, ``.safetensors`` natively.

Native format: one ``.safetensors`` file whose metadata holds the resolved :class:`Config` as JSON
(key ``vidpan_config``), so weights and the config that built them cannot get separated.
"""

from __future__ import annotations

import importlib
import json
import pickle
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from vidpan.config import Config, ViTConfig, from_dict, to_dict
from vidpan.errors import InputError
from vidpan.models.backbone.dinov2_weights import (
    StateDict,
    convert_dinov2_hf,
    convert_dinov2_official,
    infer_vit_config,
    resize_patch_embed,
    resize_patch_kernel,
    vit_config_from_hf,
)
from vidpan.utils.atomic import atomic_path

__all__ = [
    "DVIS_PLUS_RULES",
    "NATIVE_FORMAT",
    "RenameRule",
    "StateDict",
    "add_prefix",
    "apply_rename_rules",
    "convert_dinov2_hf",
    "convert_dinov2_official",
    "convert_dvis_plus",
    "infer_vit_config",
    "load_hf_dinov2_dir",
    "load_native",
    "load_state_dict_strict",
    "read_checkpoint",
    "read_pickle_restricted",
    "resize_patch_embed",
    "resize_patch_kernel",
    "save_native",
    "select_prefix",
    "vit_config_from_hf",
]

NATIVE_FORMAT = "vidpan"
NATIVE_FORMAT_VERSION = "1"

# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------

# (module, name) pairs a detectron2 / Mask2Former ``.pkl`` legitimately needs: NumPy array and
# scalar reconstruction (NumPy 1.x and 2.x module paths), dtypes, OrderedDict, and the latin-1
# bytes shim of protocol-2 pickles. Nothing here can run code.
_PICKLE_ALLOWED = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("collections", "OrderedDict"),
        ("_codecs", "encode"),
    }
)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global outside :data:`_PICKLE_ALLOWED`."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if module.startswith("numpy.core.") and np.lib.NumpyVersion(np.__version__) >= "2.0.0":
            module = "numpy._core." + module.removeprefix("numpy.core.")  # avoid the deprecated shim
        elif module.startswith("numpy._core.") and np.lib.NumpyVersion(np.__version__) < "2.0.0":
            module = "numpy.core." + module.removeprefix("numpy._core.")
        return getattr(importlib.import_module(module), name)


def damaged_safetensors(path: str | Path, exc: BaseException) -> InputError:
    """The one-line error for a .safetensors file that cannot be read (truncated, bit-flipped)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return InputError(
        f"damaged or truncated safetensors file ({first}); download or convert it again", path=path
    )


def refused_pickle(path: str | Path, exc: BaseException) -> InputError:
    """The one-line error for a pickle ``torch.load(weights_only=True)`` refused: what the file
    holds and how to convert a trusted one, never PyTorch's hint to disable the safety check."""
    found = re.search(r"GLOBAL ([\w.]+)", str(exc))
    what = f"the Python object {found.group(1)}" if found else "Python objects"
    return InputError(
        f"refused: the checkpoint contains {what}, not only tensors, and loading it could run code; "
        "if you trust its source, re-save its tensors with safetensors (safetensors.torch.save_file) "
        "in the project that made it and pass the .safetensors file",
        path=path,
    )


def read_pickle_restricted(path: str | Path) -> Any:
    """Unpickle ``path`` allowing only NumPy arrays/dtypes and plain containers."""
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError) as exc:
        raise InputError(f"not a plain NumPy pickle checkpoint ({exc})", path=path) from exc


def _unwrap(obj: Any) -> Any:
    """detectron2 stores weights under ``model``; other trainers under ``state_dict``."""
    for key in ("model", "state_dict"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            return obj[key]
    return obj


def _as_state_dict(obj: Any, path: str | Path) -> StateDict:
    if not isinstance(obj, Mapping):
        raise InputError(f"expected a mapping of tensors, got {type(obj).__name__}", path=path)
    state: StateDict = {}
    bad = []
    for key, value in obj.items():
        if isinstance(value, torch.Tensor):
            state[str(key)] = value
        elif isinstance(value, (np.ndarray, np.generic)):
            # ``np.ascontiguousarray`` returns ndim >= 1: keep 0-d arrays and NumPy scalars (BatchNorm
            # ``num_batches_tracked`` in detectron2 pickles) 0-d, as the model's buffers are.
            array = np.asarray(value)
            state[str(key)] = torch.from_numpy(np.ascontiguousarray(array).reshape(array.shape))
        else:
            bad.append(f"{key} ({type(value).__name__})")
    if bad:
        raise InputError(f"non-tensor entries in the state dict: {', '.join(bad[:10])}", path=path)
    return state


def read_checkpoint(path: str | Path) -> StateDict:
    """Read a state dict from ``.pth``/``.pt``/``.bin`` (weights only), ``.pkl`` or ``.safetensors``.

    A top-level ``model`` or ``state_dict`` entry is unwrapped; NumPy arrays become tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("checkpoint file not found", path=path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        try:
            return load_file(str(path))
        except Exception as exc:
            raise damaged_safetensors(path, exc) from None
    if suffix == ".pkl":
        return _as_state_dict(_unwrap(read_pickle_restricted(path)), path)
    if suffix in (".pth", ".pt", ".bin", ".ckpt"):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise refused_pickle(path, exc) from None
        except (RuntimeError, EOFError, OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"damaged or truncated checkpoint ({first})", path=path) from None
        return _as_state_dict(_unwrap(obj), path)
    raise InputError(
        f"unknown checkpoint type {suffix!r} (expected .pth, .pt, .bin, .pkl or .safetensors)", path=path
    )


# --------------------------------------------------------------------------------------------
# Strict loading and key helpers
# --------------------------------------------------------------------------------------------


def _listing(title: str, items: list[str], limit: int = 40) -> str:
    shown = items[:limit]
    more = f"\n    … and {len(items) - limit} more" if len(items) > limit else ""
    return f"  {title} ({len(items)}):\n" + "\n".join(f"    {s}" for s in shown) + more


def load_state_dict_strict(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    source: str | Path | None = None,
    assign: bool = False,
) -> None:
    """Load ``state`` into ``module``; every key must match in name and shape.

    Raises:
        InputError: listing missing keys, unexpected keys and shape mismatches (name, expected
            shape, got shape), naming ``source`` when given.
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{k}: expected {tuple(expected[k].shape)}, got {tuple(state[k].shape)}"
        for k in sorted(set(expected) & set(state))
        if tuple(expected[k].shape) != tuple(state[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = [f"checkpoint does not match {type(module).__name__}:"]
        if missing:
            parts.append(_listing("missing keys", missing))
        if unexpected:
            parts.append(_listing("unexpected keys", unexpected))
        if mismatched:
            parts.append(_listing("shape mismatches", mismatched))
        raise InputError("\n".join(parts), path=source)
    module.load_state_dict(dict(state), strict=True, assign=assign)


def select_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    """The entries under ``prefix`` with the prefix removed (e.g. ``segmenter.backbone.``)."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def add_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    """Every key with ``prefix`` prepended."""
    return {prefix + k: v for k, v in state.items()}


# --------------------------------------------------------------------------------------------
# Hugging Face DINOv2 directories (the pure converters live in vidpan.models.backbone.dinov2_weights)
# --------------------------------------------------------------------------------------------


def load_hf_dinov2_dir(path: str | Path, *, frozen: bool = True) -> tuple[ViTConfig, StateDict]:
    """Read a Hugging Face DINOv2 directory offline (``config.json`` + ``model.safetensors``, or a
    sharded ``model.safetensors.index.json``) -> (our ViT config, our ViT state dict)."""
    path = Path(path)
    config_path = path / "config.json"
    if not config_path.is_file():
        raise InputError("not a Hugging Face model directory (config.json missing)", path=path)
    try:
        hf_config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON ({exc})", path=config_path) from exc
    if not isinstance(hf_config, dict):
        raise InputError("expected a JSON object", path=config_path)
    single, index = path / "model.safetensors", path / "model.safetensors.index.json"
    if single.is_file():
        state = read_checkpoint(single)
    elif index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, AttributeError) as exc:
            raise InputError(f"invalid safetensors index ({exc})", path=index) from exc
        state = {}
        for shard in shards:
            state.update(read_checkpoint(path / shard))
    else:
        raise InputError("no model.safetensors (or model.safetensors.index.json) found", path=path)
    return vit_config_from_hf(hf_config, frozen=frozen), convert_dinov2_hf(state, hf_config)


# --------------------------------------------------------------------------------------------
# DVIS++ (detectron2) checkpoints
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenameRule:
    """One conversion rule: ``pattern`` must match the whole source key (``re.fullmatch``);
    ``replacement`` is an ``re`` template for our key, or ``None`` to drop the entry;
    ``transform`` optionally rewrites the tensor (e.g. a layout change)."""

    pattern: str
    replacement: str | None
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None


# DVIS++ key -> our full-model key. The FIRST rule whose pattern matches wins, so module-specific
# rules go above the pass-through rule of their prefix. Our model: segmenter.backbone (ViTAdapter,
# ViT at .vit), segmenter.pixel_decoder, segmenter.decoder, tracker, refiner.
DVIS_PLUS_RULES: tuple[RenameRule, ...] = (
    # --- backbone: ViT-Adapter + DINOv2 ViT (our names equal DVIS++'s below the prefix; the
    # patch kernel in DVIS++ checkpoints is already 16 × 16).
    RenameRule(r"backbone\.vit_module\.(.+)", r"segmenter.backbone.vit.\1"),
    RenameRule(r"backbone\.(.+)", r"segmenter.backbone.\1"),
    # --- pixel decoder (MSDeformAttnPixelDecoder)
    RenameRule(r"sem_seg_head\.pixel_decoder\.(.+)", r"segmenter.pixel_decoder.\1"),
    # --- mask decoder (VideoMultiScaleMaskedTransformerDecoder_dvisPlus)
    RenameRule(r"sem_seg_head\.predictor\.(.+)", r"segmenter.decoder.\1"),
    # --- referring tracker
    RenameRule(r"tracker\.(.+)", r"tracker.\1"),
    # --- temporal refiner
    RenameRule(r"refiner\.(.+)", r"refiner.\1"),
    # --- training only
    RenameRule(r"criterion\.empty_weight", None),
)


def apply_rename_rules(
    state: Mapping[str, torch.Tensor], rules: tuple[RenameRule, ...], *, what: str
) -> StateDict:
    """Apply a first-match-wins rename table; unmatched keys and collisions raise :class:`InputError`."""
    compiled = [(re.compile(rule.pattern), rule) for rule in rules]
    out: StateDict = {}
    unmatched = []
    for key, value in state.items():
        for pattern, rule in compiled:
            m = pattern.fullmatch(key)
            if m is None:
                continue
            if rule.replacement is not None:
                target = m.expand(rule.replacement)
                if target in out:
                    raise InputError(f"{what}: two entries map to {target!r}")
                out[target] = rule.transform(value) if rule.transform is not None else value
            break
        else:
            unmatched.append(key)
    if unmatched:
        raise InputError(
            f"{what}: no conversion rule for {len(unmatched)} keys: {', '.join(sorted(unmatched)[:20])}"
        )
    return out


def convert_dvis_plus(state: Mapping[str, torch.Tensor]) -> StateDict:
    """DVIS++ detectron2 state dict (``ckpt["model"]``) -> our full-model names (:data:`DVIS_PLUS_RULES`)."""
    return apply_rename_rules(state, DVIS_PLUS_RULES, what="DVIS++ checkpoint")


# --------------------------------------------------------------------------------------------
# Native format
# --------------------------------------------------------------------------------------------


def save_native(path: str | Path, state: Mapping[str, torch.Tensor], config: Config) -> None:
    """Write ``state`` and the resolved ``config`` to one ``.safetensors`` file, atomically."""
    path = Path(path)
    tensors: StateDict = {}
    seen: set[int] = set()
    for key, value in state.items():
        t = value.detach().to("cpu").contiguous()
        storage = t.untyped_storage().data_ptr()
        if storage in seen and t.numel():
            t = t.clone()  # safetensors refuses tensors that share memory
        seen.add(storage)
        tensors[key] = t
    metadata = {
        "format": NATIVE_FORMAT,
        "format_version": NATIVE_FORMAT_VERSION,
        "vidpan_config": json.dumps(to_dict(config)),
    }
    # A pid-named temporary, so a later write removes it if this process is SIGKILLed mid-write.
    with atomic_path(path, fsync=True) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_native(path: str | Path) -> tuple[Config, StateDict]:
    """Read a file written by :func:`save_native` -> (config, state dict)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("weights file not found", path=path)
    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
    except Exception as exc:
        raise damaged_safetensors(path, exc) from None
    if metadata.get("format") != NATIVE_FORMAT or "vidpan_config" not in metadata:
        raise InputError(
            "not a vidpan weights file (no vidpan config in the safetensors metadata); "
            "convert foreign checkpoints with `vidpan convert`",
            path=path,
        )
    try:
        config = from_dict(Config, json.loads(metadata["vidpan_config"]))
    except (json.JSONDecodeError, InputError) as exc:
        raise InputError(f"invalid embedded config ({exc})", path=path) from exc
    try:
        return config, load_file(str(path))
    except Exception as exc:  # header intact, data truncated
        raise damaged_safetensors(path, exc) from None
