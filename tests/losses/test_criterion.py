"""SetCriterion behaviour: perfect predictions, no-object weight, deep supervision, gradients, normaliser."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vidpan.losses.criterion import (
    LossOutput,
    SetCriterion,
    dice_point_loss,
    num_masks_across_ranks,
    sigmoid_bce_point_loss,
)
from vidpan.losses.matcher import HungarianMatcher, MatchIndices
from vidpan.losses.prediction import VideoMaskPrediction
from vidpan.structures import ClipTargets

K = 6
LOGIT = 10.0


def _blocks(h: int, w: int, boxes: list[tuple[int, int, int, int]]) -> torch.Tensor:
    out = torch.zeros(len(boxes), h, w, dtype=torch.bool)
    for i, (y0, y1, x0, x1) in enumerate(boxes):
        out[i, y0:y1, x0:x1] = True
    return out


def _perfect_scene(
    batch: int = 2, frames: int = 2, queries: int = 6, h: int = 16, w: int = 16
) -> tuple[VideoMaskPrediction, list[ClipTargets], torch.Tensor]:
    """Query j predicts instance j (class and mask) with +-LOGIT; other queries say no-object.

    Returns the prediction, the targets (input resolution = 4x the logits) and the low-res masks.
    """
    low = _blocks(h, w, [(0, 8, 0, 8), (0, 8, 8, 16), (8, 16, 0, 16)])
    labels = torch.tensor([1, 3, 5])
    class_logits = torch.full((batch, frames, queries, K + 1), -LOGIT)
    class_logits[..., K] = LOGIT
    mask_logits = torch.full((batch, frames, queries, h, w), -LOGIT)
    for j in range(3):
        class_logits[:, :, j] = -LOGIT
        class_logits[:, :, j, labels[j]] = LOGIT
        mask_logits[:, :, j] = torch.where(low[j], LOGIT, -LOGIT)
    full = low.repeat_interleave(4, -2).repeat_interleave(4, -1)
    clips = [
        ClipTargets(labels=labels.clone(), ids=torch.arange(3), masks=full[:, None].repeat(1, frames, 1, 1))
        for _ in range(batch)
    ]
    return VideoMaskPrediction(class_logits, mask_logits), clips, low


def _criterion(**kwargs: float) -> SetCriterion:
    points = int(kwargs.pop("num_points", 300))
    return SetCriterion(
        num_classes=K, matcher=HungarianMatcher(num_points=points), num_points=points, **kwargs
    )  # type: ignore[arg-type]


@pytest.mark.parametrize("variant", ["image", "tracker", "refiner"])
def test_perfect_prediction_gives_near_zero_losses(variant: str) -> None:
    pred, targets, _ = _perfect_scene()
    # Uniform points: with importance sampling every point sits on a mask edge, where the
    # bilinearly sampled ground truth is fractional and no binary-looking prediction is perfect
    # (the reference has the same floor).
    crit = _criterion(importance_sample_ratio=0.0, oversample_ratio=1.0)
    fn = {"image": crit.image_losses, "tracker": crit.tracker_losses, "refiner": crit.refiner_losses}[variant]
    out = fn(pred, targets, generator=torch.Generator().manual_seed(0))
    assert out.terms["loss_ce"].item() < 1e-3
    assert out.terms["loss_mask"].item() < 0.05
    assert out.terms["loss_dice"].item() < 0.05
    # A prediction with the masks of instances 0 and 1 exchanged is far worse.
    swapped = pred.mask_logits.clone()
    swapped[:, :, [0, 1]] = swapped[:, :, [1, 0]]
    bad = fn(
        VideoMaskPrediction(pred.class_logits, swapped), targets, generator=torch.Generator().manual_seed(0)
    )
    assert bad.total.item() > 20 * out.total.item()


def test_matched_pairs_are_query_j_to_instance_j() -> None:
    pred, targets, _ = _perfect_scene()
    crit = _criterion()
    for out in (
        crit.image_losses(pred, targets),
        crit.tracker_losses(pred, targets),
        crit.refiner_losses(pred, targets),
    ):
        for m in out.matching:
            assert m.queries.tolist() == m.targets.tolist() == [0, 1, 2]


def test_no_object_weight_enters_as_a_class_weight_of_the_cross_entropy() -> None:
    torch.manual_seed(0)
    q = 5
    logits = torch.randn(1, q, K + 1)
    labels = [torch.tensor([2])]
    matching = [MatchIndices(queries=torch.tensor([3]), targets=torch.tensor([0]))]
    for eos in (0.1, 0.5, 1.0):
        crit = _criterion(no_object_weight=eos)
        assert crit.empty_weight.tolist() == pytest.approx([1.0] * K + [eos])
        got = crit.classification_loss(logits, labels, matching)
        nll = -logits[0].log_softmax(-1)
        # Weighted mean: (nll[matched, label] + eos * sum of no-object nll) / (1 + eos * (Q - 1)).
        others = [i for i in range(q) if i != 3]
        expected = (nll[3, 2] + eos * nll[others, K].sum()) / (1 + eos * (q - 1))
        assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    # No ground truth at all: the weight cancels (every term has the same weight).
    none = [
        MatchIndices(queries=torch.zeros(0, dtype=torch.int64), targets=torch.zeros(0, dtype=torch.int64))
    ]
    for eos in (0.1, 1.0):
        got = _criterion(no_object_weight=eos).classification_loss(
            logits, [torch.zeros(0, dtype=torch.int64)], none
        )
        assert got.item() == pytest.approx((-logits[0].log_softmax(-1)[:, K]).mean().item(), rel=1e-6)


@pytest.mark.parametrize("variant", ["image", "tracker", "refiner"])
def test_deep_supervision_terms_and_gradients(variant: str) -> None:
    torch.manual_seed(1)
    base, targets, _ = _perfect_scene()

    def noisy() -> VideoMaskPrediction:
        return VideoMaskPrediction(
            (base.class_logits + torch.randn_like(base.class_logits)).requires_grad_(),
            (base.mask_logits + 3 * torch.randn_like(base.mask_logits)).requires_grad_(),
        )

    pred = noisy()
    pred.aux = (noisy(), noisy(), noisy())
    crit = _criterion()
    fn = {"image": crit.image_losses, "tracker": crit.tracker_losses, "refiner": crit.refiner_losses}[variant]
    out = fn(pred, targets, generator=torch.Generator().manual_seed(0))
    assert isinstance(out, LossOutput)
    names = ["loss_ce", "loss_mask", "loss_dice"]
    expected = names + [f"{n}_aux{i}" for i in range(3) for n in names]
    assert list(out.terms) == expected
    assert out.weights == {
        k: {"loss_ce": 2.0, "loss_mask": 5.0, "loss_dice": 5.0}[k.split("_aux")[0]] for k in expected
    }
    total = sum(out.weights[k] * v for k, v in out.terms.items())
    torch.testing.assert_close(out.total, total)
    assert all(torch.isfinite(v) and v.dim() == 0 for v in out.terms.values())
    out.total.backward()
    for layer in pred.layers():
        assert layer.class_logits.grad is not None and layer.class_logits.grad.abs().sum() > 0
        assert layer.mask_logits.grad is not None and layer.mask_logits.grad.abs().sum() > 0
        if variant == "refiner":  # only frame 0 carries the (video-level) class vector
            assert layer.class_logits.grad[:, 1:].abs().sum() == 0


def test_given_matching_is_used_by_every_layer() -> None:
    pred, targets, _ = _perfect_scene()
    pred.aux = (VideoMaskPrediction(pred.class_logits.clone(), pred.mask_logits.clone()),)
    crit = _criterion()
    forced = [MatchIndices(queries=torch.tensor([1, 0, 2]), targets=torch.tensor([0, 1, 2]))] * 2
    for fn in (crit.tracker_losses, crit.refiner_losses):
        free = fn(pred, targets, generator=torch.Generator().manual_seed(0))
        given = fn(pred, targets, matching=forced, generator=torch.Generator().manual_seed(0))
        assert given.matching == forced
        # Wrong pairs are punished in the final layer and in the aux layer alike.
        for name in ("loss_mask", "loss_mask_aux0", "loss_ce", "loss_ce_aux0"):
            assert given.terms[name] > free.terms[name] + 0.5
    with pytest.raises(ValueError, match="given assignments"):
        crit.tracker_losses(pred, targets, matching=forced[:1])


def test_num_masks_normaliser_per_variant() -> None:
    pred, targets, _ = _perfect_scene(batch=2, frames=3)
    seen: list[float] = []

    def record(count: float, device: torch.device) -> float:
        seen.append(count)
        return num_masks_across_ranks(count, device)

    crit = SetCriterion(
        num_classes=K, matcher=HungarianMatcher(num_points=50), num_points=50, num_masks_fn=record
    )
    assert crit.image_losses(pred, targets).num_masks == 18.0  # 3 instances x 3 frames x 2 clips
    targets[0].masks[2, 1:] = False  # instance 2 of clip 0 absent from frames 1-2
    assert crit.image_losses(pred, targets, drop_absent=True).num_masks == 16.0
    assert crit.tracker_losses(pred, targets).num_masks == 18.0
    assert crit.refiner_losses(pred, targets).num_masks == 6.0
    assert seen == [18.0, 16.0, 18.0, 6.0]
    assert num_masks_across_ranks(0, torch.device("cpu")) == 1.0  # clamped to at least 1


def test_mask_losses_match_explicit_point_formulas() -> None:
    torch.manual_seed(3)
    logits, labels = torch.randn(4, 30), (torch.rand(4, 30) > 0.5).float()
    bce = sum(
        -(labels[r] * F.logsigmoid(logits[r]) + (1 - labels[r]) * F.logsigmoid(-logits[r])).mean()
        for r in range(4)
    )
    assert sigmoid_bce_point_loss(logits, labels, 2.5).item() == pytest.approx(float(bce) / 2.5, rel=1e-5)
    p = logits.sigmoid()
    dice = sum(1 - (2 * (p[r] * labels[r]).sum() + 1) / (p[r].sum() + labels[r].sum() + 1) for r in range(4))
    assert dice_point_loss(logits, labels, 2.5).item() == pytest.approx(float(dice) / 2.5, rel=1e-5)


def test_empty_targets_and_input_checks() -> None:
    pred, targets, _ = _perfect_scene(batch=1)
    empty = ClipTargets(
        labels=torch.zeros(0, dtype=torch.int64),
        ids=torch.zeros(0, dtype=torch.int64),
        masks=torch.zeros(0, 2, 64, 64, dtype=torch.bool),
    )
    pred.mask_logits.requires_grad_()
    crit = _criterion()
    for fn in (crit.image_losses, crit.tracker_losses, crit.refiner_losses):
        out = fn(pred, [empty])
        assert out.terms["loss_mask"].item() == 0.0 and out.terms["loss_dice"].item() == 0.0
        assert out.num_masks == 1.0
        out.total.backward()  # the graph stays connected
    with pytest.raises(ValueError, match="bool"):
        bad = ClipTargets(labels=targets[0].labels, ids=targets[0].ids, masks=targets[0].masks.float())
        crit.tracker_losses(pred, [bad])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=r"expected \[M, 2, H, W\]"):
        crit.image_losses(pred, [ClipTargets(targets[0].labels, targets[0].ids, targets[0].masks[:, :1])])
    with pytest.raises(ValueError, match="entries"):
        SetCriterion(num_classes=K + 1, matcher=HungarianMatcher(num_points=8), num_points=8).image_losses(
            pred, targets
        )


def test_generator_makes_losses_reproducible() -> None:
    torch.manual_seed(4)
    base, targets, _ = _perfect_scene()
    pred = VideoMaskPrediction(
        base.class_logits + torch.randn_like(base.class_logits), 3 * torch.randn_like(base.mask_logits)
    )
    crit = _criterion()
    a = crit.tracker_losses(pred, targets, generator=torch.Generator().manual_seed(7))
    torch.rand(100)  # the global RNG does not matter when a generator is given
    b = crit.tracker_losses(pred, targets, generator=torch.Generator().manual_seed(7))
    c = crit.tracker_losses(pred, targets, generator=torch.Generator().manual_seed(8))
    assert a.total.item() == b.total.item()
    assert a.total.item() != c.total.item()


def test_autocast_inputs_are_computed_in_float32() -> None:
    pred, targets, _ = _perfect_scene()
    half = VideoMaskPrediction(pred.class_logits.bfloat16(), pred.mask_logits.bfloat16())
    crit = _criterion()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = crit.tracker_losses(half, targets, generator=torch.Generator().manual_seed(0))
    ref = crit.tracker_losses(
        VideoMaskPrediction(half.class_logits.float(), half.mask_logits.float()),
        targets,
        generator=torch.Generator().manual_seed(0),
    )
    assert out.total.dtype == torch.float32
    assert out.total.item() == pytest.approx(ref.total.item(), rel=1e-6)
