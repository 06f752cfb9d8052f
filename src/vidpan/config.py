"""Configuration: frozen nested dataclasses, YAML files and ``--set a.b=value`` overrides.

One config system for everything (STYLE.md #2): every setting is a field of a frozen dataclass;
YAML presets and command-line overrides map 1:1 onto the fields. Unknown keys and values of the
wrong type are rejected with the full dotted key path in the message, e.g.::

    config.yaml: model.decoder.num_queriess: unknown key (expected one of: hidden_dim, ...)

Values are range-checked where they are parsed: sections with value constraints check them in
``__post_init__`` with :func:`check_range`, so ``--set inference.window_size=0`` fails at once
with ``inference.window_size: expected an integer >= 1, got 0`` (an :class:`InputError`, CLI exit
2) instead of deep inside inference.

The generic machinery (:func:`from_dict`, :func:`to_dict`, :func:`apply_overrides`,
:func:`load_yaml`, :func:`save_yaml`) works for any dataclass; the model and inference sections
are defined here, the training sections in :mod:`vidpan.training.config`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from vidpan.errors import InputError

T = TypeVar("T")

# Largest frame vidpan reads by default (``inference.max_input_pixels``): 8K UHD (7680 x 4320 =
# 33.2 MP) with a margin. Larger frames are refused up front (decompression bombs: a 12000 x 12000
# PNG is under 1 MB on disk but 432 MB as RGB per frame, plus full-resolution masks per query).
DEFAULT_MAX_INPUT_PIXELS = 40_000_000
# Most frames a whole-video mode (``offline``, ``online`` with whole-video post-processing)
# accepts (``inference.max_frames``): those modes keep per-frame tensors until the end of the
# video (query embeddings in memory, mask features / logits spilled to disk), so their cost grows
# with the length. 18,000 frames = 10 minutes at 30 fps. Streaming modes need no limit.
DEFAULT_MAX_FRAMES = 18_000


class ConfigValueError(InputError):
    """A config value outside its range; ``key`` is the field name (the section adds its path)."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.detail = message
        super().__init__(f"{key}: {message}")


def check_range(
    section: Any,
    name: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    note: str = "",
) -> None:
    """Raise :class:`ConfigValueError` unless ``section.name`` is a finite number in the range."""
    value = getattr(section, name)
    bounds = [f">= {ge}" if ge is not None else "", f"> {gt}" if gt is not None else ""]
    upper = [f"<= {le}" if le is not None else "", f"< {lt}" if lt is not None else ""]
    if ge is not None and le is not None:
        text = f"in [{ge}, {le}]"
    else:
        text = " and ".join(b for b in bounds + upper if b)
    kind = "an integer" if isinstance(value, int) and not isinstance(value, bool) else "a number"
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (ge is None or value >= ge)
        and (gt is None or value > gt)
        and (le is None or value <= le)
        and (lt is None or value < lt)
    )
    if not ok:
        raise ConfigValueError(name, f"expected {kind} {text}{note}, got {value!r}")


# --------------------------------------------------------------------------------------------
# Model sections
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ViTConfig:
    """DINOv2 vision transformer (``vidpan.models.backbone.vit``)."""

    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    # "mlp" (ViT-S/B/L) or "swiglu" (ViT-g: fused w12 / w3, hidden 4096 for width 1536).
    ffn: Literal["mlp", "swiglu"] = "mlp"
    # Patch size of the model as built: 14 = native DINOv2; 16 = DVIS++ mode (kernel resized).
    patch_size: int = 14
    # Pretraining image size; the position table covers (img_size // patch_size)^2 patches.
    img_size: int = 518
    num_register_tokens: int = 0
    # Position-embedding interpolation: DINOv2 (offset 0.1, no antialias) or the registers
    # variant (offset 0.0, explicit size, antialias).
    interpolate_offset: float = 0.1
    interpolate_antialias: bool = False
    layerscale_init: float = 1e-5
    qkv_bias: bool = True
    proj_bias: bool = True
    ffn_bias: bool = True
    norm_eps: float = 1e-6
    # Frozen = eval mode, no_grad, requires_grad False (the seed and DVIS++ keep the ViT frozen).
    frozen: bool = True


@dataclass(frozen=True)
class AdapterConfig:
    """ViT-Adapter without injectors (``vidpan.models.backbone.adapter``)."""

    # Inclusive ViT block ranges of the four interaction stages.
    interaction_indexes: tuple[tuple[int, int], ...] = ((0, 2), (3, 5), (6, 8), (9, 11))
    deform_num_heads: int = 6
    n_points: int = 4
    conv_inplane: int = 64
    cffn_ratio: float = 0.25
    # Width of the extractor's value / output projection relative to the ViT width:
    # 1.0 as DVIS++ (which ignores its ratio), 0.5 as ViT-Adapter and DINOv2's own adapter.
    value_ratio: float = 1.0
    extra_extractors: int = 2
    add_vit_feature: bool = True
    # ViT-CoMer multi-receptive-field feature pyramid before each extractor (seed's alternative).
    use_mrfp: bool = False
    mrfp_ratio: float = 6.0
    # With use_mrfp: also an MRFP before each extra extractor of the last stage ("before each
    # Extractor", seed paper §2.2); False = one MRFP per stage.
    mrfp_extra_extractors: bool = True
    # Recompute the extractors in backward (activation checkpointing; DVIS++ VIT_ADAPTER.WITH_CP).
    grad_checkpoint: bool = False


@dataclass(frozen=True)
class PixelDecoderConfig:
    """Mask2Former multi-scale deformable-attention pixel decoder."""

    conv_dim: int = 256
    mask_dim: int = 256
    num_layers: int = 6
    num_heads: int = 8
    num_points: int = 4
    dim_feedforward: int = 1024
    norm_groups: int = 32


@dataclass(frozen=True)
class DecoderConfig:
    """Mask2Former masked-attention transformer decoder with the re-identification branch."""

    hidden_dim: int = 256
    num_heads: int = 8
    dim_feedforward: int = 2048
    num_layers: int = 9
    num_queries: int = 200
    reid_hidden_dim: int = 256
    reid_layers: int = 3
    mask_attention_threshold: float = 0.5

    def __post_init__(self) -> None:
        check_range(self, "num_queries", ge=1)
        check_range(self, "mask_attention_threshold", ge=0.0, le=1.0)


@dataclass(frozen=True)
class TrackerConfig:
    """DVIS++ referring tracker."""

    hidden_dim: int = 512
    num_layers: int = 6
    num_heads: int = 8
    dim_feedforward: int = 2048
    # Training-only denoising: "wa" weighted average, "rs" random shuffle, "cc" channel cut.
    noise_mode: Literal["none", "wa", "rs", "cc"] = "wa"
    noise_ratio: float = 0.5


@dataclass(frozen=True)
class RefinerConfig:
    """DVIS temporal refiner."""

    hidden_dim: int = 512
    num_layers: int = 6
    num_heads: int = 8
    dim_feedforward: int = 2048
    # Frames per chunk of the final mask einsum at inference (bounded memory).
    mask_window: int = 3

    def __post_init__(self) -> None:
        check_range(self, "mask_window", ge=1)


@dataclass(frozen=True)
class ModelConfig:
    """The whole DVIS model: segmenter (ViT + adapter + Mask2Former), tracker, refiner."""

    vit: ViTConfig = field(default_factory=ViTConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    pixel_decoder: PixelDecoderConfig = field(default_factory=PixelDecoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    refiner: RefinerConfig = field(default_factory=RefinerConfig)
    # Model class space: things first (0..num_things-1), then stuff; +1 no-object logit.
    num_classes: int = 124
    num_things: int = 58
    # Class names in model space (optional; used for overlays and per-frame JSON).
    class_names: tuple[str, ...] = ()
    # Dataset category id of each model class (optional; identity when empty).
    dataset_category_ids: tuple[int, ...] = ()
    # Category colour of each model class (optional; VIPSeg submissions give stuff segments the
    # category colour as their id, as the official converter does).
    class_colors: tuple[tuple[int, int, int], ...] = ()
    pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    size_divisibility: int = 32

    def __post_init__(self) -> None:
        check_range(self, "num_classes", ge=1)
        check_range(self, "num_things", ge=0, le=self.num_classes, note=" (at most num_classes)")
        check_range(self, "size_divisibility", ge=0, note=" (0 or 1: no padding)")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in self.pixel_std):
            raise ConfigValueError("pixel_std", f"expected 3 numbers > 0, got {self.pixel_std!r}")


@dataclass(frozen=True)
class InferenceConfig:
    """Video inference and post-processing."""

    mode: Literal["online", "offline", "long", "minvis"] = "offline"
    task: Literal["vps", "vss", "vis"] = "vps"
    # Frames per segmenter/tracker forward (DVIS++ TEST.WINDOW_SIZE). >= 1.
    window_size: int = 3
    # Frames per segmenter forward inside a window (0 = the whole window at once). The segmenter
    # is image-level, so this changes only peak activation memory and speed, not the outputs.
    # 1 is the lowest memory and, on CPU, also the fastest; on a GPU a whole window may be faster.
    segmenter_batch: int = 1
    # Test-time resize: short side (0 = keep the input size), capped long side (>= 1).
    short_side: int = 720
    max_size: int = 1333
    # VPS thresholds, in [0, 1].
    object_mask_threshold: float = 0.8
    overlap_threshold: float = 0.8
    # VIS only: how many (track, class) pairs to keep per video (DVIS++ ``max_num``). >= 1.
    max_instances: int = 20
    # Long-video mode: refiner chunk length (default = the refiner's training clip) and overlap.
    chunk_length: int = 21
    chunk_overlap: int = 5
    # Largest input frame (height x width pixels) read; larger ones are refused before decoding
    # (0 = no limit). Outputs are written at the input resolution, so this bounds them too.
    max_input_pixels: int = DEFAULT_MAX_INPUT_PIXELS
    # Most frames per video in the whole-video modes (offline; online with whole-video
    # post-processing), refused from the header up front or stopped when decoding passes it
    # (0 = no limit). Streaming online / minvis and long mode are bounded by the window / chunk.
    max_frames: int = DEFAULT_MAX_FRAMES

    def __post_init__(self) -> None:
        check_range(self, "window_size", ge=1)
        check_range(self, "segmenter_batch", ge=0, note=" (0 = the whole window)")
        check_range(self, "short_side", ge=0, note=" (0 = keep the input size)")
        check_range(self, "max_size", ge=1)
        check_range(self, "object_mask_threshold", ge=0.0, le=1.0)
        check_range(self, "overlap_threshold", ge=0.0, le=1.0)
        check_range(self, "max_instances", ge=1)
        check_range(self, "chunk_length", ge=1)
        check_range(self, "chunk_overlap", ge=0, lt=self.chunk_length, note=" (below chunk_length)")
        check_range(self, "max_input_pixels", ge=0, note=" (0 = no limit)")
        check_range(self, "max_frames", ge=0, note=" (0 = no limit)")


@dataclass(frozen=True)
class Config:
    """Top-level configuration of a model and how it is run."""

    name: str = "custom"
    model: ModelConfig = field(default_factory=ModelConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)


# --------------------------------------------------------------------------------------------
# Generic machinery
# --------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert YAML shapes (lists -> tuples)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise InputError(f"{key}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, prefix=key)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise InputError(f"{key}: expected one of {list(choices)}, got {value!r}")
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key)
            except InputError:
                continue
        raise InputError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin in (tuple, Sequence, list) or tp in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{key}: expected a list for {_type_name(tp)}, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise InputError(f"{key}: expected {len(args)} items, got {len(value)} ({value!r})")
            items = [_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))]
        else:
            item_tp = args[0] if args else Any
            items = [_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return list(items) if origin is list else tuple(items)
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise InputError(f"{key}: expected a mapping, got {value!r}")
        k_tp, v_tp = get_args(tp) or (Any, Any)
        return {_convert(k, k_tp, key): _convert(v, v_tp, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise InputError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            # PyYAML (YAML 1.1) reads "1e-4" (no dot) as a string; accept what Python reads as a number.
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise InputError(f"{key}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise InputError(f"{key}: expected {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], *, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a nested mapping, validating every key and value.

    Missing keys take the field defaults; unknown keys raise :class:`InputError` naming the full
    dotted path and the accepted keys.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            raise InputError(f"{path}: unknown key (expected one of: {', '.join(fields)})")
        kwargs[key] = _convert(value, hints[key], path)
    try:
        return cls(**kwargs)
    except ConfigValueError as exc:
        key = f"{prefix}.{exc.key}" if prefix else exc.key
        raise InputError(f"{key}: {exc.detail}") from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"{prefix or cls.__name__}: {exc}") from exc


def to_dict(obj: Any) -> Any:
    """Convert a (nested) dataclass into plain YAML/JSON-friendly Python (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value`` (value in YAML syntax) into (["a", "b", "c"], value)."""
    if "=" not in text:
        raise InputError(f"--set {text!r}: expected key=value, e.g. model.decoder.num_queries=100")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise InputError(f"--set {text!r}: malformed key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise InputError(f"--set {text!r}: value is not valid YAML ({exc})") from exc
    return key.split("."), value


def apply_overrides(cfg: T, overrides: Sequence[str]) -> T:
    """Return a copy of ``cfg`` with each ``a.b=value`` override applied and re-validated."""
    data = to_dict(cfg)
    for text in overrides:
        parts, value = parse_override(text)
        node = data
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node, dict) or part not in node:
                raise InputError(f"--set {text}: {'.'.join(parts[: i + 1])}: unknown key")
            node = node[part]
        if not isinstance(node, dict) or parts[-1] not in node:
            where = ".".join(parts)
            expected = ", ".join(node) if isinstance(node, dict) else "a section"
            raise InputError(f"--set {text}: {where}: unknown key (expected one of: {expected})")
        node[parts[-1]] = value
    return from_dict(type(cfg), data)


def load_yaml(cls: type[T], path: str | Path, overrides: Sequence[str] = ()) -> T:
    """Load dataclass ``cls`` from a YAML file (optionally ``base:`` another file), then overrides.

    A YAML file may name ``base: other.yaml`` (relative to itself) whose values it updates; this
    is the only inheritance and it is one explicit file path, not a registry lookup.
    """
    data = _read_yaml_with_base(Path(path), seen=())
    try:
        cfg = from_dict(cls, data)
    except InputError as exc:
        raise InputError(str(exc), path=path) from exc
    return apply_overrides(cfg, overrides)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a YAML config file with its ``base:`` chain merged in (not validated).

    For files that hold more than one dataclass's worth of keys, e.g. training recipes whose
    ``stages:`` section is split off before validation (``vidpan.training.config``).
    """
    return _read_yaml_with_base(Path(path), seen=())


def merge_dicts(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings are merged key by key, any other value of ``update`` replaces."""
    return _merge(dict(base), update)


def _read_yaml_with_base(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    if not path.is_file():
        raise InputError("config file not found", path=path)
    if path.resolve() in seen:
        raise InputError("circular `base:` chain", path=path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {exc}", path=path) from exc
    if not isinstance(data, dict):
        raise InputError("top level must be a mapping", path=path)
    base = data.pop("base", None)
    if base is None:
        return data
    base_path = _resolve_base(path, str(base))
    return _merge(_read_yaml_with_base(base_path, (*seen, path.resolve())), data)


def _resolve_base(path: Path, base: str) -> Path:
    candidate = (path.parent / base).resolve()
    if candidate.is_file():
        return candidate
    preset = preset_path(base, must_exist=False)
    if preset.is_file():
        return preset
    raise InputError(f"base: {base!r} not found next to the file or among the presets", path=path)


def save_yaml(cfg: Any, path: str | Path) -> None:
    """Write a resolved config as YAML (atomically)."""
    from vidpan.utils.atomic import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def configs_dir() -> Path:
    """The directory holding the bundled YAML presets and recipes."""
    return Path(__file__).resolve().parent / "configs"


def preset_names() -> list[str]:
    """Names of the bundled model presets (``configs/presets/<name>.yaml``)."""
    return sorted(p.stem for p in (configs_dir() / "presets").glob("*.yaml"))


def preset_path(name: str, *, must_exist: bool = True) -> Path:
    """Path of a bundled preset given its name (``vitg``) or a YAML path."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate
    path = configs_dir() / "presets" / f"{name.removesuffix('.yaml')}.yaml"
    if must_exist and not path.is_file():
        raise InputError(f"unknown preset {name!r} (available: {', '.join(preset_names())})")
    return path


def load_config(preset_or_path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Load a :class:`Config` from a preset name or YAML path, then apply overrides."""
    return load_yaml(Config, preset_path(str(preset_or_path)), overrides)
