"""Optimizer parameter groups, AdamW, the warmup + multi-step learning-rate schedule, clipping.

Follows Mask2Former / DVIS++ ``train_net_video.py:build_optimizer`` and detectron2's
``WarmupMultiStepLR`` (reference §2.5, §4.2):

- only parameters with ``requires_grad`` are optimised (frozen parts never enter the optimizer);
- learning rate × ``backbone_multiplier`` (0.1) for every parameter under ``segmenter.backbone.``
  — in the seed's model that is the ViT-Adapter (the ViT itself is frozen), as in DVIS++ where
  the adapter lives under ``backbone.``;
- weight decay ``weight_decay_norm`` (0) for the parameters of normalisation layers
  (BatchNorm, SyncBatchNorm, GroupNorm, LayerNorm, InstanceNorm, LocalResponseNorm) and
  ``weight_decay_embed`` (0) for ``nn.Embedding`` weights and every parameter whose name contains
  one of ``no_decay_names`` (query/level/position embeddings, class/register tokens, relative
  position tables);
- full-model gradient clipping: one L2 norm over all trained gradients (``clip_grad_norm`` 0.01);
- lr(i) = base · warmup(i) · gamma^(number of steps <= i), warmup linear from ``warmup_factor``
  over ``warmup_iters`` (factor 1.0 in the DVIS++ configs, i.e. no warmup in effect).

Deviation, on purpose: Mask2Former exempts only ``nn.Embedding`` modules and a few Swin names;
the ``level_embed`` of the pixel decoder and of the adapter are plain ``nn.Parameter`` there and
get weight decay. vidpan exempts every embedding by name (configurable with ``no_decay_names``).
Parameters are grouped by (lr multiplier, weight decay) instead of one group per tensor; the
update is the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from vidpan.errors import InputError
from vidpan.training.config import SolverConfig

NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)


@dataclass
class ParamGroup:
    """Trained parameters sharing one learning-rate factor and one weight decay."""

    name: str
    lr_factor: float
    weight_decay: float
    names: list[str] = field(default_factory=list)
    params: list[nn.Parameter] = field(default_factory=list)


def param_groups(model: nn.Module, cfg: SolverConfig) -> list[ParamGroup]:
    """Group the trainable parameters of ``model`` by the rules of the module docstring.

    Returns the non-empty groups in a fixed order (so optimizer states line up on resume).
    """
    groups: dict[tuple[bool, str], ParamGroup] = {}
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            full = f"{module_name}.{param_name}" if module_name else param_name
            backbone = full.startswith(cfg.backbone_prefix)
            if isinstance(module, NORM_TYPES):
                decay_kind, decay = "norm", cfg.weight_decay_norm
            elif isinstance(module, nn.Embedding) or any(s in full for s in cfg.no_decay_names):
                decay_kind, decay = "embed", cfg.weight_decay_embed
            else:
                decay_kind, decay = "decay", cfg.weight_decay
            key = (backbone, decay_kind)
            if key not in groups:
                groups[key] = ParamGroup(
                    name=f"{'backbone' if backbone else 'head'}/{decay_kind}",
                    lr_factor=cfg.backbone_multiplier if backbone else 1.0,
                    weight_decay=decay,
                )
            groups[key].names.append(full)
            groups[key].params.append(param)
    order = [(b, d) for b in (True, False) for d in ("decay", "norm", "embed")]
    return [groups[k] for k in order if k in groups]


def build_optimizer(groups: list[ParamGroup], cfg: SolverConfig) -> torch.optim.Optimizer:
    """AdamW over the groups (``lr`` = base · factor; ``initial_lr`` is what the schedule scales)."""
    if not groups:
        raise ValueError("no trainable parameters: every part of the model is frozen")
    return torch.optim.AdamW(
        [
            {
                "params": g.params,
                "lr": cfg.base_lr * g.lr_factor,
                "initial_lr": cfg.base_lr * g.lr_factor,
                "weight_decay": g.weight_decay,
                "group_name": g.name,
            }
            for g in groups
        ],
        lr=cfg.base_lr,
        betas=cfg.betas,
        weight_decay=cfg.weight_decay,
    )


@dataclass(frozen=True)
class WarmupMultiStep:
    """Learning-rate factor at iteration i (detectron2 ``WarmupMultiStepLR``); picklable."""

    steps: tuple[int, ...]
    gamma: float
    warmup_iters: int
    warmup_factor: float
    warmup_method: str = "linear"

    def __call__(self, iteration: int) -> float:
        decay = self.gamma ** sum(1 for s in self.steps if s <= iteration)
        if iteration >= self.warmup_iters:
            return decay
        if self.warmup_method == "constant":
            warm = self.warmup_factor
        else:
            alpha = iteration / self.warmup_iters
            warm = self.warmup_factor * (1.0 - alpha) + alpha
        return decay * warm


def lr_factor(cfg: SolverConfig) -> WarmupMultiStep:
    """The learning-rate factor of the config's schedule."""
    return WarmupMultiStep(
        steps=tuple(cfg.steps),
        gamma=cfg.gamma,
        warmup_iters=cfg.warmup_iters,
        warmup_factor=cfg.warmup_factor,
        warmup_method=cfg.warmup_method,
    )


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: SolverConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-iteration schedule; call ``step()`` after every optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg))


def clip_gradients(params: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Full-model clipping: one L2 norm over every gradient; returns that norm before clipping
    (a tensor, so the caller decides when to synchronise with the device)."""
    grads = [p for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    if max_norm > 0:
        return torch.nn.utils.clip_grad_norm_(grads, max_norm)
    norms = [torch.linalg.vector_norm(p.grad.detach()) for p in grads if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms))


def autocast_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``solver.precision`` on ``device`` (None = fp32, no autocast)."""
    if mode == "fp32":
        return None
    if mode == "fp16":
        if device.type != "cuda":
            raise InputError("solver.precision: fp16 needs a CUDA device (use bf16 or fp32 on CPU)")
        return torch.float16
    if mode == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise InputError("solver.precision: this GPU does not support bf16 (use fp16)")
        return torch.bfloat16
    raise InputError(f"solver.precision: expected fp32, bf16 or fp16, got {mode!r}")
