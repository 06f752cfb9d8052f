"""Hungarian matchers: cost formula, permutation recovery, consistent and video-level matching."""

from __future__ import annotations

import pytest
import scipy.optimize
import torch
import torch.nn.functional as F

from vidpan.losses import matcher as matcher_module
from vidpan.losses.matcher import BLOCKED_QUERY_COST, HungarianMatcher, stack_frames
from vidpan.structures import ClipTargets

K = 6  # classes (+1 no-object logit)
LOGIT = 12.0


def blocks(h: int, w: int, boxes: list[tuple[int, int, int, int]]) -> torch.Tensor:
    """[len(boxes), h, w] bool masks from (y0, y1, x0, x1) boxes."""
    out = torch.zeros(len(boxes), h, w, dtype=torch.bool)
    for i, (y0, y1, x0, x1) in enumerate(boxes):
        out[i, y0:y1, x0:x1] = True
    return out


def upsample(masks: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """Nearest upsampling of bool masks [..., h, w] -> [..., h*f, w*f] (the input-resolution GT)."""
    return masks.repeat_interleave(factor, -2).repeat_interleave(factor, -1)


def class_logits_for(labels: list[int], num_queries: int) -> torch.Tensor:
    """[Q, K+1]: query i confidently predicts labels[i] (or no-object past the list)."""
    logits = torch.full((num_queries, K + 1), -LOGIT)
    for q in range(num_queries):
        logits[q, labels[q] if q < len(labels) else K] = LOGIT
    return logits


def test_cost_matrix_equals_explicit_formula() -> None:
    torch.manual_seed(0)
    q, m, h, w, p = 5, 3, 6, 8, 64
    class_logits = torch.randn(q, K + 1)
    mask_logits = torch.randn(q, h, w) * 3
    labels = torch.tensor([4, 0, 4])
    masks = torch.rand(m, 4 * h, 4 * w) > 0.6
    matcher = HungarianMatcher(class_weight=2.0, mask_weight=5.0, dice_weight=5.0, num_points=p)
    cost = matcher.cost_matrix(
        class_logits, mask_logits, labels, masks, generator=torch.Generator().manual_seed(1)
    )

    points = torch.rand(1, p, 2, generator=torch.Generator().manual_seed(1))[0]
    grid = (2 * points - 1)[None, :, None, :]  # [1, P, 1, 2]
    probs = class_logits.softmax(-1)
    expected = torch.zeros(q, m)
    for i in range(q):
        x = F.grid_sample(mask_logits[i][None, None], grid, align_corners=False).flatten()
        for j in range(m):
            t = F.grid_sample(masks[j].float()[None, None], grid, align_corners=False).flatten()
            bce = -(t * F.logsigmoid(x) + (1 - t) * F.logsigmoid(-x)).mean()
            s = x.sigmoid()
            dice = 1 - (2 * (s * t).sum() + 1) / (s.sum() + t.sum() + 1)
            expected[i, j] = 5 * bce + 2 * (-probs[i, labels[j]]) + 5 * dice
    torch.testing.assert_close(cost, expected, atol=1e-5, rtol=1e-5)


def test_cost_matrix_validation() -> None:
    matcher = HungarianMatcher(num_points=8)
    logits, masks = torch.randn(3, K + 1), torch.randn(3, 4, 4)
    with pytest.raises(ValueError, match="labels"):
        matcher.cost_matrix(logits, masks, torch.tensor([K]), torch.zeros(1, 16, 16, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        matcher.cost_matrix(logits, masks, torch.tensor([0]), torch.zeros(1, 16, 16))
    with pytest.raises(ValueError, match="aspect"):
        matcher.cost_matrix(logits, masks, torch.tensor([0]), torch.zeros(1, 16, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="all matching cost weights"):
        HungarianMatcher(class_weight=0, mask_weight=0, dice_weight=0)
    empty = matcher.cost_matrix(
        logits, masks, torch.zeros(0, dtype=torch.int64), torch.zeros(0, 16, 16).bool()
    )
    assert empty.shape == (3, 0)


def test_permuted_queries_are_matched_back() -> None:
    h, w, q = 8, 8, 7
    low = blocks(h, w, [(0, 4, 0, 4), (0, 4, 4, 8), (4, 8, 0, 8), (2, 6, 2, 6)])
    labels = torch.tensor([1, 3, 5, 1])  # two instances share a class: only masks tell them apart
    perm = torch.tensor([5, 2, 6, 0])  # instance j is predicted by query perm[j]
    class_logits = torch.full((1, q, K + 1), -LOGIT)
    class_logits[0, :, K] = LOGIT
    mask_logits = torch.full((1, q, h, w), -LOGIT)
    for j, qi in enumerate(perm.tolist()):
        class_logits[0, qi] = class_logits_for([int(labels[j])], 1)[0]
        mask_logits[0, qi] = torch.where(low[j], LOGIT, -LOGIT)
    matcher = HungarianMatcher(num_points=256)
    (match,) = matcher.match_frames(
        class_logits, mask_logits, [labels], [upsample(low)], generator=torch.Generator().manual_seed(0)
    )
    assert match.queries.dtype == match.targets.dtype == torch.int64
    assert dict(zip(match.targets.tolist(), match.queries.tolist(), strict=True)) == dict(
        enumerate(perm.tolist())
    )
    # scipy returns the query indices sorted.
    assert match.queries.tolist() == sorted(perm.tolist())


def _swap_clip() -> tuple[torch.Tensor, torch.Tensor, ClipTargets]:
    """T=3 clip, 2 instances: query 0 predicts A in frame 0 but B in frames 1-2 (and query 1 vice versa)."""
    h, w, t, q = 8, 8, 3, 4
    low = blocks(h, w, [(0, 8, 0, 4), (0, 8, 4, 8)])  # A left, B right
    labels = torch.tensor([2, 2])
    masks = upsample(low)[:, None].repeat(1, t, 1, 1)  # [M, T, H, W]
    class_logits = class_logits_for([2, 2], q)[None, None].repeat(1, t, 1, 1)  # [1, T, Q, K+1]
    mask_logits = torch.full((1, t, q, h, w), -LOGIT)
    for f in range(t):
        a, b = (0, 1) if f == 0 else (1, 0)
        mask_logits[0, f, a] = torch.where(low[0], LOGIT, -LOGIT)
        mask_logits[0, f, b] = torch.where(low[1], LOGIT, -LOGIT)
    return class_logits, mask_logits, ClipTargets(labels=labels, ids=torch.arange(2), masks=masks)


def test_consistent_matching_keeps_queries_through_the_clip() -> None:
    class_logits, mask_logits, clip = _swap_clip()
    matcher = HungarianMatcher(num_points=128)
    # Frame-by-frame matching would swap the queries in frames 1 and 2 ...
    per_frame = matcher.match_frames(
        class_logits[0], mask_logits[0], [clip.labels] * 3, list(clip.masks.unbind(1))
    )
    assert [dict(zip(m.targets.tolist(), m.queries.tolist(), strict=True)) for m in per_frame] == [
        {0: 0, 1: 1},
        {0: 1, 1: 0},
        {0: 1, 1: 0},
    ]
    # ... the consistent matcher decides once, on the first frame, for the whole clip.
    (match,) = matcher.match_clip_consistent(class_logits, mask_logits, [clip])
    assert dict(zip(match.targets.tolist(), match.queries.tolist(), strict=True)) == {0: 0, 1: 1}


def test_consistent_matching_late_instance_and_blocked_queries() -> None:
    h, w, t, q = 8, 8, 3, 5
    low = blocks(h, w, [(0, 4, 0, 8), (4, 8, 0, 4), (4, 8, 4, 8)])  # A, B, C
    labels = torch.tensor([0, 1, 3])
    masks = upsample(low)[:, None].repeat(1, t, 1, 1)
    masks[2, :2] = False  # C appears only in frame 2
    class_logits = torch.full((1, t, q, K + 1), -LOGIT)
    class_logits[..., K] = LOGIT
    mask_logits = torch.full((1, t, q, h, w), -LOGIT)
    for f in range(t):
        class_logits[0, f, 0] = class_logits_for([0], 1)[0]  # query 0 = A
        mask_logits[0, f, 0] = torch.where(low[0], LOGIT, -LOGIT)
        class_logits[0, f, 1] = class_logits_for([1], 1)[0]  # query 1 = B
        mask_logits[0, f, 1] = torch.where(low[1], LOGIT, -LOGIT)
    # Frame 2: query 0 predicts C perfectly (but is taken by A since frame 0), query 4 almost.
    class_logits[0, 2, 0] = class_logits_for([3], 1)[0]
    mask_logits[0, 2, 0] = torch.where(low[2], LOGIT, -LOGIT)
    class_logits[0, 2, 4] = class_logits_for([3], 1)[0]
    mask_logits[0, 2, 4] = torch.where(low[2], LOGIT / 2, -LOGIT / 2)
    # Frame 0: query 3 would be C's best match if C were matched there (its class, empty mask).
    class_logits[0, 0, 3] = class_logits_for([3], 1)[0]
    clip = ClipTargets(labels=labels, ids=torch.arange(3), masks=masks)
    matcher = HungarianMatcher(num_points=128)

    (match,) = matcher.match_clip_consistent(class_logits, mask_logits, [clip])
    assert match.targets.tolist() == [0, 1, 2]  # grouped by key frame: A, B at frame 0, then C
    assert match.queries.tolist() == [0, 1, 4]
    # DVIS++ VPS behaviour (ids never -1): everybody matched on frame 0, C goes to query 3.
    (first,) = matcher.match_clip_consistent(
        class_logits, mask_logits, [clip], match_on_first_visible_frame=False
    )
    assert dict(zip(first.targets.tolist(), first.queries.tolist(), strict=True)) == {0: 0, 1: 1, 2: 3}
    assert BLOCKED_QUERY_COST == 1e6


def test_consistent_matching_edge_cases() -> None:
    matcher = HungarianMatcher(num_points=16)
    empty = ClipTargets(
        labels=torch.zeros(0, dtype=torch.int64),
        ids=torch.zeros(0, dtype=torch.int64),
        masks=torch.zeros(0, 2, 8, 8, dtype=torch.bool),
    )
    (match,) = matcher.match_clip_consistent(torch.randn(1, 2, 3, K + 1), torch.randn(1, 2, 3, 2, 2), [empty])
    assert len(match) == 0 and match.queries.dtype == torch.int64
    too_many = ClipTargets(
        labels=torch.zeros(4, dtype=torch.int64),
        ids=torch.arange(4),
        masks=torch.ones(4, 2, 8, 8, dtype=torch.bool),
    )
    with pytest.raises(ValueError, match="instances for 3 queries"):
        matcher.match_clip_consistent(torch.randn(1, 2, 3, K + 1), torch.randn(1, 2, 3, 2, 2), [too_many])
    with pytest.raises(ValueError, match="target clips"):
        matcher.match_clip_consistent(torch.randn(2, 2, 3, K + 1), torch.randn(2, 2, 3, 2, 2), [empty])


def test_video_matching_differs_from_per_frame_matching() -> None:
    # Query 0 covers A in frames 0-1 and B in frame 2 (query 1 the reverse): per-frame matching of
    # frame 2 says "swap", the whole-clip cost says query 0 = A.
    h, w, t, q = 8, 8, 3, 3
    low = blocks(h, w, [(0, 8, 0, 4), (0, 8, 4, 8)])
    masks = upsample(low)[:, None].repeat(1, t, 1, 1)
    mask_logits = torch.full((1, t, q, h, w), -LOGIT)
    for f in range(t):
        a, b = (0, 1) if f < 2 else (1, 0)
        mask_logits[0, f, a] = torch.where(low[0], LOGIT, -LOGIT)
        mask_logits[0, f, b] = torch.where(low[1], LOGIT, -LOGIT)
    class_logits = class_logits_for([2, 2], q)[None]  # [1, Q, K+1] video-level
    clip = ClipTargets(labels=torch.tensor([2, 2]), ids=torch.arange(2), masks=masks)
    matcher = HungarianMatcher(num_points=64)
    (frame2,) = matcher.match_frames(class_logits, mask_logits[:, 2], [clip.labels], [masks[:, 2]])
    assert dict(zip(frame2.targets.tolist(), frame2.queries.tolist(), strict=True)) == {0: 1, 1: 0}
    (video,) = matcher.match_video(
        class_logits, mask_logits, [clip], generator=torch.Generator().manual_seed(0)
    )
    assert dict(zip(video.targets.tolist(), video.queries.tolist(), strict=True)) == {0: 0, 1: 1}


def test_video_matching_cost_uses_stacked_frames_and_t_times_the_points(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch.manual_seed(2)
    t, q, m, h, w, p = 3, 6, 4, 4, 6, 20
    class_logits = torch.randn(1, q, K + 1)
    mask_logits = torch.randn(1, t, q, h, w) * 2
    clip = ClipTargets(
        labels=torch.tensor([1, 5, 0, 1]), ids=torch.arange(m), masks=torch.rand(m, t, 4 * h, 4 * w) > 0.5
    )
    seen: list[torch.Tensor] = []
    original = matcher_module.solve_assignment
    monkeypatch.setattr(matcher_module, "solve_assignment", lambda c: seen.append(c.clone()) or original(c))
    matcher = HungarianMatcher(num_points=p)
    (match,) = matcher.match_video(
        class_logits, mask_logits, [clip], generator=torch.Generator().manual_seed(9)
    )
    # Independent: frames stacked vertically ('q t h w -> q (t h) w'), P*T shared points.
    pred = mask_logits[0].permute(1, 0, 2, 3).reshape(q, t * h, w)
    assert torch.equal(stack_frames(mask_logits[0].transpose(0, 1)), pred)
    gt = clip.masks.reshape(m, t * 4 * h, 4 * w).float()
    pts = torch.rand(1, p * t, 2, generator=torch.Generator().manual_seed(9))
    x = F.grid_sample(pred[:, None], (2 * pts - 1)[:, :, None].expand(q, -1, -1, -1), align_corners=False)[
        :, 0, :, 0
    ]
    y = F.grid_sample(gt[:, None], (2 * pts - 1)[:, :, None].expand(m, -1, -1, -1), align_corners=False)[
        :, 0, :, 0
    ]
    bce = torch.stack(
        [F.binary_cross_entropy_with_logits(x, yy.expand_as(x), reduction="none").mean(1) for yy in y], 1
    )
    s = x.sigmoid()
    dice = 1 - (2 * s @ y.T + 1) / (s.sum(1)[:, None] + y.sum(1)[None] + 1)
    cost = 5 * bce - 2 * class_logits[0].softmax(-1)[:, clip.labels] + 5 * dice
    (got,) = seen
    torch.testing.assert_close(got, cost, atol=1e-5, rtol=1e-5)
    rows, cols = scipy.optimize.linear_sum_assignment(cost.numpy())
    assert match.queries.tolist() == rows.tolist()
    assert match.targets.tolist() == cols.tolist()
