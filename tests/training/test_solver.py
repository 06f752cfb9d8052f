"""Optimizer parameter groups (checked by parameter name), the learning-rate schedule, clipping."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vidpan.config import load_config
from vidpan.models.build import build_dvis
from vidpan.training.config import SolverConfig
from vidpan.training.solver import (
    WarmupMultiStep,
    build_optimizer,
    build_scheduler,
    clip_gradients,
    param_groups,
)


@pytest.fixture(scope="module")
def groups_by_name() -> dict[str, tuple[float, float]]:
    model = build_dvis(load_config("tiny").model)
    model.tracker.requires_grad_(False)  # a frozen part, as in the refiner stage
    cfg = SolverConfig(base_lr=1e-4, weight_decay=0.05, backbone_multiplier=0.1)
    return {n: (g.lr_factor, g.weight_decay) for g in param_groups(model, cfg) for n in g.names}


def test_frozen_parameters_are_not_optimised(groups_by_name: dict[str, tuple[float, float]]) -> None:
    assert not any(n.startswith("segmenter.backbone.vit.") for n in groups_by_name)  # frozen ViT
    assert not any(n.startswith("tracker.") for n in groups_by_name)
    assert any(n.startswith("refiner.") for n in groups_by_name)


@pytest.mark.parametrize(
    ("name", "lr_factor", "weight_decay"),
    [
        # ViT-Adapter: under segmenter.backbone. -> 0.1x learning rate.
        ("segmenter.backbone.spm.stem.0.weight", 0.1, 0.05),
        ("segmenter.backbone.interactions.0.extractor.attn.value_proj.weight", 0.1, 0.05),
        ("segmenter.backbone.interactions.0.extractor.attn.value_proj.bias", 0.1, 0.05),
        ("segmenter.backbone.up.weight", 0.1, 0.05),
        # Adapter norms (BatchNorm, LayerNorm) and its level embedding: no weight decay.
        ("segmenter.backbone.norm1.weight", 0.1, 0.0),
        ("segmenter.backbone.spm.stem.1.weight", 0.1, 0.0),  # BatchNorm of the spatial prior
        ("segmenter.backbone.norm4.bias", 0.1, 0.0),
        ("segmenter.backbone.interactions.0.extractor.query_norm.weight", 0.1, 0.0),
        ("segmenter.backbone.level_embed", 0.1, 0.0),
        # Head: full learning rate.
        ("segmenter.pixel_decoder.transformer.level_embed", 1.0, 0.0),
        ("segmenter.pixel_decoder.adapter_1.norm.weight", 1.0, 0.0),  # GroupNorm
        ("segmenter.pixel_decoder.adapter_1.weight", 1.0, 0.05),
        ("segmenter.decoder.query_feat.weight", 1.0, 0.0),  # nn.Embedding
        ("segmenter.decoder.query_embed.weight", 1.0, 0.0),
        ("segmenter.decoder.level_embed.weight", 1.0, 0.0),
        ("segmenter.decoder.decoder_norm.weight", 1.0, 0.0),
        ("segmenter.decoder.class_embed.weight", 1.0, 0.05),
        ("segmenter.decoder.class_embed.bias", 1.0, 0.05),
        ("refiner.decoder_norm.bias", 1.0, 0.0),
        ("refiner.conv_norms.0.weight", 1.0, 0.0),
        ("refiner.transformer_time_self_attention_layers.0.norm.weight", 1.0, 0.0),
        ("refiner.transformer_time_self_attention_layers.0.self_attn.in_proj_weight", 1.0, 0.05),
        ("refiner.class_embed.weight", 1.0, 0.05),
    ],
)
def test_parameter_group_rules(
    groups_by_name: dict[str, tuple[float, float]], name: str, lr_factor: float, weight_decay: float
) -> None:
    assert name in groups_by_name, f"{name} not optimised (names: {sorted(groups_by_name)[:5]}...)"
    assert groups_by_name[name] == (lr_factor, weight_decay)


def test_every_backbone_parameter_gets_the_multiplier(groups_by_name: dict[str, tuple[float, float]]) -> None:
    for name, (factor, _) in groups_by_name.items():
        assert factor == (0.1 if name.startswith("segmenter.backbone.") else 1.0), name


def test_optimizer_learning_rates_and_schedule() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3))
    cfg = SolverConfig(base_lr=1e-3, backbone_prefix="0.", backbone_multiplier=0.1, steps=(5, 8), gamma=0.5)
    cfg = SolverConfig(**{**cfg.__dict__, "warmup_iters": 4, "warmup_factor": 0.2})
    groups = param_groups(model, cfg)
    assert [g.name for g in groups] == ["backbone/decay", "head/norm"]
    opt = build_optimizer(groups, cfg)
    sched = build_scheduler(opt, cfg)
    lrs = []
    for _ in range(10):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    factor = WarmupMultiStep(steps=(5, 8), gamma=0.5, warmup_iters=4, warmup_factor=0.2)
    expected_factors = [0.2, 0.4, 0.6, 0.8, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]
    assert [factor(i) for i in range(10)] == pytest.approx(expected_factors)
    for i, (backbone_lr, head_lr) in enumerate(lrs):
        assert backbone_lr == pytest.approx(1e-4 * expected_factors[i])
        assert head_lr == pytest.approx(1e-3 * expected_factors[i])
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]


def test_dvis_warmup_factor_one_is_constant() -> None:
    factor = WarmupMultiStep(steps=(14000,), gamma=0.1, warmup_iters=10, warmup_factor=1.0)
    assert [factor(i) for i in (0, 5, 9, 10, 13999)] == [1.0] * 5
    assert factor(14000) == pytest.approx(0.1)


def test_full_model_gradient_clipping() -> None:
    a = nn.Parameter(torch.zeros(2))
    b = nn.Parameter(torch.zeros(1))
    a.grad = torch.tensor([3.0, 0.0])
    b.grad = torch.tensor([4.0])
    norm = clip_gradients([a, b], 0.01)
    assert float(norm) == pytest.approx(5.0)
    total = torch.cat([a.grad, b.grad]).norm()
    assert float(total) == pytest.approx(0.01, rel=1e-4)  # one norm over all parameters
    assert float(a.grad[0] / b.grad[0]) == pytest.approx(0.75)  # direction kept
    c = nn.Parameter(torch.zeros(1))
    c.grad = torch.tensor([2.0])
    assert float(clip_gradients([c], 0.0)) == pytest.approx(2.0)  # 0 = no clipping
    assert float(c.grad) == 2.0
