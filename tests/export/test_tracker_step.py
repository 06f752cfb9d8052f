"""The exported tracker step carries its state across frames and windows exactly like the eager
tracker: same permutations, outputs and state within 1e-4, on the DVIS++ fixture (where the
permutations are also DVIS++'s own) and on the shipped model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import Exported
from vidpan.export.engine import ExportedTracker, OrtRunner, ProgramRunner
from vidpan.export.manifest import manifest_path, read_manifest
from vidpan.models.tracker import TrackerState

ATOL = 1e-4


def _tracker(exported: Exported, fmt: str) -> ExportedTracker:
    path = exported.directory / ("tracker-step.onnx" if fmt == "onnx" else "tracker-step.pt2")
    manifest = read_manifest(manifest_path(path))
    runner = OrtRunner(path, manifest) if fmt == "onnx" else ProgramRunner(path, manifest)
    return ExportedTracker(runner)


def _close(name: str, a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape, name
    diff = float((a.float() - b.float()).abs().max())
    assert diff <= ATOL, f"{name}: max abs diff {diff:.3g}"


@pytest.mark.parametrize("fmt", ["onnx", "torch-export"])
def test_tracker_step_carries_state_like_eager(exported: Exported, fmt: str) -> None:
    tracker = _tracker(exported, fmt)
    eager_tracker = exported.model.tracker
    assert eager_tracker is not None
    eager_state: TrackerState | None = None
    state: TrackerState | None = None
    perms = []
    for i, (start, stop) in enumerate(exported.windows):
        with torch.inference_mode():
            seg = exported.model.segmenter(exported.video[start:stop], return_aux=False)
            args = (seg.embeds[None], seg.embeds_unnormed[None], seg.mask_features[None])
            expected, eager_state = eager_tracker(*args, eager_state)
        ours, state = tracker(*args, state)
        w = f"{fmt} window {i}"
        assert torch.equal(ours.indices, expected.indices), f"{w}: permutations differ"
        _close(f"{w} class_logits", ours.class_logits, expected.class_logits)
        assert ours.mask_logits is not None and expected.mask_logits is not None
        _close(f"{w} mask_logits", ours.mask_logits, expected.mask_logits)
        _close(f"{w} embeds", ours.embeds, expected.embeds)
        _close(f"{w} references", ours.references, expected.references)
        assert state.num_frames == eager_state.num_frames == stop
        _close(f"{w} state.last_frame_embeds", state.last_frame_embeds, eager_state.last_frame_embeds)
        _close(f"{w} state.last_output", state.last_output, eager_state.last_output)
        _close(f"{w} state.last_reference", state.last_reference, eager_state.last_reference)
        perms.append(ours.indices[0])
    # Without mask features the step still tracks (offline mode), masks are not returned.
    with torch.inference_mode():
        seg = exported.model.segmenter(exported.video[: exported.windows[0][1]], return_aux=False)
    out, _ = tracker(seg.embeds[None], seg.embeds_unnormed[None], None, None)
    assert out.mask_logits is None and out.class_logits.shape[1] == seg.embeds.shape[0]


def test_tracker_step_permutations_are_dvis_plus(fixture_export: Exported, dvis_fixture: Path) -> None:
    ref = load_file(str(dvis_fixture / "outputs.safetensors"))
    tracker = _tracker(fixture_export, "onnx")
    state, perms = None, []
    for i, (start, stop) in enumerate(fixture_export.windows):
        with torch.inference_mode():
            seg = fixture_export.model.segmenter(fixture_export.video[start:stop], return_aux=False)
        out, state = tracker(seg.embeds[None], seg.embeds_unnormed[None], seg.mask_features[None], state)
        perms.append(out.indices[0])
        _close(f"w{i} pred_logits", out.class_logits[0], ref[f"tracker.w{i}.pred_logits"][0])
        _close(f"w{i} pred_embds", out.embeds[0], ref[f"tracker.w{i}.pred_embds"][0].permute(1, 2, 0))
    assert torch.equal(torch.cat(perms), ref["tracker.perm"])
