"""VideoPredictor behaviour: streaming, long-video chunks, VSS / VIS, resizing, bad input.

Uses the DVIS++ fixture model (random weights whose queries form segments at the fixture's
thresholds); exactness against the reference is in ``test_predictor_parity.py``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vidpan.config import Config
from vidpan.errors import InputError
from vidpan.inference.postprocess import MaskGeometry, resize_masks, semantic_video_inference
from vidpan.inference.predictor import VideoPredictor
from vidpan.models.build import DVIS, build_dvis
from vidpan.models.checkpoint import convert_dvis_plus, load_state_dict_strict, read_checkpoint
from vidpan.models.reference_config import inference_config_from_reference, model_config_from_reference
from vidpan.structures import InstanceFrame, PanopticFrame, SemanticFrame


@pytest.fixture(scope="module")
def setup(dvis_fixture: Path) -> tuple[DVIS, Config, np.ndarray, dict, dict]:
    meta = json.loads((dvis_fixture / "meta.json").read_text())
    config = Config(
        model=model_config_from_reference(
            meta["config"], num_things=int(meta["metadata"]["n_thing_classes"])
        ),
        inference=inference_config_from_reference(meta["config"]),
    )
    model = build_dvis(config.model)
    load_state_dict_strict(model, convert_dvis_plus(read_checkpoint(dvis_fixture / "weights.safetensors")))
    video = load_file(str(dvis_fixture / "inputs.safetensors"))["video_tchw_uint8"]
    outputs = load_file(str(dvis_fixture / "outputs.safetensors"))
    return model.eval(), config, video.permute(0, 2, 3, 1).numpy(), outputs, meta


def _with(config: Config, **inference: object) -> Config:
    return dataclasses.replace(config, inference=dataclasses.replace(config.inference, **inference))


def _volume(prediction) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.stack([f.segment_ids for f in prediction.frames])


def _partition_key(prediction) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Per voxel (track, class) of its segment, (-1, -1) for void: independent of id numbering."""
    vol = _volume(prediction)
    lut = {0: (-1, -1)} | {s.id: (s.track, s.category_id) for s in prediction.segments}
    return np.vectorize(lambda i: lut[int(i)][0] * 1000 + lut[int(i)][1])(vol)


def test_long_mode_single_chunk_equals_offline(setup) -> None:  # type: ignore[no-untyped-def]
    model, config, frames, _, _ = setup
    offline = VideoPredictor(model, config).predict(frames, mode="offline")
    long = VideoPredictor(model, _with(config, chunk_length=len(frames) + 5, chunk_overlap=2)).predict(
        frames, mode="long"
    )
    assert np.array_equal(_partition_key(offline), _partition_key(long))
    num_queries = config.model.decoder.num_queries
    for s in long.segments:  # slot-stable ids
        assert s.id == (1 + s.track if s.isthing else 1 + num_queries + s.category_id)


@pytest.mark.parametrize(("length", "overlap"), [(3, 1), (4, 2), (2, 0), (5, 4), (6, 3)])
def test_long_mode_chunks_emit_every_frame_once(setup, length: int, overlap: int) -> None:  # type: ignore[no-untyped-def]
    model, config, frames, _, _ = setup
    predictor = VideoPredictor(model, _with(config, chunk_length=length, chunk_overlap=overlap))
    prediction = predictor.predict(frames, mode="long")
    assert [f.index for f in prediction.frames] == list(range(len(frames)))
    assert all(f.segment_ids.shape == frames.shape[1:3] for f in prediction.frames)
    assert any(f.segments for f in prediction.frames)


def test_online_streaming_single_window_equals_whole_video(setup) -> None:  # type: ignore[no-untyped-def]
    """With one window covering the video, per-window decisions are the whole-video ones."""
    model, config, frames, _, _ = setup
    predictor = VideoPredictor(model, _with(config, window_size=len(frames)))
    exact = predictor.predict(frames, mode="online")
    streamed = predictor.predict(frames, mode="online", postprocess="stream")
    assert np.array_equal(_partition_key(exact), _partition_key(streamed))


def test_online_streaming_ids_are_stable(setup) -> None:  # type: ignore[no-untyped-def]
    model, config, frames, _, _ = setup
    prediction = VideoPredictor(model, config).predict(frames, mode="online", postprocess="stream")
    assert [f.index for f in prediction.frames] == list(range(len(frames)))
    num_queries = config.model.decoder.num_queries
    for frame in prediction.frames:
        assert isinstance(frame, PanopticFrame)
        present = set(np.unique(frame.segment_ids).tolist()) - {0}
        assert present == {s.id for s in frame.segments}
        for s in frame.segments:
            assert s.id == (1 + s.track if s.isthing else 1 + num_queries + s.category_id)


def test_vss_offline_matches_reference_logits(setup) -> None:  # type: ignore[no-untyped-def]
    """Per-pixel classes from our pipeline equal those computed from the reference's own logits."""
    model, config, frames, outputs, _ = setup
    prediction = VideoPredictor(model, config).predict(frames, mode="offline", task="vss")
    ours = np.stack([f.classes for f in prediction.frames if isinstance(f, SemanticFrame)])
    h, w = frames.shape[1:3]
    masks = outputs["refiner.pred_masks"][0].transpose(0, 1)  # [Q, T, h, w] -> [T, Q, h, w]
    expected = semantic_video_inference(
        outputs["final_offline.pred_cls"],
        masks,
        MaskGeometry.unpadded(h, w),
        aux_class_logits=outputs["final_offline.aux_pred_cls"],
    ).labels.numpy()
    assert ours.shape == expected.shape
    assert float((ours != expected).mean()) <= 1e-3


def test_vis_offline_masks_and_scores(setup) -> None:  # type: ignore[no-untyped-def]
    model, config, frames, outputs, _ = setup
    cfg = _with(config, max_instances=5)
    prediction = VideoPredictor(model, cfg).predict(frames, mode="offline", task="vis")
    assert all(isinstance(f, InstanceFrame) for f in prediction.frames)
    instances = prediction.frames[0].instances  # type: ignore[union-attr]
    assert len(instances) == 5
    scores = [s.score for s in instances]
    assert scores == sorted(scores, reverse=True)
    h, w = frames.shape[1:3]
    masks = outputs["refiner.pred_masks"][0].transpose(0, 1)  # [T, Q, h, w]
    tracks = torch.tensor([s.track for s in instances])
    expected = (resize_masks(masks[:, tracks], MaskGeometry.unpadded(h, w), sigmoid="none") > 0).numpy()
    ours = np.stack([f.masks for f in prediction.frames])  # type: ignore[union-attr]
    assert float((ours != expected).mean()) <= 1e-3


def test_resizes_and_maps_back_to_input_size(setup) -> None:  # type: ignore[no-untyped-def]
    model, config, frames, _, _ = setup
    odd = np.ascontiguousarray(frames[:4, :83, :101])  # odd size, not a multiple of 32
    predictor = VideoPredictor(model, _with(config, short_side=64, max_size=200))
    for mode in ("online", "offline", "long"):
        prediction = predictor.predict(odd, mode=mode)  # type: ignore[arg-type]
        assert prediction.num_frames == 4
        assert all(f.segment_ids.shape == (83, 101) for f in prediction.frames)  # type: ignore[union-attr]


def test_bad_input(setup) -> None:  # type: ignore[no-untyped-def]
    model, config, frames, _, _ = setup
    with pytest.raises(InputError, match="fp16 needs a CUDA"):
        VideoPredictor(model, config, precision="fp16")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA device"):
            VideoPredictor(model, config, device="cuda")
    online_only = DVIS(segmenter=model.segmenter, tracker=model.tracker, num_things=model.num_things)
    with pytest.raises(InputError, match="needs a refiner"):
        VideoPredictor(online_only, config).predict(frames, mode="offline")
    with pytest.raises(InputError, match="uint8"):
        VideoPredictor(model, config).predict(frames.astype(np.float32))
    with pytest.raises(InputError, match="no such video"):
        VideoPredictor(model, config).predict("/nonexistent/video.mp4")


def test_bf16_on_cpu_runs(setup) -> None:  # type: ignore[no-untyped-def]
    model, config, frames, _, _ = setup
    prediction = VideoPredictor(model, config, precision="bf16").predict(frames[:3], mode="offline")
    assert prediction.num_frames == 3


def test_minvis_mode_recovers_shuffled_queries(setup, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """MinVIS association: permuting the segmenter's queries per frame changes nothing."""
    model, config, frames, _, _ = setup
    segment_only = DVIS(segmenter=model.segmenter, num_things=model.num_things)
    predictor = VideoPredictor(segment_only, config)
    plain = predictor.predict(frames, mode="minvis")
    original = model.segmenter.forward
    gen = torch.Generator().manual_seed(3)

    def shuffled(images, **kwargs):  # type: ignore[no-untyped-def]
        out = original(images, **kwargs)
        perm = torch.stack(
            [torch.randperm(out.class_logits.shape[1], generator=gen) for _ in range(len(images))]
        )
        rows = torch.arange(len(images))[:, None]
        return dataclasses.replace(
            out,
            class_logits=out.class_logits[rows, perm],
            mask_logits=out.mask_logits[rows, perm],
            embeds=out.embeds[rows, perm],
            embeds_unnormed=out.embeds_unnormed[rows, perm],
        )

    monkeypatch.setattr(model.segmenter, "forward", shuffled)
    again = predictor.predict(frames, mode="minvis")

    # Frame 0's order decides the slots, so compare the (class, pixels) partition, not slot ids.
    def key(prediction):  # type: ignore[no-untyped-def]
        vol = _volume(prediction)
        lut = {0: -1} | {s.id: s.category_id for s in prediction.segments}
        return np.vectorize(lambda i: lut[int(i)])(vol), vol

    (cls_a, vol_a), (cls_b, vol_b) = key(plain), key(again)
    assert np.array_equal(cls_a, cls_b)
    pairs = set(zip(vol_a.flatten().tolist(), vol_b.flatten().tolist(), strict=True))
    assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})  # a bijection of ids
    with pytest.raises(InputError, match="needs a tracker"):
        predictor.predict(frames, mode="online")


@pytest.mark.parametrize("batch", [1, 2])
def test_segmenter_batch_changes_nothing(setup, batch: int) -> None:  # type: ignore[no-untyped-def]
    """Running the (image-level) segmenter on fewer frames at a time gives the same panoptic video."""
    model, config, frames, _, _ = setup
    whole = VideoPredictor(model, _with(config, segmenter_batch=0)).predict(frames, mode="offline")
    split = VideoPredictor(model, _with(config, segmenter_batch=batch)).predict(frames, mode="offline")
    assert np.array_equal(_volume(whole), _volume(split))
    assert [(s.id, s.category_id, round(s.score, 5)) for s in whole.segments] == [
        (s.id, s.category_id, round(s.score, 5)) for s in split.segments
    ]
