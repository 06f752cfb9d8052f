"""Each stage kind trains a few iterations on the synthetic benchmark: finite losses, the trained
parameters move, the frozen ones (and the frozen modules' buffers) do not, frozen modules stay in
eval mode without gradients; batches are padded the way the segmenter expects."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from training_helpers import smoke_config

from vidpan.data.synthetic import SyntheticDataset
from vidpan.models.build import build_dvis
from vidpan.models.checkpoint import save_native
from vidpan.structures import ClipSample, ClipTargets
from vidpan.training.stages import STAGE_KINDS, prepare_batch
from vidpan.training.trainer import Trainer

# The segmenter's re-id branch only feeds the tracker: frozen in the segmenter stage.
REID = "segmenter.decoder.reid_embed."


def _init_file(cfg_stage: str, synth: SyntheticDataset, tmp_path: Path) -> str:
    """A native checkpoint holding the parts that precede the stage (random weights)."""
    cfg = smoke_config(synth, tmp_path / "probe", "segmenter")
    parts = {"tracker": ("segmenter",), "refiner": ("segmenter", "tracker")}[cfg_stage]
    torch.manual_seed(123)
    model = build_dvis(cfg.model, parts=parts)
    path = tmp_path / f"init_{cfg_stage}.safetensors"
    save_native(path, model.state_dict(), cfg.model_config())
    return str(path)


@pytest.mark.parametrize("stage", ["segmenter", "tracker", "refiner", "vss"])
def test_stage_trains_only_its_parts(stage: str, synth: SyntheticDataset, tmp_path: Path) -> None:
    kind = {"vss": "refiner"}.get(stage, stage)
    overrides = ["solver.max_iter=4", "solver.warmup_iters=0"]
    if kind != "segmenter":
        overrides.append(f"stage.init={_init_file(kind, synth, tmp_path)}")
    cfg = smoke_config(synth, tmp_path / "run", stage, overrides)
    spec = STAGE_KINDS[cfg.stage.kind]
    trainer = Trainer(cfg)
    model = trainer.model
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trained_names = {n for g in trainer.groups for n in g.names}
    batches = trainer.batches()
    for _ in range(2):
        result = trainer.train_step(trainer.prepare(next(batches)))
        assert torch.isfinite(result.loss.total)
        assert result.loss.total.item() > 0
        assert {"loss_ce", "loss_mask", "loss_dice", "loss_ce_aux0"} <= set(result.loss.terms)
        for part in spec.frozen:
            module = getattr(model, part)
            assert not any(m.training for m in module.modules()), f"{part} left training mode"
            assert all(not p.requires_grad and p.grad is None for p in module.parameters())
        vit = model.segmenter.backbone.vit
        assert not vit.training
        assert all(not p.requires_grad and p.grad is None for p in vit.parameters())
    after = model.state_dict()

    # The trained names are exactly the parameters of the trained parts, minus the frozen ViT
    # (and the re-id branch in the segmenter stage).
    frozen_prefixes = (*[f"{p}." for p in spec.frozen], "segmenter.backbone.vit.", *spec.frozen_prefixes)
    expected_trained = {
        n
        for n, p in model.named_parameters()
        if n.split(".")[0] in spec.trained and not n.startswith(frozen_prefixes)
    }
    assert trained_names == expected_trained
    if kind == "segmenter":
        assert spec.frozen_prefixes == (REID,)
        assert any(n.startswith(REID) for n, _ in model.named_parameters())
        assert not any(n.startswith(REID) for n in trained_names)
    unchanged_trained = sorted(n for n in trained_names if torch.equal(before[n], after[n]))
    assert unchanged_trained == []
    moved_frozen = [
        k for k in before if k.startswith(frozen_prefixes) and not torch.equal(before[k], after[k])
    ]
    assert moved_frozen == [], moved_frozen  # parameters and buffers (BN statistics) alike


def test_trained_batchnorm_statistics_update_in_segmenter_stage(
    synth: SyntheticDataset, tmp_path: Path
) -> None:
    cfg = smoke_config(synth, tmp_path, "segmenter")
    trainer = Trainer(cfg)
    key = "segmenter.backbone.norm1.running_mean"
    before = trainer.model.state_dict()[key].clone()
    trainer.train_step(trainer.prepare(next(trainer.batches())))
    assert not torch.equal(before, trainer.model.state_dict()[key])


def _clip(h: int, w: int, t: int, m: int) -> ClipSample:
    frames = torch.randint(0, 256, (t, 3, h, w), dtype=torch.uint8)
    masks = torch.zeros(m, t, h, w, dtype=torch.bool)
    for i in range(m):
        masks[i, :, i % h, :] = True
    return ClipSample(
        video_id=f"v{h}x{w}",
        frame_names=[str(i) for i in range(t)],
        frames=frames,
        targets=ClipTargets(labels=torch.arange(m), ids=torch.arange(m) + 1, masks=masks),
    )


def test_prepare_batch_pads_frames_with_the_mean_and_masks_to_the_divisibility() -> None:
    mean = (123.675, 116.28, 103.53)
    clips = [_clip(40, 50, 2, 3), _clip(30, 70, 2, 5)]
    batch = prepare_batch(
        clips,
        pixel_mean=mean,
        size_divisibility=32,
        device=torch.device("cpu"),
        max_instances=4,
    )
    assert batch.frames.shape == (4, 3, 40, 70)  # [B*T, 3, max H, max W], b-major
    assert batch.clips == 2 and batch.frames_per_clip == 2
    # Clip 0 occupies frames 0-1 top-left; its padding holds the mean (normalises to 0).
    assert torch.all(batch.frames[0:2, :, :, 50:] == torch.tensor(mean).view(1, 3, 1, 1))
    assert torch.all(batch.frames[2:4, :, 30:, :] == torch.tensor(mean).view(1, 3, 1, 1))
    assert torch.equal(batch.frames[0:2, :, :40, :50], clips[0].frames.float())
    assert torch.equal(batch.frames[2:4, :, :30, :70], clips[1].frames.float())
    assert torch.equal(batch.targets[0].masks[:, :, :40, :50], clips[0].targets.masks)
    for t in batch.targets:
        assert t.masks.shape[-2:] == (64, 96)  # the segmenter pads 40x70 to 64x96
    assert batch.targets[0].masks.shape[0] == 3
    assert batch.targets[1].masks.shape[0] == 4  # truncated to max_instances
    assert batch.targets[1].labels.tolist() == [0, 1, 2, 3]
    assert not batch.targets[0].masks[..., 40:, :].any() and not batch.targets[0].masks[..., 50:].any()


def test_prepare_batch_normalises_padding_to_zero() -> None:
    """The padded region is 0 after the segmenter's normalisation, like detectron2's ImageList."""
    from vidpan.config import load_config
    from vidpan.models.build import build_model_segmenter

    model_cfg = load_config("tiny").model
    segmenter = build_model_segmenter(model_cfg)
    batch = prepare_batch(
        [_clip(40, 50, 1, 1), _clip(30, 70, 1, 1)],
        pixel_mean=model_cfg.pixel_mean,
        size_divisibility=32,
        device=torch.device("cpu"),
    )
    x, _ = segmenter.preprocess(batch.frames)
    assert x.shape[-2:] == (64, 96)
    assert torch.allclose(x[0, :, :, 50:], torch.zeros(()), atol=1e-5)
    assert torch.allclose(x[1, :, 30:, :], torch.zeros(()), atol=1e-5)


@pytest.mark.parametrize("stage", ["segmenter", "refiner"])
def test_bf16_autocast_on_cpu(stage: str, synth: SyntheticDataset, tmp_path: Path) -> None:
    overrides = ["solver.precision=bf16"]
    if stage == "refiner":
        overrides.append(f"stage.init={_init_file('refiner', synth, tmp_path)}")
    trainer = Trainer(smoke_config(synth, tmp_path / "run", stage, overrides))
    assert trainer.amp_dtype == torch.bfloat16
    result = trainer.train_step(trainer.prepare(next(trainer.batches())))
    assert torch.isfinite(result.loss.total) and result.loss.total.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # autocast, not a cast
