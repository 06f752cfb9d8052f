"""Exported segmenter vs eager, under onnxruntime and under the torch.export program, on the DVIS++
parity fixture and on the shipped model: every output within 1e-4; graphs free of grid sampling;
manifests complete."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
from safetensors.torch import load_file

import vidpan
from conftest import Exported
from vidpan.errors import InputError
from vidpan.export.engine import ExportedSegmenter, OrtRunner, ProgramRunner
from vidpan.export.exporter import DEFAULT_OPSET, export_part, parse_size
from vidpan.export.lowering import forbidden_aten_ops, forbidden_onnx_ops
from vidpan.export.manifest import manifest_path, read_manifest, sha256_file

ATOL = 1e-4
FIELDS = ("class_logits", "mask_logits", "embeds", "embeds_unnormed", "mask_features")


def _segmenter(exported: Exported, fmt: str) -> ExportedSegmenter:
    path = exported.directory / ("segmenter.onnx" if fmt == "onnx" else "segmenter.pt2")
    manifest = read_manifest(manifest_path(path))
    runner = OrtRunner(path, manifest) if fmt == "onnx" else ProgramRunner(path, manifest)
    return ExportedSegmenter(runner)


@pytest.mark.parametrize("fmt", ["onnx", "torch-export"])
def test_segmenter_parity(exported: Exported, fmt: str) -> None:
    segmenter = _segmenter(exported, fmt)
    for start, stop in exported.windows:
        frames = exported.video[start:stop]
        with torch.inference_mode():
            eager = exported.model.segmenter(frames, return_aux=False)
        ours = segmenter(frames)
        assert ours.image_size == eager.image_size
        for name in FIELDS:
            a, b = getattr(ours, name), getattr(eager, name)
            assert a.shape == b.shape, name
            diff = float((a - b).abs().max())
            assert diff <= ATOL, f"{fmt} {name} window {start}: max abs diff {diff:.3g}"


def test_onnx_segmenter_matches_dvis_plus_reference(fixture_export: Exported, dvis_fixture: Path) -> None:
    """The ONNX segmenter on the fixture's raw frames against DVIS++'s own outputs."""
    ref = load_file(str(dvis_fixture / "outputs.safetensors"))
    segmenter = _segmenter(fixture_export, "onnx")
    for i, (start, stop) in enumerate(fixture_export.windows):
        out = segmenter(fixture_export.video[start:stop])
        w = f"segmenter.w{i}"
        pairs = [
            (out.class_logits, ref[f"{w}.pred_logits"][0]),
            (out.mask_logits, ref[f"{w}.pred_masks"][0].transpose(0, 1)),
            (out.embeds, ref[f"{w}.pred_embds"][0].permute(1, 2, 0)),
            (out.embeds_unnormed, ref[f"{w}.pred_embds_without_norm"][0].permute(1, 2, 0)),
            (out.mask_features, ref[f"{w}.mask_features"]),
        ]
        for ours, theirs in pairs:
            assert float((ours - theirs).abs().max()) <= ATOL


@pytest.mark.parametrize("part", ["segmenter", "tracker-step"])
def test_graphs_have_no_grid_sample(exported: Exported, part: str) -> None:
    model = onnx.load(str(exported.directory / f"{part}.onnx"))
    assert forbidden_onnx_ops(model) == []
    assert not {"GridSample", "Loop", "If"} & {n.op_type for n in model.graph.node}
    assert model.opset_import[0].version == DEFAULT_OPSET
    program = torch.export.load(str(exported.directory / f"{part}.pt2"))
    assert forbidden_aten_ops(program) == []


def test_manifests(exported: Exported) -> None:
    seg = read_manifest(exported.directory / "segmenter.onnx.json")
    size = (int(exported.video.shape[2]), int(exported.video.shape[3]))
    assert (seg.part, seg.format, seg.file, seg.size, seg.opset) == (
        "segmenter",
        "onnx",
        "segmenter.onnx",
        size,
        18,
    )
    assert seg.vidpan_version == vidpan.__version__
    assert seg.weights_sha256 == sha256_file(exported.weights)
    assert seg.inputs[0].name == "frames" and seg.inputs[0].dtype == "uint8"
    assert seg.inputs[0].shape == (seg.frames, *size, 3)
    q = exported.config.model.decoder.num_queries
    assert seg.spec("class_logits").shape == (seg.frames, q, exported.config.model.num_classes + 1)
    trk = read_manifest(exported.directory / "tracker-step.pt2.json")
    assert (trk.part, trk.format, trk.opset, trk.frames) == ("tracker-step", "torch-export", None, 1)
    assert [t.name for t in trk.inputs][-2:] == ["state_last_output", "state_num_frames"]
    assert [t.name for t in trk.outputs][-4:] == [
        "new_state_last_frame_embeds", "new_state_last_output", "new_state_last_reference", "new_state_num_frames",
    ]  # fmt: skip
    # The graph's own inputs / outputs are the manifest's.
    model = onnx.load(str(exported.directory / "tracker-step.onnx"))
    assert [i.name for i in model.graph.input] == [t.name for t in trk.inputs]
    assert [o.name for o in model.graph.output] == [t.name for t in trk.outputs]


def test_export_bad_arguments(fixture_export: Exported, tmp_path: Path) -> None:
    model, config = fixture_export.model, fixture_export.config
    with pytest.raises(InputError, match=r"must end in \.onnx"):
        export_part(model, config, part="segmenter", size=(96, 128), fmt="onnx", out=tmp_path / "x.pt2")
    with pytest.raises(InputError, match="--part"):
        export_part(model, config, part="refiner", size=(96, 128), fmt="onnx", out=tmp_path / "x.onnx")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="HxW"):
        parse_size("96by128")
    assert list(tmp_path.iterdir()) == []
