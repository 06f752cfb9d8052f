"""End-to-end parity with the DVIS++ fixture: raw frames -> our whole pipeline -> every stage.

Everything (sizes, depths, heads, queries, window size, thresholds) is read from the fixture's
``meta.json``, so these tests work for any fixture produced the same way
(``VIDPAN_DVIS_FIXTURE``). Unlike the per-module parity tests, nothing here is fed from the
fixture's intermediate tensors: each stage consumes our own previous stage's output.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vidpan.config import Config
from vidpan.inference.predictor import VideoPredictor
from vidpan.models.build import DVIS, build_dvis
from vidpan.models.checkpoint import convert_dvis_plus, load_state_dict_strict, read_checkpoint
from vidpan.models.reference_config import inference_config_from_reference, model_config_from_reference
from vidpan.structures import PanopticFrame

ATOL = 1e-4


@pytest.fixture(scope="module")
def reference(dvis_fixture: Path) -> dict:
    meta = json.loads((dvis_fixture / "meta.json").read_text())
    outputs = load_file(str(dvis_fixture / "outputs.safetensors"))
    video = load_file(str(dvis_fixture / "inputs.safetensors"))["video_tchw_uint8"]
    return {"meta": meta, "outputs": outputs, "video": video, "dir": dvis_fixture}


@pytest.fixture(scope="module")
def model_and_config(reference: dict) -> tuple[DVIS, Config]:
    meta = reference["meta"]
    n_things = int(meta["metadata"]["n_thing_classes"])
    config = Config(
        name="dvis_plus_fixture",
        model=model_config_from_reference(meta["config"], num_things=n_things),
        inference=inference_config_from_reference(meta["config"]),
    )
    model = build_dvis(config.model)
    state = convert_dvis_plus(read_checkpoint(reference["dir"] / "weights.safetensors"))
    load_state_dict_strict(model, state)
    return model.eval(), config


def _windows(meta: dict) -> list[tuple[int, int]]:
    bounds, start = [], 0
    for n in meta["windows"]["frames_per_window"]:
        bounds.append((start, start + n))
        start += n
    return bounds


def _close(name: str, ours: torch.Tensor, ref: torch.Tensor) -> float:
    assert ours.shape == ref.shape, f"{name}: shape {tuple(ours.shape)} vs reference {tuple(ref.shape)}"
    diff = float((ours.float() - ref.float()).abs().max())
    assert diff <= ATOL, f"{name}: max abs diff {diff:.3g} > {ATOL}"
    return diff


def test_pipeline_stages_end_to_end_parity(reference: dict, model_and_config: tuple[DVIS, Config]) -> None:
    """Segmenter on raw frames, tracker on our segmenter, refiner on our tracker."""
    meta, ref, video = reference["meta"], reference["outputs"], reference["video"]
    model, _ = model_and_config
    assert model.tracker is not None and model.refiner is not None
    state = None
    track_embeds, seg_unnormed, mask_features = [], [], []
    with torch.inference_mode():
        for i, (start, stop) in enumerate(_windows(meta)):
            seg = model.segmenter(video[start:stop], return_aux=False)
            w = f"segmenter.w{i}"
            _close(f"{w}.pred_logits", seg.class_logits, ref[f"{w}.pred_logits"][0])
            _close(f"{w}.pred_masks", seg.mask_logits, ref[f"{w}.pred_masks"][0].transpose(0, 1))
            _close(f"{w}.pred_embds", seg.embeds, ref[f"{w}.pred_embds"][0].permute(1, 2, 0))
            _close(
                f"{w}.pred_embds_without_norm",
                seg.embeds_unnormed,
                ref[f"{w}.pred_embds_without_norm"][0].permute(1, 2, 0),
            )
            _close(f"{w}.mask_features", seg.mask_features, ref[f"{w}.mask_features"])
            out, state = model.tracker(
                seg.embeds[None], seg.embeds_unnormed[None], seg.mask_features[None], state
            )
            t = f"tracker.w{i}"
            _close(f"{t}.pred_logits", out.class_logits, ref[f"{t}.pred_logits"])
            assert out.mask_logits is not None
            _close(f"{t}.pred_masks", out.mask_logits, ref[f"{t}.pred_masks"].transpose(1, 2))
            _close(f"{t}.pred_embds", out.embeds, ref[f"{t}.pred_embds"].permute(0, 2, 3, 1))
            _close(f"{t}.pred_references", out.references, ref[f"{t}.pred_references"].permute(0, 2, 3, 1))
            assert torch.equal(out.indices[0], ref["tracker.perm"][start:stop])
            track_embeds.append(out.embeds)
            seg_unnormed.append(seg.embeds_unnormed[None])
            mask_features.append(seg.mask_features[None])
        refined = model.refiner(
            torch.cat(track_embeds, 1), torch.cat(seg_unnormed, 1), torch.cat(mask_features, 1)
        )
    _close("refiner.pred_logits", refined.class_logits, ref["refiner.pred_logits"])
    assert refined.mask_logits is not None
    _close("refiner.pred_masks", refined.mask_logits, ref["refiner.pred_masks"].transpose(1, 2))
    _close("refiner.pred_embds", refined.embeds, ref["refiner.pred_embds"].permute(0, 2, 3, 1))


@pytest.mark.parametrize("mode", ["offline", "online"])
def test_predictor_end_to_end_parity(
    mode: str, reference: dict, model_and_config: tuple[DVIS, Config], tmp_path: Path
) -> None:
    """``VideoPredictor`` on the raw clip gives the reference's final panoptic volume and segments."""
    ref, video = reference["outputs"], reference["video"]
    model, config = model_and_config
    frames = video.permute(0, 2, 3, 1).numpy()  # [T, 3, H, W] -> [T, H, W, 3]
    predictor = VideoPredictor(model, config)
    prediction = predictor.predict(frames, mode=mode, task="vps")  # type: ignore[arg-type]
    panoptic = np.stack([f.segment_ids for f in prediction.frames if isinstance(f, PanopticFrame)])
    expected = ref[f"final_{mode}.panoptic"].numpy()
    assert panoptic.shape == expected.shape
    mismatch = float((panoptic != expected).mean())
    print(f"{mode} panoptic: {int((panoptic != expected).sum())} of {panoptic.size} voxels differ")
    # Ids may differ only where two queries tie within float noise (README: "a few voxels").
    assert mismatch <= 1e-3, f"{mode}: {mismatch:.2%} of voxels differ"
    segments = [[s.id, int(s.isthing), s.category_id] for s in prediction.segments]
    assert segments == ref[f"final_{mode}.segments"].tolist()
    assert [s.track for s in prediction.segments] == ref[f"final_{mode}.pred_ids"].tolist()
    # The result does not depend on how much of it is spilled to disk.
    spilled = VideoPredictor(model, config, spill_ram_budget=0)
    again = spilled.predict(frames, mode=mode, task="vps")  # type: ignore[arg-type]
    assert all(
        np.array_equal(a.segment_ids, b.segment_ids)  # type: ignore[union-attr]
        for a, b in zip(prediction.frames, again.frames, strict=True)
    )
