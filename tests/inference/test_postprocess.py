"""VPS / VSS / VIS post-processing: parity with the DVIS++ fixture and hand-built cases."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from vidpan.inference.postprocess import (
    MaskGeometry,
    PanopticResult,
    PanopticStream,
    class_probabilities,
    instance_video_inference,
    iter_frame_chunks,
    panoptic_inference,
    panoptic_video_inference,
    resize_masks,
    semantic_inference,
    semantic_video_inference,
)

MAX_VOXEL_MISMATCH = 1e-3  # only exact ties may differ


def fixture_inputs(path: Path, mode: str) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any]]:
    meta = json.loads((path / "meta.json").read_text())
    outputs = load_file(path / "outputs.safetensors")
    if mode == "offline":
        # Offline: refiner masks, refiner mean logits, tracker mean logits as the auxiliary.
        masks: Any = outputs["refiner.pred_masks"][0].transpose(0, 1)  # (Q, T, h, w) -> [T, Q, h, w]
        aux = outputs["final_offline.aux_pred_cls"]
    else:
        # Online: tracker masks of every window (kept as the per-window list a streaming caller has).
        masks = [
            outputs[f"tracker.w{i}.pred_masks"][0].transpose(0, 1)
            for i in range(meta["windows"]["n_windows"])
        ]
        aux = None
    height, width = meta["input"]["height"], meta["input"]["width"]
    div = meta["config"]["adapter"]["size_divisibility"]
    padded = (math.ceil(height / div) * div, math.ceil(width / div) * div)
    args = {
        "class_logits": outputs[f"final_{mode}.pred_cls"],
        "mask_logits": masks,
        "geometry": MaskGeometry(padded, (height, width), (height, width)),
        "num_things": meta["metadata"]["n_thing_classes"],
        "object_mask_threshold": meta["thresholds"]["object_mask_threshold"],
        "overlap_threshold": meta["thresholds"]["overlap_threshold"],
        "aux_class_logits": aux,
    }
    return args, outputs, meta


def check_against_fixture(
    result: PanopticResult, outputs: dict[str, torch.Tensor], meta: dict[str, Any], mode: str
) -> float:
    expected = outputs[f"final_{mode}.panoptic"]
    assert result.segment_ids.shape == expected.shape and result.segment_ids.dtype == torch.int32
    mismatch = float((result.segment_ids != expected).float().mean())
    assert mismatch <= MAX_VOXEL_MISMATCH, mismatch
    rows = torch.tensor([[s.id, int(s.isthing), s.category_id] for s in result.segments], dtype=torch.int32)
    assert torch.equal(rows.reshape(-1, 3), outputs[f"final_{mode}.segments"])
    assert result.pred_ids == outputs[f"final_{mode}.pred_ids"].tolist() == meta[f"final_{mode}"]["pred_ids"]
    infos = [{"id": s.id, "isthing": s.isthing, "category_id": s.category_id} for s in result.segments]
    assert infos == meta[f"final_{mode}"]["segments_infos"]
    return mismatch


@pytest.mark.parametrize("chunk_frames", [1, 3, 100])
def test_postprocess_parity_offline(dvis_fixture: Path, chunk_frames: int) -> None:
    args, outputs, meta = fixture_inputs(dvis_fixture, "offline")
    result = panoptic_video_inference(**args, chunk_frames=chunk_frames)
    check_against_fixture(result, outputs, meta, "offline")


@pytest.mark.parametrize("chunk_frames", [1, 2, 100])
def test_postprocess_parity_online(dvis_fixture: Path, chunk_frames: int) -> None:
    args, outputs, meta = fixture_inputs(dvis_fixture, "online")
    result = panoptic_video_inference(**args, chunk_frames=chunk_frames)
    check_against_fixture(result, outputs, meta, "online")


def test_postprocess_parity_streaming_two_pass(dvis_fixture: Path) -> None:
    """Pass 2 recomputed from the logits (nothing stored between passes) gives the same result."""
    args, outputs, meta = fixture_inputs(dvis_fixture, "online")
    masks = args.pop("mask_logits")
    stream = PanopticStream(args.pop("class_logits"), args.pop("geometry"), **args)
    for chunk in iter_frame_chunks(masks, 2):
        stream.add(chunk)
    segments = stream.finish()
    ids = torch.cat([stream.paint_logits(chunk) for chunk in iter_frame_chunks(masks, 2)])
    check_against_fixture(PanopticResult(ids, segments), outputs, meta, "online")


# --------------------------------------------------------------------------------------------
# Hand-built cases
# --------------------------------------------------------------------------------------------


def one_hot_logits(labels: list[int], num_classes: int, value: float = 6.0) -> torch.Tensor:
    """[Q, K+1] logits with ``value`` on each query's label (K = no-object)."""
    logits = torch.zeros(len(labels), num_classes + 1)
    logits[torch.arange(len(labels)), torch.tensor(labels)] = value
    return logits


def test_panoptic_stuff_merging_and_no_object() -> None:
    # K = 3 classes: 0 thing, 1 and 2 stuff. q0 stuff 1 (cols 0-3), q1 thing (cols 4-5),
    # q2 stuff 1 again (cols 6-7) -> merged into q0's segment; q3 no-object -> dropped.
    logits = one_hot_logits([1, 0, 1, 3], 3)
    masks = torch.full((1, 4, 4, 8), -10.0)
    masks[0, 0, :, 0:4] = 10.0
    masks[0, 1, :, 4:6] = 10.0
    masks[0, 2, :, 6:8] = 10.0
    masks[0, 3] = 10.0  # would cover everything if it were kept
    result = panoptic_video_inference(
        logits,
        masks,
        MaskGeometry.unpadded(4, 8),
        num_things=1,
        object_mask_threshold=0.5,
        overlap_threshold=0.8,
    )
    assert [(s.id, s.isthing, s.category_id, s.track) for s in result.segments] == [
        (1, False, 1, 0),
        (2, True, 0, 1),
    ]
    assert result.pred_ids == [0, 1]
    expected = torch.tensor([1, 1, 1, 1, 2, 2, 1, 1], dtype=torch.int32).expand(1, 4, 8)
    assert torch.equal(result.segment_ids, expected)


def test_panoptic_overlap_is_counted_over_the_whole_video() -> None:
    # q0 covers both frames; q1 (higher score) covers frame 1 and wins it. q0 wins frame 0 only:
    # per frame 0 its ratio would be 1.0, over the video it is 0.5.
    logits = one_hot_logits([0, 0], 2)
    logits[1, 0] = 8.0
    masks = torch.full((2, 2, 3, 3), -10.0)
    masks[:, 0] = 10.0
    masks[1, 1] = 10.0
    geometry = MaskGeometry.unpadded(3, 3)
    strict = panoptic_video_inference(
        logits, masks, geometry, num_things=2, object_mask_threshold=0.5, overlap_threshold=0.8
    )
    assert strict.pred_ids == [1]
    assert torch.equal(strict.segment_ids[0], torch.zeros(3, 3, dtype=torch.int32))
    assert torch.equal(strict.segment_ids[1], torch.ones(3, 3, dtype=torch.int32))
    loose = panoptic_video_inference(
        logits, masks, geometry, num_things=2, object_mask_threshold=0.5, overlap_threshold=0.5
    )
    assert loose.pred_ids == [0, 1]  # ratio exactly 0.5 passes (>=)
    assert torch.equal(loose.segment_ids[0], torch.ones(3, 3, dtype=torch.int32))
    # Score threshold is strict: nothing passes a threshold equal to the best score.
    best = float(class_probabilities(logits).max())
    none = panoptic_video_inference(
        logits, masks, geometry, num_things=2, object_mask_threshold=best, overlap_threshold=0.5
    )
    assert none.segments == [] and not none.segment_ids.any()


def test_offline_class_fusion_keeps_main_no_object_column() -> None:
    main = torch.tensor([[0.0, 0.0, 3.0]])
    aux = torch.tensor([[5.0, 0.0, 0.0]])
    probs = class_probabilities(main, aux)
    main_p, aux_p = main.softmax(-1), aux.softmax(-1)
    assert torch.allclose(probs[:, :2], torch.maximum(main_p[:, :2], aux_p[:, :2]))
    assert torch.equal(probs[:, 2], main_p[:, 2])


def test_semantic_video_inference_hand_built() -> None:
    logits = one_hot_logits([2, 1], 3)
    masks = torch.full((2, 2, 2, 4), -10.0)
    masks[:, 0, :, :2] = 10.0
    masks[:, 1, :, 2:] = 10.0
    geometry = MaskGeometry.unpadded(2, 4)
    result = semantic_video_inference(logits, masks, geometry)
    assert torch.equal(result.labels, torch.tensor([2, 2, 1, 1]).expand(2, 2, 4))
    assert result.scores.shape == (2, 2, 4)
    # Offline fusion: a tracker that is sure q0 is class 0 turns the left half into class 0.
    aux = one_hot_logits([0, 1], 3, value=12.0)
    fused = semantic_video_inference(logits, list(masks.split(1)), geometry, aux_class_logits=aux)
    assert torch.equal(fused.labels, torch.tensor([0, 0, 1, 1]).expand(2, 2, 4))
    image = semantic_inference(logits, masks[0], geometry)
    assert torch.equal(image.labels, result.labels[0])


def test_instance_video_inference_hand_built() -> None:
    logits = torch.tensor([[4.0, 0.0, 0.0, 0.0], [0.0, 0.0, 6.0, 0.0], [0.0, 0.0, 0.0, 9.0]])  # q2: no-object
    g = torch.Generator().manual_seed(0)
    masks = torch.randn(3, 3, 4, 5, generator=g)
    result = instance_video_inference(logits, masks, MaskGeometry.unpadded(4, 5), max_num=2)
    assert result.query_ids.tolist() == [1, 0]  # best score first; the no-object column never counts
    assert result.labels.tolist() == [2, 0]
    assert torch.all(result.scores[:-1] >= result.scores[1:])
    assert torch.equal(result.masks, (masks[:, [1, 0]] > 0).transpose(0, 1))
    capped = instance_video_inference(logits, masks, MaskGeometry.unpadded(4, 5), max_num=100)
    assert len(capped.scores) == 9


# --------------------------------------------------------------------------------------------
# Against a literal whole-volume transcription of the reference algorithm
# --------------------------------------------------------------------------------------------


def literal_vps(
    logits: torch.Tensor,
    masks_tq: torch.Tensor,
    geometry: MaskGeometry,
    *,
    num_things: int,
    object_mask_threshold: float,
    overlap_threshold: float,
    sigmoid_first: bool,
) -> tuple[torch.Tensor, list[tuple[int, bool, int]], list[int]]:
    """The reference's steps on the whole (Q, T, H, W) volume at once (reference notes §1.8)."""
    probs = logits.softmax(-1)
    scores, labels = probs.max(-1)
    keep = labels.ne(logits.shape[1] - 1) & (scores > object_mask_threshold)
    masks = masks_tq.transpose(0, 1)[keep]  # (Qk, T, h, w)
    masks = F.interpolate(masks, size=geometry.padded_size, mode="bilinear", align_corners=False)
    masks = masks[:, :, : geometry.image_size[0], : geometry.image_size[1]]
    if sigmoid_first:
        masks = F.interpolate(
            masks.sigmoid(), size=geometry.output_size, mode="bilinear", align_corners=False
        )
    else:
        masks = F.interpolate(
            masks, size=geometry.output_size, mode="bilinear", align_corners=False
        ).sigmoid()
    ids = (scores[keep].view(-1, 1, 1, 1) * masks).argmax(0)
    panoptic = torch.zeros(ids.shape, dtype=torch.int32)
    segments, queries, stuff = [], [], {}
    for k, (label, query) in enumerate(
        zip(labels[keep].tolist(), torch.nonzero(keep).flatten().tolist(), strict=True)
    ):
        area = int((ids == k).sum())
        original = int((masks[k] >= 0.5).sum())
        region = (ids == k) & (masks[k] >= 0.5)
        if area == 0 or original == 0 or int(region.sum()) == 0 or area / original < overlap_threshold:
            continue
        isthing = label < num_things
        if not isthing and label in stuff:
            panoptic[region] = stuff[label]
            continue
        segments.append((len(segments) + 1, isthing, label))
        if not isthing:
            stuff[label] = len(segments)
        panoptic[region] = len(segments)
        queries.append(query)
    return panoptic, segments, queries


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_panoptic_matches_literal_algorithm_with_padding_and_resize(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    num_q, num_k, frames = 12, 6, 3
    logits = torch.randn(num_q, num_k + 1, generator=g) * 3
    masks = torch.randn(frames, num_q, 8, 12, generator=g) * 4
    geometry = MaskGeometry(padded_size=(32, 48), image_size=(28, 40), output_size=(50, 70))
    kwargs: dict[str, Any] = dict(num_things=3, object_mask_threshold=0.3, overlap_threshold=0.3)
    panoptic, segments, queries = literal_vps(logits, masks, geometry, sigmoid_first=True, **kwargs)
    assert segments, "test case should produce segments"
    result = panoptic_video_inference(logits, masks, geometry, chunk_frames=2, **kwargs)
    assert [(s.id, s.isthing, s.category_id) for s in result.segments] == segments
    assert result.pred_ids == queries
    assert torch.equal(result.segment_ids, panoptic)
    # Image path (Mask2Former): sigmoid after the last resize, [H, W] output.
    panoptic_img, segments_img, _ = literal_vps(logits, masks[:1], geometry, sigmoid_first=False, **kwargs)
    image = panoptic_inference(logits, masks[0], geometry, **kwargs)
    assert image.segment_ids.shape == (50, 70)
    assert [(s.id, s.isthing, s.category_id) for s in image.segments] == segments_img
    assert torch.equal(image.segment_ids, panoptic_img[0])


def test_resize_masks_sigmoid_order_matters_only_with_a_final_resize() -> None:
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 8, 12, generator=g) * 4
    resized = MaskGeometry((32, 48), (28, 40), (50, 70))
    a = resize_masks(logits, resized, sigmoid="before_output_resize")
    b = resize_masks(logits, resized, sigmoid="after_output_resize")
    assert a.shape == (2, 3, 50, 70) and not torch.allclose(a, b, atol=1e-4)
    same = MaskGeometry.unpadded(32, 48)
    assert torch.allclose(
        resize_masks(logits, same, sigmoid="before_output_resize"),
        resize_masks(logits, same, sigmoid="after_output_resize"),
        atol=1e-6,
    )


def test_empty_selection_gives_void_volume() -> None:
    logits = one_hot_logits([2, 2], 2)  # every query is no-object
    masks = torch.randn(3, 2, 4, 4)
    result = panoptic_video_inference(
        logits,
        masks,
        MaskGeometry.unpadded(4, 4),
        num_things=1,
        object_mask_threshold=0.1,
        overlap_threshold=0.5,
    )
    assert result.segments == [] and result.segment_ids.shape == (3, 4, 4) and not result.segment_ids.any()
