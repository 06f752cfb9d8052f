"""``export_part``: one part of a vidpan model -> an ONNX file or a ``torch.export`` program (.pt2),
at a fixed size, plus its manifest JSON.

Both formats start from the same ``torch.export.export`` trace (strict=False) of the
:mod:`vidpan.export.graphs` modules, with deformable attention forced through the gather path.
``torch-export`` saves that program as is (``torch.export.save``; it still calls
``aten.embedding_bag``, run by PyTorch). ``onnx`` first lowers ``embedding_bag`` to
Gather/Mul/ReduceSum (:mod:`vidpan.export.lowering`), then translates with the dynamo-based
``torch.onnx.export`` (the default exporter of torch 2.13; the TorchScript exporter is not
used) at opset :data:`DEFAULT_OPSET`. Weights larger than 2 GB go to ONNX external-data files
beside the ``.onnx`` (protobuf's limit); the manifest lists them.

Files are written into a temporary directory beside ``out`` and renamed into place at the end,
so a failed export leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import torch

import vidpan
from vidpan.config import Config
from vidpan.errors import InputError
from vidpan.export.graphs import (
    SEGMENTER_INPUTS,
    SEGMENTER_OUTPUTS,
    TRACKER_INPUTS,
    TRACKER_OUTPUTS,
    SegmenterGraph,
    TrackerStepGraph,
)
from vidpan.export.lowering import (
    export_ops,
    forbidden_aten_ops,
    forbidden_onnx_ops,
    onnx_decompositions,
)
from vidpan.export.manifest import (
    FORMATS,
    PARTS,
    SUFFIXES,
    ExportManifest,
    Format,
    Part,
    TensorSpec,
    manifest_path,
    write_manifest,
)
from vidpan.models.build import DVIS

DEFAULT_OPSET = 18
_NUMPY_DTYPES = {torch.uint8: "uint8", torch.float32: "float32", torch.int64: "int64", torch.bool: "bool"}


def parse_size(text: str) -> tuple[int, int]:
    """``"480x640"`` -> (480, 640)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--size: expected HxW (e.g. 480x640), got {text!r}") from None
    if h < 32 or w < 32:
        raise InputError(f"--size: frames must be at least 32x32, got {text!r}")
    return h, w


def padded_size(size: tuple[int, int], divisibility: int) -> tuple[int, int]:
    """(H, W) padded at the bottom / right to a multiple of ``divisibility``."""
    h, w = size
    if divisibility <= 1:
        return h, w
    return h + (-h % divisibility), w + (-w % divisibility)


def graph_module(model: DVIS, part: Part) -> torch.nn.Module:
    """The :mod:`vidpan.export.graphs` module of ``part``."""
    if part == "segmenter":
        return SegmenterGraph(model.segmenter).eval()
    if model.tracker is None:
        raise InputError("--part tracker-step: this model has no tracker (a segmenter-only checkpoint)")
    return TrackerStepGraph(model.tracker).eval()


def example_inputs(
    config: Config, part: Part, size: tuple[int, int], frames: int
) -> tuple[torch.Tensor, ...]:
    """Inputs of the fixed shapes the graph is traced at (values only matter for the trace)."""
    m = config.model
    if part == "segmenter":
        return (torch.zeros(frames, size[0], size[1], 3, dtype=torch.uint8),)
    hp, wp = padded_size(size, m.size_divisibility)
    q, c = m.decoder.num_queries, m.tracker.hidden_dim
    return (
        torch.zeros(1, q, c),
        torch.zeros(1, q, c),
        torch.zeros(1, m.pixel_decoder.mask_dim, hp // 4, wp // 4),
        torch.arange(q)[None],
        torch.zeros(1, q, c),
        torch.zeros(1, dtype=torch.int64),
    )


def trace(
    model: DVIS, config: Config, part: Part, size: tuple[int, int], frames: int = 1
) -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``part`` at a fixed size, deformable attention on the gather path."""
    module = graph_module(model, part)
    args = example_inputs(config, part, size, frames)
    with export_ops(), torch.no_grad():
        program = torch.export.export(module, args, strict=False)
    bad = forbidden_aten_ops(program)
    if bad:
        raise RuntimeError(f"the exported {part} graph calls {bad}; expected the gather path only")
    return program


def _specs(names: tuple[str, ...], tensors: list[torch.Tensor]) -> tuple[TensorSpec, ...]:
    return tuple(
        TensorSpec(n, tuple(int(d) for d in t.shape), _NUMPY_DTYPES[t.dtype])
        for n, t in zip(names, tensors, strict=True)
    )


def _output_values(program: torch.export.ExportedProgram) -> list[torch.Tensor]:
    out = next(n for n in program.graph.nodes if n.op == "output")
    return [a.meta["val"] for a in out.args[0]]


def export_part(
    model: DVIS,
    config: Config,
    *,
    part: Part,
    size: tuple[int, int],
    fmt: Format,
    out: str | Path,
    frames: int = 1,
    opset: int = DEFAULT_OPSET,
    weights_sha256: str | None = None,
    program: torch.export.ExportedProgram | None = None,
    external_data: bool | None = None,
) -> ExportManifest:
    """Export ``part`` of ``model`` for frames of ``size`` (H, W) to ``out``; returns the manifest.

    Args:
        model, config: the model (eval mode is set on the traced copy's modules) and its config.
        part: ``segmenter`` (uint8 frames [frames, H, W, 3] in) or ``tracker-step`` (one frame).
        size: (H, W) of the frames as the predictor feeds them (after its resize, before the
            padding to ``size_divisibility``, which is inside the graph).
        fmt: ``onnx`` (``.onnx``) or ``torch-export`` (``.pt2``).
        out: the file to write; the manifest goes to ``out`` with suffix ``.json``.
        frames: T of the segmenter's input (ignored for the tracker step).
        opset: ONNX opset.
        weights_sha256: recorded in the manifest (the engine checks it against its weights).
        program: a :func:`trace` of the same part, size and frames, to export both formats
            from one trace.
        external_data: ONNX weights in a separate ``<out>.data`` file: None = only above
            protobuf's 2 GB limit (ViT-g), True = always.
    """
    if part not in PARTS:
        raise InputError(f"--part: expected one of {', '.join(PARTS)}, got {part!r}")
    if fmt not in FORMATS:
        raise InputError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if out.suffix != SUFFIXES[fmt]:
        raise InputError(f"--out: a {fmt} file must end in {SUFFIXES[fmt]}, got {out.name!r}")
    if frames < 1:
        raise InputError(f"--frames: expected a positive number, got {frames}")
    if part == "tracker-step":
        frames = 1
    if program is None:
        was_training = model.training
        model.eval()
        try:
            program = trace(model, config, part, size, frames)
        finally:
            model.train(was_training)
    in_names, out_names = (
        (SEGMENTER_INPUTS, SEGMENTER_OUTPUTS) if part == "segmenter" else (TRACKER_INPUTS, TRACKER_OUTPUTS)
    )
    inputs = _specs(in_names, list(example_inputs(config, part, size, frames)))
    outputs = _specs(out_names, _output_values(program))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if fmt == "torch-export":
            torch.export.save(program, tmp / out.name)
            external: tuple[str, ...] = ()
        else:
            _save_onnx(program, tmp / out.name, in_names, out_names, opset, external_data)
            external = tuple(sorted(p.name for p in tmp.iterdir() if p.name != out.name))
        manifest = ExportManifest(
            part=part,
            format=fmt,
            file=out.name,
            size=(int(size[0]), int(size[1])),
            frames=frames,
            opset=opset if fmt == "onnx" else None,
            inputs=inputs,
            outputs=outputs,
            vidpan_version=vidpan.__version__,
            weights_sha256=weights_sha256,
            config_name=config.name,
            torch_version=torch.__version__,
            external_data=external,
            notes=_notes(part, fmt),
        )
        for name in (*external, out.name):
            os.replace(tmp / name, out.parent / name)
        write_manifest(manifest, manifest_path(out))
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
    return manifest


def _save_onnx(
    program: torch.export.ExportedProgram,
    path: Path,
    in_names: tuple[str, ...],
    out_names: tuple[str, ...],
    opset: int,
    external_data: bool | None,
) -> None:
    import onnx

    lowered = program.run_decompositions(onnx_decompositions())
    onnx_program = torch.onnx.export(
        lowered, input_names=list(in_names), output_names=list(out_names), opset_version=opset, dynamo=True,
        optimize=True, verbose=False,
    )  # fmt: skip
    assert onnx_program is not None
    onnx_program.save(str(path), external_data=external_data)
    model = onnx.load(str(path), load_external_data=False)
    bad = forbidden_onnx_ops(model)
    if bad:
        raise RuntimeError(f"the ONNX graph contains {bad}; expected the gather path lowered to Gather")


def _notes(part: Part, fmt: Format) -> dict[str, str]:
    notes = {
        "deformable_attention": "gather path (no grid_sample)"
        + ("; embedding_bag lowered to Gather/Mul/ReduceSum" if fmt == "onnx" else ""),
        "precision": "float32",
    }
    if part == "segmenter":
        notes["frames"] = "uint8 RGB [T, H, W, 3]; normalisation and zero padding to /32 inside the graph"
        notes["postprocess"] = "outside the graph (vidpan.inference.postprocess)"
    else:
        notes["matching"] = (
            "Hungarian assignment outside the graph (vidpan.models.association.match_embeddings "
            "on state_last_frame_embeds vs frame_embeds); identity perm and zero state on a video's first frame"
        )
    return notes
