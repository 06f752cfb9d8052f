"""The ONNX lowering of the gather-path deformable attention: equal to ``F.embedding_bag`` and to
the ``grid_sample`` reference, and no grid sampling / per-bag loop in the exported graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidpan.export.lowering import embedding_bag_as_gather, export_ops, forbidden_onnx_ops, onnx_op_types
from vidpan.ops import ms_deform_attn
from vidpan.ops.ms_deform_attn import MSDeformAttn, ms_deform_attn_core_grid_sample

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def test_embedding_bag_as_gather_equals_embedding_bag() -> None:
    g = torch.Generator().manual_seed(0)
    table = torch.randn(50, 8, generator=g)
    index = torch.randint(0, 50, (12, 16), generator=g)
    weights = torch.rand(12, 16, generator=g)
    expected = F.embedding_bag(index, table, per_sample_weights=weights, mode="sum")
    offsets = torch.arange(12) * 16
    out = embedding_bag_as_gather(table, index.reshape(-1), offsets, per_sample_weights=weights.reshape(-1))[
        0
    ]
    assert torch.allclose(out, expected, atol=1e-6)
    with pytest.raises(NotImplementedError):
        embedding_bag_as_gather(
            table, index.reshape(-1), offsets, mode=1, per_sample_weights=weights.reshape(-1)
        )


class _Attn(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = MSDeformAttn(dim=32, num_levels=2, num_heads=4, num_points=3)
        torch.nn.init.normal_(self.attn.sampling_offsets.weight, std=0.5)  # samples off the grid
        torch.nn.init.normal_(self.attn.attention_weights.weight, std=0.5)

    def forward(self, query: torch.Tensor, ref: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        return self.attn(query, ref, value, [(6, 8), (3, 4)])


def test_deformable_attention_exports_without_grid_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even with ``VIDPAN_DEFORM_ATTN=grid_sample`` selected, the export traces the gather path;
    onnxruntime then equals the grid_sample reference."""
    torch.manual_seed(0)
    module = _Attn().eval()
    query, value = torch.randn(2, 10, 32), torch.randn(2, 60, 32)
    ref = torch.rand(2, 10, 2, 2) * 1.2 - 0.1  # some reference points outside the map
    monkeypatch.setattr(ms_deform_attn, "IMPL", "grid_sample")
    with torch.no_grad():
        expected = module(query, ref, value)  # the reference implementation
    from vidpan.export.lowering import onnx_decompositions

    with export_ops(), torch.no_grad():
        program = torch.export.export(module, (query, ref, value), strict=False)
    assert ms_deform_attn.IMPL == "grid_sample"  # restored
    names = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert not any("grid_sampler" in n for n in names)
    assert any("embedding_bag" in n for n in names)
    onnx_program = torch.onnx.export(program.run_decompositions(onnx_decompositions()), dynamo=True,  # type: ignore[arg-type]
                                     opset_version=18, verbose=False)  # fmt: skip
    assert onnx_program is not None
    onnx_program.save(str(tmp_path / "attn.onnx"))
    model = onnx.load(str(tmp_path / "attn.onnx"))
    assert forbidden_onnx_ops(model) == []
    assert "Gather" in onnx_op_types(model)
    session = ort.InferenceSession(str(tmp_path / "attn.onnx"), providers=["CPUExecutionProvider"])
    feed = {i.name: x.numpy() for i, x in zip(session.get_inputs(), (query, ref, value), strict=True)}
    (out,) = session.run(None, feed)
    assert np.abs(out - expected.numpy()).max() <= 1e-5
    assert ms_deform_attn_core_grid_sample is not None
