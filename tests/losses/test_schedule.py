"""First-half matching schedule: the switch, the tracker re-ordering (fixture parity), frozen-stage matching."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file

from vidpan.losses.criterion import SetCriterion, num_masks_across_ranks
from vidpan.losses.matcher import HungarianMatcher
from vidpan.losses.prediction import VideoMaskPrediction
from vidpan.losses.schedule import (
    match_on_frozen_segmenter,
    match_on_frozen_tracker,
    reorder_queries,
    use_frozen_stage_matching,
)
from vidpan.structures import ClipTargets


def test_use_frozen_stage_matching_is_the_first_half() -> None:
    assert [use_frozen_stage_matching(i, 10) for i in range(10)] == [True] * 5 + [False] * 5
    # Odd totals: max_iter // 2 iterations in the first half (DVIS++ `iter < MAX_ITER // 2`).
    assert [use_frozen_stage_matching(i, 5) for i in range(5)] == [True, True, False, False, False]
    assert use_frozen_stage_matching(0, 1) is False


def _fixture_segmenter(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    meta = json.loads((path / "meta.json").read_text())
    return load_file(str(path / "outputs.safetensors")), meta


def test_reorder_queries_parity_with_fixture_tracker_permutations(dvis_fixture: Path) -> None:
    """The reference tracker, run on a query-shuffled segmenter, undoes the shuffle through its
    permutations: re-ordering the shuffled segmenter predictions by them must give back the
    original predictions in the slot order of frame 0 (the segmenter keeps its order over time)."""
    out, meta = _fixture_segmenter(dvis_fixture)
    windows = meta["windows"]["n_windows"]
    # Reference layouts: logits (1, t, q, c), masks (1, q, t, h, w) -> batch-first [1, T, Q, ...].
    logits = torch.cat([out[f"segmenter.w{i}.pred_logits"] for i in range(windows)], dim=1)
    masks = torch.cat([out[f"segmenter.w{i}.pred_masks"] for i in range(windows)], dim=2).transpose(1, 2)
    query_perm = out["tracker_shuffled.query_perm"]  # [T, Q]
    perm = out["tracker_shuffled.perm"]  # [T, Q]: slot r of frame t holds (shuffled) query perm[t, r]
    frames, queries = perm.shape
    assert logits.shape[1:3] == (frames, queries) == (sum(meta["windows"]["frames_per_window"]), queries)
    t_idx = torch.arange(frames)[:, None]
    shuffled = VideoMaskPrediction(logits[:, t_idx, query_perm], masks[:, t_idx, query_perm])
    ordered = reorder_queries(shuffled, perm[None])
    expected_logits = logits[:, :, query_perm[0]]
    expected_masks = masks[:, :, query_perm[0]]
    assert (ordered.class_logits - expected_logits).abs().max().item() <= 1e-4
    assert (ordered.mask_logits - expected_masks).abs().max().item() <= 1e-4
    # The inverse convention would not undo the shuffle.
    inverse = torch.argsort(perm, dim=1)
    wrong = reorder_queries(shuffled, inverse[None])
    assert (wrong.class_logits - expected_logits).abs().max().item() > 1e-2


def test_no_object_weight_parity_with_fixture(dvis_fixture: Path) -> None:
    weights = load_file(str(dvis_fixture / "weights.safetensors"))
    meta = json.loads((dvis_fixture / "meta.json").read_text())
    num_classes = meta["config"]["decoder"]["num_classes"]
    reference = weights["criterion.empty_weight"]
    crit = SetCriterion(
        num_classes=num_classes, matcher=HungarianMatcher(), no_object_weight=float(reference[-1])
    )
    assert crit.empty_weight.shape == reference.shape
    assert (crit.empty_weight - reference).abs().max().item() <= 1e-4
    assert float(reference[-1]) == pytest.approx(0.1)  # the DVIS++ VIPSeg NO_OBJECT_WEIGHT
    assert "empty_weight" not in crit.state_dict()  # derived from the arguments, not checkpointed


def test_reorder_queries_layout_and_aux() -> None:
    torch.manual_seed(0)
    b, t, q = 2, 3, 4
    pred = VideoMaskPrediction(torch.randn(b, t, q, 5), torch.randn(b, t, q, 2, 3))
    pred.aux = (VideoMaskPrediction(torch.randn(b, t, q, 5), torch.randn(b, t, q, 2, 3)),)
    perm = torch.stack([torch.randperm(q) for _ in range(b * t)]).view(b, t, q)
    out = reorder_queries(pred, perm)
    for bi in range(b):
        for ti in range(t):
            for r in range(q):
                src = int(perm[bi, ti, r])
                assert torch.equal(out.class_logits[bi, ti, r], pred.class_logits[bi, ti, src])
                assert torch.equal(out.mask_logits[bi, ti, r], pred.mask_logits[bi, ti, src])
                assert torch.equal(out.aux[0].mask_logits[bi, ti, r], pred.aux[0].mask_logits[bi, ti, src])
    with pytest.raises(ValueError, match="perm"):
        reorder_queries(pred, perm[0])


def test_match_on_frozen_segmenter_returns_tracker_slots() -> None:
    # The segmenter predicts instance j with query j; the tracker placed query j in slot sigma[j].
    t, q, h, w = 2, 5, 4, 4
    low = torch.zeros(2, h, w, dtype=torch.bool)
    low[0, :, :2] = True
    low[1, :, 2:] = True
    logits = torch.full((1, t, q, 4), -9.0)
    logits[..., 3] = 9.0
    masks = torch.full((1, t, q, h, w), -9.0)
    for j, label in enumerate((0, 2)):
        logits[0, :, j] = -9.0
        logits[0, :, j, label] = 9.0
        masks[0, :, j] = torch.where(low[j], 9.0, -9.0)
    sigma = torch.tensor([3, 0, 4, 1, 2])  # segmenter query -> tracker slot
    perm = torch.argsort(sigma)[None, None].repeat(1, t, 1)  # slot -> segmenter query
    clip = ClipTargets(
        labels=torch.tensor([0, 2]),
        ids=torch.arange(2),
        masks=low.repeat_interleave(4, -2).repeat_interleave(4, -1)[:, None].repeat(1, t, 1, 1),
    )
    matcher = HungarianMatcher(num_points=64)
    (match,) = match_on_frozen_segmenter(matcher, VideoMaskPrediction(logits, masks), perm, [clip])
    assert dict(zip(match.targets.tolist(), match.queries.tolist(), strict=True)) == {0: 3, 1: 0}
    # The frozen tracker's slots are the refiner's queries: no re-ordering, logits averaged over T.
    (video,) = match_on_frozen_tracker(matcher, VideoMaskPrediction(logits, masks), [clip])
    assert dict(zip(video.targets.tolist(), video.queries.tolist(), strict=True)) == {0: 0, 1: 1}


def _num_masks_worker(rank: int, init_file: str, results: Any) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        first = num_masks_across_ranks(3.0 if rank == 0 else 7.0, torch.device("cpu"))
        second = num_masks_across_ranks(0.0 if rank == 0 else 1.0, torch.device("cpu"))
        results.put((rank, first, second))
    finally:
        dist.destroy_process_group()


def test_num_masks_is_averaged_across_ranks(tmp_path: Path) -> None:
    results = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_num_masks_worker, args=(str(tmp_path / "init"), results), nprocs=2, join=True)
    got = {}
    while not results.empty():
        rank, first, second = results.get()
        got[rank] = (first, second)
    assert got == {0: (5.0, 1.0), 1: (5.0, 1.0)}  # mean of 3 and 7; mean 0.5 clamped to 1
