"""Builders: config → modules, and the :class:`DVIS` container (segmenter, tracker, refiner).

Plain functions that call constructors (STYLE.md #1). The container has no ``forward``: the
three stages are siblings, composed by :class:`vidpan.inference.predictor.VideoPredictor` at
inference and by the training stages (STYLE.md #6). It exists so that one state dict, one
``.to(device)`` and one checkpoint cover the whole model.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from vidpan.config import Config, ModelConfig
from vidpan.errors import InputError
from vidpan.models.backbone.adapter import build_adapter_backbone
from vidpan.models.checkpoint import load_native, load_state_dict_strict
from vidpan.models.refiner import TemporalRefiner, build_refiner
from vidpan.models.segmenter import Segmenter, build_segmenter
from vidpan.models.tracker import ReferringTracker, build_tracker

Part = Literal["segmenter", "tracker", "refiner"]
ALL_PARTS: tuple[Part, ...] = ("segmenter", "tracker", "refiner")


class DVIS(nn.Module):
    """The decoupled video segmentation model: per-frame segmenter, online tracker, offline refiner.

    ``tracker`` / ``refiner`` are None for models trained only up to an earlier stage.
    """

    def __init__(
        self,
        *,
        segmenter: Segmenter,
        tracker: ReferringTracker | None = None,
        refiner: TemporalRefiner | None = None,
        num_things: int,
        class_names: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.segmenter = segmenter
        self.tracker = tracker
        self.refiner = refiner
        self.num_things = num_things
        self.class_names = class_names

    @property
    def parts(self) -> tuple[Part, ...]:
        return tuple(p for p in ALL_PARTS if getattr(self, p) is not None)


def validate_model_config(cfg: ModelConfig) -> None:
    """Cross-field checks the dataclass types cannot express (raise :class:`InputError`)."""
    width = 2 * cfg.decoder.hidden_dim  # the tracker/refiner read [q; reid(LN(q))]
    for name, part in (("tracker", cfg.tracker), ("refiner", cfg.refiner)):
        if part.hidden_dim != width:
            raise InputError(
                f"model.{name}.hidden_dim: expected 2 * model.decoder.hidden_dim = {width}, got {part.hidden_dim}"
            )
    if not 0 < cfg.num_things <= cfg.num_classes:
        raise InputError(
            f"model.num_things: expected 1..num_classes ({cfg.num_classes}), got {cfg.num_things}"
        )
    if cfg.class_names and len(cfg.class_names) != cfg.num_classes:
        raise InputError(f"model.class_names: expected {cfg.num_classes} names, got {len(cfg.class_names)}")
    if cfg.dataset_category_ids and len(cfg.dataset_category_ids) != cfg.num_classes:
        raise InputError(
            f"model.dataset_category_ids: expected {cfg.num_classes} ids, got {len(cfg.dataset_category_ids)}"
        )
    depth = cfg.vit.depth
    last = cfg.adapter.interaction_indexes[-1][-1] if cfg.adapter.interaction_indexes else -1
    if last != depth - 1:
        raise InputError(
            f"model.adapter.interaction_indexes: must end at the last ViT block {depth - 1}, got {last}"
        )


def build_model_segmenter(cfg: ModelConfig) -> Segmenter:
    """Frozen DINOv2 ViT + ViT-Adapter + Mask2Former head."""
    return build_segmenter(cfg, build_adapter_backbone(cfg))


def build_dvis(cfg: ModelConfig, *, parts: Collection[Part] = ALL_PARTS) -> DVIS:
    """The whole model (or only ``parts``; the segmenter is always built)."""
    validate_model_config(cfg)
    mask_dim = cfg.pixel_decoder.mask_dim
    return DVIS(
        segmenter=build_model_segmenter(cfg),
        tracker=build_tracker(cfg.tracker, num_classes=cfg.num_classes, mask_dim=mask_dim)
        if "tracker" in parts
        else None,
        refiner=build_refiner(cfg.refiner, num_classes=cfg.num_classes, mask_dim=mask_dim)
        if "refiner" in parts
        else None,
        num_things=cfg.num_things,
        class_names=cfg.class_names,
    )


def parts_in_state(state: Mapping[str, torch.Tensor]) -> tuple[Part, ...]:
    """Which stages a (converted) state dict holds weights for."""
    return tuple(p for p in ALL_PARTS if any(k.startswith(f"{p}.") for k in state))


def load_pretrained(path: str | Path, *, overrides: Collection[str] = ()) -> tuple[Config, DVIS]:
    """Build a model from a native checkpoint (``.safetensors`` with its config) and load it strictly.

    The stages present in the file decide which parts are built (a segmenter-only checkpoint
    gives a model without tracker and refiner).
    """
    from vidpan.config import apply_overrides

    config, state = load_native(path)
    config = apply_overrides(config, list(overrides))
    model = build_dvis(config.model, parts=parts_in_state(state))
    load_state_dict_strict(model, state, source=str(path))
    return config, model.eval()
