"""Model configs from the DVIS++ reference harness's description of a model.

The parity fixture (``fixtures/dvis_plus_tiny/meta.json``) and the speed anchor
(``fixtures/dvis_plus_speed_anchor.json``) describe the reference model they ran under
``config`` (``vit``, ``adapter``, ``pixel_decoder``, ``decoder``, ``tracker``, ``refiner``,
``test``, ``pixel_mean/std``). :func:`model_config_from_reference` turns that into our
:class:`~vidpan.config.ModelConfig`, so parity tests and ``vidpan bench video`` build exactly the
model the reference ran, for any fixture made the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vidpan.config import (
    AdapterConfig,
    DecoderConfig,
    InferenceConfig,
    ModelConfig,
    PixelDecoderConfig,
    RefinerConfig,
    TrackerConfig,
    ViTConfig,
)
from vidpan.errors import InputError


def _get(section: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in section:
        raise InputError(f"reference config: missing `{where}.{key}`")
    return section[key]


def model_config_from_reference(cfg: Mapping[str, Any], *, num_things: int = 58) -> ModelConfig:
    """``meta.json["config"]`` (or the speed anchor's ``config``) -> :class:`ModelConfig`.

    DVIS++ ignores the adapter's ``deform_ratio`` (full-width value projection), which the
    harness records as ``deform_ratio_is_used``; the value ratio follows that flag.
    """
    vit, ad = cfg["vit"], cfg["adapter"]
    pd, dec, trk, ref = cfg["pixel_decoder"], cfg["decoder"], cfg["tracker"], cfg["refiner"]
    ffn = _get(vit, "ffn_layer", "vit")
    ratio_used = bool(ad.get("deform_ratio_is_used", True))
    return ModelConfig(
        vit=ViTConfig(
            embed_dim=int(_get(vit, "embed_dim", "vit")),
            depth=int(_get(vit, "depth", "vit")),
            num_heads=int(_get(vit, "num_heads", "vit")),
            mlp_ratio=float(vit.get("mlp_ratio", 4.0)),
            ffn="swiglu" if str(ffn).startswith("swiglu") else "mlp",
            patch_size=int(_get(vit, "patch_size", "vit")),
            img_size=int(_get(vit, "img_size", "vit")),
            layerscale_init=float(vit.get("init_values", 1e-5)),
            qkv_bias=bool(vit.get("qkv_bias", True)),
            proj_bias=bool(vit.get("proj_bias", True)),
            ffn_bias=bool(vit.get("ffn_bias", True)),
            norm_eps=float(vit.get("layernorm_eps", 1e-6)),
        ),
        adapter=AdapterConfig(
            interaction_indexes=tuple(
                (int(a), int(b)) for a, b in _get(ad, "interaction_indexes", "adapter")
            ),
            deform_num_heads=int(_get(ad, "deform_num_heads", "adapter")),
            n_points=int(ad.get("n_points", 4)),
            conv_inplane=int(ad.get("conv_inplane", 64)),
            cffn_ratio=float(ad.get("cffn_ratio", 0.25)),
            value_ratio=float(ad.get("deform_ratio", 1.0)) if ratio_used else 1.0,
            extra_extractors=int(ad.get("n_extra_extractors_last_stage", 2))
            if ad.get("use_extra_extractor", True)
            else 0,
            add_vit_feature=bool(ad.get("add_vit_feature", True)),
        ),
        pixel_decoder=PixelDecoderConfig(
            conv_dim=int(_get(pd, "convs_dim", "pixel_decoder")),
            mask_dim=int(_get(pd, "mask_dim", "pixel_decoder")),
            num_layers=int(_get(pd, "transformer_enc_layers", "pixel_decoder")),
            num_heads=int(pd.get("encoder_nheads", 8)),
            num_points=int(pd.get("encoder_n_points", 4)),
            dim_feedforward=int(pd.get("encoder_dim_feedforward", 1024)),
        ),
        decoder=DecoderConfig(
            hidden_dim=int(_get(dec, "hidden_dim", "decoder")),
            num_heads=int(_get(dec, "nheads", "decoder")),
            dim_feedforward=int(_get(dec, "dim_feedforward", "decoder")),
            num_layers=int(_get(dec, "n_transformer_layers", "decoder")),
            num_queries=int(_get(dec, "num_queries", "decoder")),
            reid_hidden_dim=int(dec.get("reid_hidden_dim", dec["hidden_dim"])),
            reid_layers=int(dec.get("num_reid_head_layers", 3)),
        ),
        tracker=TrackerConfig(
            hidden_dim=int(_get(trk, "hidden", "tracker")),
            num_layers=int(_get(trk, "layers", "tracker")),
            num_heads=int(_get(trk, "nheads", "tracker")),
            dim_feedforward=int(_get(trk, "dim_feedforward", "tracker")),
        ),
        refiner=RefinerConfig(
            hidden_dim=int(_get(ref, "hidden", "refiner")),
            num_layers=int(_get(ref, "layers", "refiner")),
            num_heads=int(_get(ref, "nheads", "refiner")),
            dim_feedforward=int(_get(ref, "dim_feedforward", "refiner")),
            mask_window=int(ref.get("windows", 3)),
        ),
        num_classes=int(_get(dec, "num_classes", "decoder")),
        num_things=num_things,
        pixel_mean=tuple(float(v) for v in cfg.get("pixel_mean", (123.675, 116.28, 103.53))),  # type: ignore[arg-type]
        pixel_std=tuple(float(v) for v in cfg.get("pixel_std", (58.395, 57.12, 57.375))),  # type: ignore[arg-type]
        size_divisibility=int(ad.get("size_divisibility", 32)),
    )


def inference_config_from_reference(cfg: Mapping[str, Any], *, mode: str = "offline") -> InferenceConfig:
    """``config["test"]`` -> :class:`InferenceConfig` (window size and VPS thresholds; no resize)."""
    test = cfg["test"]
    return InferenceConfig(
        mode=mode,  # type: ignore[arg-type]
        task=str(test.get("task", "vps")),  # type: ignore[arg-type]
        window_size=int(_get(test, "window_size", "test")),
        short_side=0,
        object_mask_threshold=float(_get(test, "object_mask_threshold", "test")),
        overlap_threshold=float(_get(test, "overlap_threshold", "test")),
    )
