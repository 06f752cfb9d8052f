"""One frozen ViT, several tasks: outputs equal separate runs, the ViT runs once per frame, and
models whose frozen ViTs differ are refused."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from vidpan.config import Config, apply_overrides, load_config
from vidpan.errors import InputError
from vidpan.inference.multitask import TaskRun, run_tasks, share_vit, vit_fingerprint
from vidpan.inference.predictor import VideoPredictor
from vidpan.models.build import DVIS, build_dvis

OVERRIDES = ["model.num_classes=16", "model.num_things=8", "inference.object_mask_threshold=0.0",
             "inference.overlap_threshold=0.0", "inference.short_side=0"]  # fmt: skip


def _models() -> tuple[Config, DVIS, DVIS]:
    config = apply_overrides(load_config("tiny"), OVERRIDES)
    torch.manual_seed(0)
    a = build_dvis(config.model).eval()
    torch.manual_seed(1)
    b = build_dvis(config.model).eval()  # other adapter and heads ...
    b.segmenter.backbone.vit.load_state_dict(a.segmenter.backbone.vit.state_dict())  # ... same frozen ViT
    with torch.no_grad():  # random heads predict "no object": make them predict classes
        for m in (a, b):
            for head in (m.segmenter.decoder.class_embed, m.tracker.class_embed, m.refiner.class_embed):
                head.bias[-1] = -20.0
    return config, a, b


def _video() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (5, 64, 96, 3), dtype=np.uint8)


def test_shared_vit_outputs_equal_separate_runs() -> None:
    config, a, b = _models()
    video = _video()
    sep_a = VideoPredictor(copy.deepcopy(a), config).predict(
        video, mode="offline", task="vps", keep_frames=True
    )
    sep_b = VideoPredictor(copy.deepcopy(b), config).predict(
        video, mode="online", task="vss", keep_frames=True
    )
    assert vit_fingerprint(a.segmenter.backbone.vit) == vit_fingerprint(b.segmenter.backbone.vit)
    shared = share_vit([a, b], [config, config])
    runs = [TaskRun(VideoPredictor(a, config), {"mode": "offline", "task": "vps", "keep_frames": True}),
            TaskRun(VideoPredictor(b, config), {"mode": "online", "task": "vss", "keep_frames": True})]  # fmt: skip
    got_a, got_b = run_tasks(shared, runs, video)
    assert shared.computed == 5 and shared.reused == 5  # the ViT ran once per frame
    assert any(f.segments for f in sep_a.frames)  # a non-trivial panoptic output
    for x, y in zip(got_a.frames, sep_a.frames, strict=True):
        np.testing.assert_array_equal(x.segment_ids, y.segment_ids)
        assert x.segments == y.segments
    for x, y in zip(got_b.frames, sep_b.frames, strict=True):
        np.testing.assert_array_equal(x.classes, y.classes)
    # a second video through the same shared ViT
    again = run_tasks(shared, runs, video[:3])
    assert len(again[0].frames) == 3 and shared.computed == 8


def test_refuses_different_vits_and_preprocessing() -> None:
    config, a, b = _models()
    with torch.no_grad():
        b.segmenter.backbone.vit.blocks[0].attn.qkv.weight[0, 0] += 1e-3
    with pytest.raises(InputError, match="frozen ViT differs"):
        share_vit([a, b], [config, config])
    other = apply_overrides(config, ["inference.window_size=2"])
    with pytest.raises(InputError, match="preprocessing"):
        share_vit([a, b], [config, other])
    wide = apply_overrides(config, ["model.vit.depth=5"])
    with pytest.raises(InputError, match="ViT config differs"):
        share_vit([a, b], [config, wide])
