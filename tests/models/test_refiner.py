"""TemporalRefiner: parity with the DVIS++ fixture and structural properties."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from vidpan.config import RefinerConfig
from vidpan.models.refiner import TemporalRefiner, build_refiner

ATOL = 1e-4


def to_btqc(x: torch.Tensor) -> torch.Tensor:
    """Reference embeddings (B, C, T, Q) -> [B, T, Q, C]."""
    return x.permute(0, 2, 3, 1)


def test_refiner_parity(dvis_fixture: Path) -> None:
    meta = json.loads((dvis_fixture / "meta.json").read_text())
    outputs = load_file(dvis_fixture / "outputs.safetensors")
    weights = load_file(dvis_fixture / "weights.safetensors")
    cfg = meta["config"]
    config = RefinerConfig(
        hidden_dim=cfg["refiner"]["hidden"],
        num_layers=cfg["refiner"]["layers"],
        num_heads=cfg["refiner"]["nheads"],
        dim_feedforward=cfg["refiner"]["dim_feedforward"],
        mask_window=cfg["refiner"]["windows"],
    )
    refiner = build_refiner(
        config, num_classes=cfg["decoder"]["num_classes"], mask_dim=cfg["refiner"]["mask_dim"]
    )
    # DVIS++ -> vidpan: strip the "refiner." prefix (names below it are identical).
    state = {k.removeprefix("refiner."): v for k, v in weights.items() if k.startswith("refiner.")}
    refiner.load_state_dict(state, strict=True)
    refiner.eval()

    n = meta["windows"]["n_windows"]
    instance = torch.cat([to_btqc(outputs[f"tracker.w{i}.pred_embds"]) for i in range(n)], dim=1)
    frame = torch.cat([to_btqc(outputs[f"segmenter.w{i}.pred_embds_without_norm"]) for i in range(n)], dim=1)
    mask_features = torch.cat([outputs[f"segmenter.w{i}.mask_features"] for i in range(n)], dim=0)[None]
    assert instance.shape[1] == meta["config"]["frames"]
    with torch.no_grad():
        out = refiner(instance, frame, mask_features)
    assert out.mask_logits is not None
    diffs = {
        "pred_logits": float((out.class_logits - outputs["refiner.pred_logits"]).abs().max()),
        "pred_masks": float((out.mask_logits - outputs["refiner.pred_masks"].transpose(1, 2)).abs().max()),
        "pred_embds": float((out.embeds - to_btqc(outputs["refiner.pred_embds"])).abs().max()),
    }
    assert all(d <= ATOL for d in diffs.values()), diffs


def small_refiner(**kwargs: Any) -> TemporalRefiner:
    torch.manual_seed(0)
    args: dict[str, Any] = dict(
        hidden_dim=16, num_layers=2, num_heads=2, dim_feedforward=32, mask_dim=8, num_classes=5, mask_window=2
    )
    args.update(kwargs)
    return TemporalRefiner(**args)


def test_refiner_mask_window_and_video_level_class() -> None:
    g = torch.Generator().manual_seed(0)
    instance = torch.randn(2, 5, 4, 16, generator=g)
    frame = torch.randn(2, 5, 4, 16, generator=g)
    mf = torch.randn(2, 5, 8, 6, 7, generator=g)
    a = small_refiner(mask_window=1).eval()
    b = small_refiner(mask_window=5).eval()
    with torch.no_grad():
        out_a, out_b = a(instance, frame, mf), b(instance, frame, mf)
        no_masks = a(instance, frame, None)
    assert out_a.mask_logits is not None and out_b.mask_logits is not None
    assert out_a.mask_logits.shape == (2, 5, 4, 6, 7)
    assert torch.allclose(out_a.mask_logits, out_b.mask_logits, atol=1e-6)
    assert no_masks.mask_logits is None
    # One class vector per track, repeated over the frames.
    assert torch.equal(out_a.class_logits, out_a.class_logits[:, :1].expand_as(out_a.class_logits))
    # Batch elements are independent.
    with torch.no_grad():
        single = a(instance[1:], frame[1:], mf[1:])
    assert torch.allclose(single.embeds[0], out_a.embeds[1], atol=1e-5)


def test_refiner_temporal_mixing_and_single_frame() -> None:
    refiner = small_refiner().eval()
    g = torch.Generator().manual_seed(1)
    instance = torch.randn(1, 4, 3, 16, generator=g)
    frame = torch.randn(1, 4, 3, 16, generator=g)
    changed = instance.clone()
    changed[:, 3] += 1.0
    with torch.no_grad():
        base = refiner(instance, frame, None)
        other = refiner(changed, frame, None)
        one = refiner(instance[:, :1], frame[:, :1], None)  # replicate padding works for T = 1
    # Changing the last frame changes frame 0 (temporal attention and conv mix frames).
    assert not torch.allclose(base.embeds[:, 0], other.embeds[:, 0], atol=1e-4)
    assert one.embeds.shape == (1, 1, 3, 16)


def test_refiner_training_outputs_deep_supervision() -> None:
    refiner = small_refiner(num_layers=3).train()
    g = torch.Generator().manual_seed(2)
    instance = torch.randn(1, 3, 4, 16, generator=g, requires_grad=True)
    frame = torch.randn(1, 3, 4, 16, generator=g)
    mf = torch.randn(1, 3, 8, 5, 5, generator=g)
    out = refiner(instance, frame, mf)
    assert len(out.aux) == 2
    for pred in (*out.aux, out):
        assert pred.class_logits.shape == (1, 3, 4, 6)
        assert pred.mask_logits is not None and pred.mask_logits.shape == (1, 3, 4, 5, 5)
    assert out.mask_logits is not None
    (out.class_logits.sum() + out.mask_logits.sum()).backward()
    assert instance.grad is not None and bool(instance.grad.abs().sum() > 0)
