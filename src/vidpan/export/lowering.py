"""Lowering of the gather-path deformable attention for ONNX, and graph op checks.

vidpan's default multi-scale deformable attention (``ops/ms_deform_attn.py``, the ``gather``
implementation) reads every bilinear corner of every sample through one
``F.embedding_bag(mode="sum", per_sample_weights=...)``. ``torch.export`` keeps that op (the
``.pt2`` program runs it as is), but the ONNX translation of ``aten::embedding_bag`` is a
``Loop`` over bags (one iteration per query x head), which onnxruntime runs very slowly. Before
translating to ONNX the op is therefore decomposed into what it computes for the fixed-size bags
of the gather path: ``Gather`` rows, multiply by the per-sample weights, ``ReduceSum`` over each
bag. Same values up to float summation order (~1e-6 relative).

The reference ``grid_sample`` implementation is never traced: exporters assert that the
selected implementation is ``gather`` and tests scan the graphs for ``GridSample`` /
``grid_sampler`` (:func:`forbidden_onnx_ops`, :func:`forbidden_aten_ops`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch

from vidpan.ops import linear, ms_deform_attn

# Op types that must not appear in an exported graph (deformable attention through grid_sample).
FORBIDDEN_ONNX_OPS = frozenset({"GridSample", "Loop", "SequenceEmpty", "ConcatFromSequence"})
FORBIDDEN_ATEN_SUBSTRINGS = ("grid_sampler", "grid_sample", "mkldnn")


@contextlib.contextmanager
def export_ops() -> Iterator[None]:
    """The op implementations an exported graph is traced with, whatever the environment says.

    Deformable attention through the gather path (``VIDPAN_DEFORM_ATTN`` ignored); linears through
    ``F.linear`` (the CPU oneDNN fast path of :mod:`vidpan.ops.linear` is an eager-only kernel
    choice: ``torch.ops.mkldnn`` ops have no ONNX translation and would pin the program to CPU).
    """
    saved = ms_deform_attn.IMPL, linear.IMPL
    ms_deform_attn.IMPL, linear.IMPL = "gather", "torch"
    try:
        yield
    finally:
        ms_deform_attn.IMPL, linear.IMPL = saved


def embedding_bag_as_gather(
    weight: torch.Tensor,
    indices: torch.Tensor,
    offsets: torch.Tensor,
    scale_grad_by_freq: bool = False,
    mode: int = 0,
    sparse: bool = False,
    per_sample_weights: torch.Tensor | None = None,
    include_last_offset: bool = False,
    padding_idx: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``aten.embedding_bag`` for equal-sized bags in ``sum`` mode with per-sample weights.

    This is the only form the gather path produces (``F.embedding_bag`` on a 2-D
    ``[bags, corners]`` index, which PyTorch flattens with uniform offsets). Only the first
    output (the bag sums) is used; the other three are empty.

    Args:
        weight: [R, D] table.
        indices: [bags * size] row indices.
        offsets: [bags] bag starts (uniform: ``arange(bags) * size``).
        per_sample_weights: [bags * size].

    Returns:
        ([bags, D] weighted sums, empty, empty, empty).
    """
    if mode != 0 or include_last_offset or per_sample_weights is None or padding_idx not in (None, -1):
        raise NotImplementedError(
            "export lowers only embedding_bag(mode='sum', per_sample_weights=...) with equal bags"
        )
    bags = offsets.shape[0]
    rows = weight.index_select(0, indices) * per_sample_weights.unsqueeze(-1)  # [bags*size, D]
    out = rows.view(bags, indices.shape[0] // bags, weight.shape[1]).sum(1)  # [bags, D]
    empty = indices.new_zeros(0)
    return out, empty, empty, empty


def onnx_decompositions() -> dict[object, object]:
    """Decomposition table applied to the exported program before the ONNX translation."""
    aten = torch.ops.aten
    return {
        aten.embedding_bag.padding_idx: embedding_bag_as_gather,
        aten.embedding_bag.default: embedding_bag_as_gather,
        aten._embedding_bag.default: embedding_bag_as_gather,
    }


def aten_ops(program: torch.export.ExportedProgram) -> set[str]:
    """Names of the operators called in an exported program (e.g. ``aten.linear.default``)."""
    return {str(node.target) for node in program.graph.nodes if node.op == "call_function"}


def forbidden_aten_ops(program: torch.export.ExportedProgram) -> list[str]:
    """Operators of ``program`` that are grid sampling (must be empty for an exported step)."""
    return sorted(o for o in aten_ops(program) if any(s in o for s in FORBIDDEN_ATEN_SUBSTRINGS))


def onnx_op_types(model: object) -> set[str]:
    """Every node op type in an ``onnx.ModelProto``, sub-graphs and local functions included."""
    import onnx

    assert isinstance(model, onnx.ModelProto)
    types: set[str] = set()

    def walk(nodes: Iterable[onnx.NodeProto]) -> None:
        for node in nodes:
            types.add(node.op_type)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    walk(attr.g.node)
                for g in attr.graphs:
                    walk(g.node)

    walk(model.graph.node)
    for function in model.functions:
        walk(function.node)
    return types


def forbidden_onnx_ops(model: object) -> list[str]:
    """Op types of an ONNX model that must not be there (grid sampling, per-bag loops)."""
    return sorted(onnx_op_types(model) & FORBIDDEN_ONNX_OPS)
