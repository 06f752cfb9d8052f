"""vidpan's losses against an independent re-statement of the DVIS++ / Mask2Former formulas.

The reference side below is written from the reference's description, in its own layouts
(``pred_logits`` [(B T), Q, K+1], ``pred_masks`` [(B T), Q, 1, h, w] or [B, Q, 1, T*h, w], targets as
lists of per-frame dicts, float ground truth sampled with ``grid_sample``) and the global RNG, in
the reference's order of draws. vidpan is run with ``generator=None`` from the same seed, so both
draw the same points; the results must agree to float rounding.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from vidpan.losses.criterion import SetCriterion
from vidpan.losses.matcher import HungarianMatcher
from vidpan.losses.prediction import VideoMaskPrediction
from vidpan.losses.schedule import match_on_frozen_segmenter, match_on_frozen_tracker
from vidpan.structures import ClipTargets

K, Q, H4, W4 = 5, 7, 6, 8  # classes, queries, logit grid (targets at 4x)
P, OVERSAMPLE, IMPORTANCE = 24, 3.0, 0.75
W_CLASS, W_MASK, W_DICE, EOS = 2.0, 5.0, 5.0, 0.1


# ------------------------------------------------------------------ reference re-statement


def ref_point_sample(x: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    return F.grid_sample(x, 2.0 * coords.unsqueeze(2) - 1.0, align_corners=False).squeeze(3)


def ref_uncertain_points(logits: torch.Tensor, num_points: int) -> torch.Tensor:
    n = logits.shape[0]
    sampled = int(num_points * OVERSAMPLE)
    coords = torch.rand(n, sampled, 2)
    unc = -ref_point_sample(logits, coords).abs()
    k = int(IMPORTANCE * num_points)
    idx = torch.topk(unc[:, 0, :], k=k, dim=1)[1] + sampled * torch.arange(n)[:, None]
    coords = coords.view(-1, 2)[idx.view(-1), :].view(n, k, 2)
    return torch.cat([coords, torch.rand(n, num_points - k, 2)], dim=1)


def ref_cost(
    logits: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor, gt: torch.Tensor, npts: int
) -> Any:
    """logits [Q, K+1], masks [Q, 1, h, w], gt [M, 1, H, W] float -> cost [Q, M] on CPU."""
    prob = logits.softmax(-1)
    cost_class = -prob[:, labels]
    pts = torch.rand(1, npts, 2)
    t = ref_point_sample(gt, pts.repeat(gt.shape[0], 1, 1)).flatten(1)
    o = ref_point_sample(masks, pts.repeat(masks.shape[0], 1, 1)).flatten(1)
    pos = F.binary_cross_entropy_with_logits(o, torch.ones_like(o), reduction="none")
    neg = F.binary_cross_entropy_with_logits(o, torch.zeros_like(o), reduction="none")
    cost_mask = (torch.einsum("nc,mc->nm", pos, t) + torch.einsum("nc,mc->nm", neg, 1 - t)) / o.shape[1]
    s = o.sigmoid()
    cost_dice = 1 - (2 * torch.einsum("nc,mc->nm", s, t) + 1) / (s.sum(-1)[:, None] + t.sum(-1)[None, :] + 1)
    return W_MASK * cost_mask + W_CLASS * cost_class + W_DICE * cost_dice


def ref_matcher_video(
    out: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]], npts: int
) -> list:
    res = []
    for b in range(out["pred_logits"].shape[0]):
        c = ref_cost(
            out["pred_logits"][b], out["pred_masks"][b], targets[b]["labels"], targets[b]["masks"], npts
        )
        i, j = linear_sum_assignment(c)
        res.append((torch.as_tensor(i, dtype=torch.int64), torch.as_tensor(j, dtype=torch.int64)))
    return res


def ref_matcher_consistent(
    out: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]], frames: int
) -> list:
    res: list = []
    for b in range(out["pred_logits"].shape[0] // frames):
        first: dict[int, int] = {}
        for f in range(frames):
            for v in torch.nonzero(targets[b * frames + f]["ids"].squeeze(1) != -1).flatten().tolist():
                first.setdefault(v, f)
        by_frame: dict[int, list[int]] = {}
        for v, f in first.items():
            by_frame.setdefault(f, []).append(v)
        used: list[int] = []
        qi: list[int] = []
        ti: list[int] = []
        for f in sorted(by_frame):
            n = b * frames + f
            sel = by_frame[f]
            c = ref_cost(
                out["pred_logits"][n],
                out["pred_masks"][n],
                targets[n]["labels"][sel],
                targets[n]["masks"][sel],
                P,
            )
            if used:
                c[used, :] = 1e6
            i, j = linear_sum_assignment(c)
            used += list(i)
            qi += list(i)
            ti += [sel[x] for x in j]
        res += [(torch.as_tensor(qi, dtype=torch.int64), torch.as_tensor(ti, dtype=torch.int64))] * frames
    return res


def ref_criterion(
    outputs: dict[str, Any],
    targets: list[dict[str, torch.Tensor]],
    matcher: Any,
    npts: int,
    matcher_outputs: Any = None,
) -> dict[str, torch.Tensor]:
    empty_weight = torch.ones(K + 1)
    empty_weight[-1] = EOS
    num_masks = max(float(sum(len(t["labels"]) for t in targets)), 1.0)

    def losses(out: dict[str, torch.Tensor], indices: list) -> dict[str, torch.Tensor]:
        src_logits = out["pred_logits"].float()
        batch_idx = torch.cat([torch.full_like(s, i) for i, (s, _) in enumerate(indices)])
        src_idx = torch.cat([s for s, _ in indices])
        tc = torch.full(src_logits.shape[:2], K, dtype=torch.int64)
        tc[batch_idx, src_idx] = torch.cat(
            [t["labels"][j] for t, (_, j) in zip(targets, indices, strict=True)]
        )
        loss_ce = F.cross_entropy(src_logits.transpose(1, 2), tc, empty_weight)
        src = out["pred_masks"][batch_idx, src_idx].flatten(0, 1)[:, None]
        tgt = torch.cat([t["masks"][j] for t, (_, j) in zip(targets, indices, strict=True)]).flatten(0, 1)[
            :, None
        ]
        with torch.no_grad():
            pts = ref_uncertain_points(src, npts)
            lab = ref_point_sample(tgt, pts).squeeze(1)
        lg = ref_point_sample(src, pts).squeeze(1)
        bce = F.binary_cross_entropy_with_logits(lg, lab, reduction="none").mean(1).sum() / num_masks
        p = lg.sigmoid()
        dice = (1 - (2 * (p * lab).sum(-1) + 1) / (p.sum(-1) + lab.sum(-1) + 1)).sum() / num_masks
        return {"loss_ce": loss_ce, "loss_mask": bce, "loss_dice": dice}

    main = {k: v for k, v in outputs.items() if k != "aux_outputs"}
    indices = matcher(main if matcher_outputs is None else matcher_outputs, targets)
    result = losses(outputs, indices)
    for i, aux in enumerate(outputs.get("aux_outputs", [])):
        if matcher_outputs is None:
            indices = matcher(aux, targets)
        result.update({f"{k}_{i}": v for k, v in losses(aux, indices).items()})
    return result


# ------------------------------------------------------------------ scene and layout conversion


def make_scene(
    seed: int, batch: int, frames: int, n_aux: int
) -> tuple[VideoMaskPrediction, list[ClipTargets]]:
    g = torch.Generator().manual_seed(seed)

    def layer() -> VideoMaskPrediction:
        return VideoMaskPrediction(
            torch.randn(batch, frames, Q, K + 1, generator=g) * 2,
            torch.randn(batch, frames, Q, H4, W4, generator=g) * 4,
        )

    pred = layer()
    pred.aux = tuple(layer() for _ in range(n_aux))
    clips = []
    for b in range(batch):
        m = 3 + b
        low = torch.rand(m, frames, H4, W4, generator=g) > 0.55
        masks = low.repeat_interleave(4, -2).repeat_interleave(4, -1)
        masks[0, 0] = False  # instance 0 appears late (frame 1 on)
        clips.append(
            ClipTargets(labels=torch.randint(0, K, (m,), generator=g), ids=torch.arange(m), masks=masks)
        )
    return pred, clips


def to_frame_outputs(layer: VideoMaskPrediction) -> dict[str, Any]:
    """DVIS++ online 'b t q c -> (b t) q c' and 'b q t h w -> (b t) q () h w' from batch-first tensors."""
    return {
        "pred_logits": layer.class_logits.flatten(0, 1),
        "pred_masks": layer.mask_logits.flatten(0, 1)[:, :, None],
    }


def to_video_outputs(layer: VideoMaskPrediction, reduce: str) -> dict[str, Any]:
    """DVIS++ offline: logits [:, 0] (refiner) or mean over T (tracker), 'b q t h w -> b q () (t h) w'."""
    b, t, q, h, w = layer.mask_logits.shape
    logits = layer.class_logits[:, 0] if reduce == "first" else layer.class_logits.mean(1)
    masks = layer.mask_logits.permute(0, 2, 1, 3, 4).reshape(b, q, 1, t * h, w)
    return {"pred_logits": logits, "pred_masks": masks}


def frame_targets(clips: list[ClipTargets], vis_ids: bool) -> list[dict[str, torch.Tensor]]:
    """Per-frame target dicts as ``frame_decoder_loss_reshape`` builds them (all clip instances per frame).

    ``vis_ids``: ids -1 where the instance is absent (VIS mappers); else never -1 (VPS mapper).
    """
    out = []
    for clip in clips:
        for f in range(clip.masks.shape[1]):
            ids = torch.where(clip.present[:, f], clip.ids, -1) if vis_ids else clip.ids
            out.append({"labels": clip.labels, "ids": ids[:, None], "masks": clip.masks[:, [f]].float()})
    return out


def video_targets(clips: list[ClipTargets]) -> list[dict[str, torch.Tensor]]:
    return [
        {"labels": c.labels, "masks": c.masks.float().reshape(c.masks.shape[0], 1, -1, c.masks.shape[-1])}
        for c in clips
    ]


def criterion() -> SetCriterion:
    matcher = HungarianMatcher(class_weight=W_CLASS, mask_weight=W_MASK, dice_weight=W_DICE, num_points=P)
    return SetCriterion(
        num_classes=K,
        matcher=matcher,
        class_weight=W_CLASS,
        mask_weight=W_MASK,
        dice_weight=W_DICE,
        no_object_weight=EOS,
        num_points=P,
        oversample_ratio=OVERSAMPLE,
        importance_sample_ratio=IMPORTANCE,
    )


def compare(ours: Any, ref: dict[str, torch.Tensor]) -> None:
    renamed = {k.replace("_aux", "_"): v for k, v in ours.terms.items()}
    assert set(renamed) == set(ref)
    for k in ref:
        assert renamed[k].item() == pytest.approx(ref[k].item(), rel=1e-5, abs=1e-6), k
    weights = {"loss_ce": W_CLASS, "loss_mask": W_MASK, "loss_dice": W_DICE}
    total = sum(weights[k.rsplit("_", 1)[0] if k[-1].isdigit() else k] * v for k, v in ref.items())
    assert ours.total.item() == pytest.approx(float(total), rel=1e-5)


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("seed", [0, 1])
def test_image_losses_equal_reference_formulas(seed: int) -> None:
    pred, clips = make_scene(seed, batch=2, frames=2, n_aux=2)
    torch.manual_seed(100 + seed)
    ours = criterion().image_losses(pred, clips)
    torch.manual_seed(100 + seed)
    outputs = to_frame_outputs(pred)
    outputs["aux_outputs"] = [to_frame_outputs(a) for a in pred.aux]
    ref = ref_criterion(
        outputs, frame_targets(clips, vis_ids=False), lambda o, t: ref_matcher_video(o, t, P), P
    )
    compare(ours, ref)


@pytest.mark.parametrize("vis_ids", [True, False])
def test_tracker_losses_equal_reference_formulas(vis_ids: bool) -> None:
    frames = 3
    pred, clips = make_scene(2, batch=2, frames=frames, n_aux=2)
    torch.manual_seed(7)
    ours = criterion().tracker_losses(pred, clips, match_on_first_visible_frame=vis_ids)
    torch.manual_seed(7)
    outputs = to_frame_outputs(pred)
    outputs["aux_outputs"] = [to_frame_outputs(a) for a in pred.aux]
    ref = ref_criterion(
        outputs, frame_targets(clips, vis_ids), lambda o, t: ref_matcher_consistent(o, t, frames), P
    )
    compare(ours, ref)


def test_tracker_first_half_equals_reference_reset_image_output_order() -> None:
    frames = 3
    pred, clips = make_scene(3, batch=1, frames=frames, n_aux=2)
    segmenter, _ = make_scene(4, batch=1, frames=frames, n_aux=0)
    g = torch.Generator().manual_seed(5)
    perm = torch.stack([torch.randperm(Q, generator=g) for _ in range(frames)])[None]  # [1, T, Q]
    torch.manual_seed(8)
    crit = criterion()
    matching = match_on_frozen_segmenter(crit.matcher, segmenter, perm, clips)
    ours = crit.tracker_losses(pred, clips, matching=matching)
    torch.manual_seed(8)
    # reset_image_output_order on the reference layouts: masks (q, t, h, w) indexed [perm, frame].
    seg_masks = segmenter.mask_logits.permute(0, 2, 1, 3, 4)[0]  # [Q, T, h, w]
    seg_logits = segmenter.class_logits[0]  # [T, Q, K+1]
    frame_idx = torch.arange(frames)[:, None].repeat(1, Q)
    reordered_masks = seg_masks[perm[0], frame_idx].transpose(0, 1)  # (t, q, h, w) -> (q, t, h, w)
    reordered_logits = seg_logits[frame_idx, perm[0]]
    image_outputs = {
        "pred_logits": reordered_logits,  # (b t) q c with b = 1
        "pred_masks": reordered_masks.transpose(0, 1)[:, :, None],  # (b t) q () h w
    }
    outputs = to_frame_outputs(pred)
    outputs["aux_outputs"] = [to_frame_outputs(a) for a in pred.aux]
    ref = ref_criterion(
        outputs,
        frame_targets(clips, vis_ids=True),
        lambda o, t: ref_matcher_consistent(o, t, frames),
        P,
        matcher_outputs=image_outputs,
    )
    compare(ours, ref)


@pytest.mark.parametrize("first_half", [False, True])
def test_refiner_losses_equal_reference_formulas(first_half: bool) -> None:
    frames = 3
    pred, clips = make_scene(6, batch=2, frames=frames, n_aux=2)
    tracker, _ = make_scene(9, batch=2, frames=frames, n_aux=0)
    crit = criterion()
    torch.manual_seed(11)
    matching = match_on_frozen_tracker(crit.matcher, tracker, clips) if first_half else None
    ours = crit.refiner_losses(pred, clips, matching=matching)
    torch.manual_seed(11)
    outputs = to_video_outputs(pred, "first")
    outputs["aux_outputs"] = [to_video_outputs(a, "first") for a in pred.aux]
    ref = ref_criterion(
        outputs,
        video_targets(clips),
        lambda o, t: ref_matcher_video(o, t, P * frames),
        P * frames,
        matcher_outputs=to_video_outputs(tracker, "mean") if first_half else None,
    )
    compare(ours, ref)
